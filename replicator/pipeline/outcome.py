"""How a cycle ends and when a failed object is tried again. Pure; no I/O, no clock."""

from __future__ import annotations


def cycle_outcome(outcome: str, *, stopped: bool, held: bool, failed: bool, backing_off: bool) -> str:
    """The outcome of a cycle that ran its plan to the end (`outcome`: what it was so far; partial
    after an incomplete read): interrupted when asked to stop, else held when a guard held something,
    else partial when an object failed or waits for its retry delay (not everything is replicated)."""
    if stopped:
        return "interrupted"
    if outcome == "ok" and held:
        return "held"
    if outcome == "ok" and (failed or backing_off):
        return "partial"
    return outcome


def failure_backoff(attempts: int) -> float:
    """Seconds before a failed object is tried again by an incremental cycle: 30 s, doubling, at most 1 h."""
    return min(3600.0, 30.0 * 2.0 ** (attempts - 1))
