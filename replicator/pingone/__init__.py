"""PingOne as a directory: its Platform API (users, groups, memberships, nesting, populations) behind
the `replicator.directory.Directory` protocol. platform.py talks HTTP (through the SCIM package's
transport: the same limits, retries and error tree); directory.py is the Directory; memberships.py
reads and writes group members; the SCIM <-> PingOne translation is pure (replicator/pipeline/pingone.py).
"""
