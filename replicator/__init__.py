"""scim-replicator: keep a destination SCIM 2.0 environment equal to a source one."""

__version__ = "0.1.0"
