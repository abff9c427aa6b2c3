"""The SCIM seam: client, auth, wire records, status/retry/paging rules, attribute names and URNs.

aiohttp is imported only by client.py, auth.py and status.py here (and by the daemon's endpoint and the
in-memory server in replicator/testing/): tests/unit/test_boundaries.py checks it.
"""
