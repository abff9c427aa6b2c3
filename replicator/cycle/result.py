"""What one cycle did: its mode, counts, planned changes, failures, what the guards held, read reports,
requests and outcome (`CycleResult`), as the reports, the daemon's metrics and the state's run record
read it. A record; no I/O."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from replicator.pipeline.outcome import Outcome
from replicator.pipeline.plan import Step
from replicator.scim.paging import ReadReport

FULL = "full"
INCREMENTAL = "incremental"


@dataclass
class CycleResult:
    """What a cycle did: counts, planned changes (dry-run), read reports, requests, outcome."""

    mode: str
    dry_run: bool
    counts: Counter[str] = field(default_factory=Counter)
    changes: list[Step] = field(default_factory=list)
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    held: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, label, why): what the guards held
    names: dict[str, str] = field(default_factory=dict)  # dry-run: destination id -> userName/displayName
    adoptions: set[tuple[str, str]] = field(default_factory=set)  # dry-run: (kind, source id) of planned adoptions
    reads: dict[str, ReadReport] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    source_requests: dict[str, int] = field(default_factory=dict)
    destination_requests: dict[str, int] = field(default_factory=dict)
    destination_flow: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    # an Outcome: ok | partial (failures or incomplete read) | held (removals held) | interrupted | failed
    # (typed str while replicator/cycle/runner.py assigns it string literals)
    outcome: Outcome = Outcome.OK
    phase: str = "discovery"  # how far the cycle got (Cycle moves it on): scope groups, users, groups, removals

    def summary(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "dry_run": self.dry_run,
            "outcome": self.outcome,
            "seconds": round(self.seconds, 3),
            "counts": dict(sorted(self.counts.items())),
            "source_requests": self.source_requests,
            "destination_requests": self.destination_requests,
            "destination_flow": self.destination_flow,
            "notes": self.notes,
        }
