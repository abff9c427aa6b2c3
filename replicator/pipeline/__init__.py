"""The replication pipeline: read -> canonicalise -> plan -> write -> record.

`canonical`, `patch`, `references` and `plan` are pure (no await, no I/O); `cycle` does the I/O.
"""
