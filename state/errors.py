"""Errors of the state package (kept free of any import from `replicator`)."""


class StateFileError(Exception):
    """The state file cannot be used."""


class NewerSchemaError(StateFileError):
    """The state file was written by a newer version of scim-replicator."""
