"""The only async orchestration: one replication cycle over a source and a destination directory.

`run_cycle` (runner.py) reads the source, plans against the state (and the live destination), writes
and records; `CycleResult` (result.py) is what it did; work.py holds the items its stages pass along.
"""

from replicator.cycle.result import FULL, INCREMENTAL, CycleResult
from replicator.cycle.runner import Cycle, run_cycle

__all__ = ["FULL", "INCREMENTAL", "Cycle", "CycleResult", "run_cycle"]
