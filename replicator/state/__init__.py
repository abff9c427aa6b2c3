"""Replication state in SQLite: which source object maps to which destination object, and run history.

This package never imports `replicator`: it stores plain values (strings, bytes, numbers).
Rooms: records.py (the values), schema.py (tables, migrations), connection.py (the shared connection,
its write buffer and the error seam), store.py (the records and `open_state`), forms.py (the written
forms), intents.py (creates noted before their POST), keeps.py (what destinations lose), removed.py
(the destination objects we removed), runs.py (the run log), scratch.py (a cycle's temporary tables),
lock.py (one process per state file), errors.py.
"""

from replicator.state.records import Origin, ResourceRow, ResourceStatus, RunRecord
from replicator.state.store import StateStore, open_state

__all__ = ["Origin", "ResourceRow", "ResourceStatus", "RunRecord", "StateStore", "open_state"]
