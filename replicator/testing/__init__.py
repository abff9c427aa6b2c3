"""Test doubles that ship with the replicator (the demo uses them): an in-memory SCIM 2.0 server and
seeded sample directories."""
