"""Replication state in SQLite: which source object maps to which destination object, and run history.

This package never imports `replicator`: it stores plain values (strings, bytes, numbers).
"""

from state.store import ResourceRow, RunRecord, StateStore, open_state

__all__ = ["ResourceRow", "RunRecord", "StateStore", "open_state"]
