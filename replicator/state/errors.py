"""Errors of the state package (kept free of any import from `replicator`).

Every message names the state file, so that it can be shown as it is.
"""


class StateFileError(Exception):
    """The state file cannot be used."""


class NewerSchemaError(StateFileError):
    """The state file was written by a newer version of scim-replicator."""


class StateUnusableError(StateFileError):
    """The state file cannot be opened, read or written: not a SQLite database, a directory, a folder
    that cannot be created, no permission, a full disk, an I/O error."""


class StateLockedError(StateFileError):
    """Another process runs on the same state file (it holds the state's lock)."""
