"""How a cycle ends (`Outcome`, `cycle_outcome`) and when a failed object is tried again. Pure; no I/O,
no clock."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """How a cycle ended; the value is what the state records (`runs.outcome`), the reports and the
    daemon's metrics (`scimrep_cycles{outcome=...}`) print."""

    OK = "ok"
    PARTIAL = "partial"  # an object failed or waits for its retry delay, or a read was incomplete
    HELD = "held"  # a guard held removals
    INTERRUPTED = "interrupted"  # stopped before the end of its plan
    FAILED = "failed"  # an error stopped it


# a cycle with one of these ran its plan to the end
COMPLETED = (Outcome.OK, Outcome.PARTIAL, Outcome.HELD)


def cycle_outcome(outcome: str, *, stopped: bool, held: bool, failed: bool, backing_off: bool) -> Outcome:
    """The outcome of a cycle that ran its plan to the end (`outcome`: what it was so far; partial
    after an incomplete read): interrupted when asked to stop, else held when a guard held something,
    else partial when an object failed or waits for its retry delay (not everything is replicated)."""
    if stopped:
        return Outcome.INTERRUPTED
    if outcome == Outcome.OK and held:
        return Outcome.HELD
    if outcome == Outcome.OK and (failed or backing_off):
        return Outcome.PARTIAL
    return Outcome(outcome)


def failure_backoff(attempts: int) -> float:
    """Seconds before a failed object is tried again by an incremental cycle: 30 s, doubling, at most 1 h."""
    return min(3600.0, 30.0 * 2.0 ** (attempts - 1))
