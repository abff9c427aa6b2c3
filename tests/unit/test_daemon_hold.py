"""`next_hold`: the daemon's hold begins with a held cycle, carries on through held, failed and interrupted
ones, and ends with the first cycle that runs to the end holding nothing; `Hold.facts` is /healthz's `held`."""

from __future__ import annotations

from collections import Counter

from replicator.cli import lifting_flags
from replicator.cycle import INCREMENTAL, CycleResult
from replicator.daemon import Hold, next_hold
from replicator.pipeline.outcome import Outcome


def cycle(outcome: Outcome, *, removals: int = 0, members: int = 0, listed: int = 0) -> CycleResult:
    return CycleResult(mode=INCREMENTAL, dry_run=False, outcome=outcome,
                       counts=Counter(removals_held=removals, member_removals_held=members),
                       held=[("Group", f"group {i}", "member removals held: ...") for i in range(listed)])


def test_a_hold_begins_carries_on_and_ends() -> None:
    """Held at cycle 4: since cycle 4; held at 5 with other counts: still since 4, the new counts, 2 cycles;
    a failed or interrupted cycle leaves it; an ok cycle ends it, and an ok cycle with no hold stays None."""
    assert next_hold(None, cycle(Outcome.OK), cycle=3, now=100.0) is None
    hold = next_hold(None, cycle(Outcome.HELD, removals=40), cycle=4, now=200.0)
    assert hold == Hold(since_cycle=4, since=200.0, held_cycles=1, removals_held=40, member_removals_held=0)
    hold = next_hold(hold, cycle(Outcome.HELD, removals=41, members=14), cycle=5, now=300.0)
    assert hold == Hold(since_cycle=4, since=200.0, held_cycles=2, removals_held=41, member_removals_held=14)
    for unfinished in (Outcome.FAILED, Outcome.INTERRUPTED):
        assert next_hold(hold, cycle(unfinished), cycle=6, now=400.0) is hold
    assert next_hold(hold, cycle(Outcome.OK), cycle=7, now=500.0) is None
    assert next_hold(hold, cycle(Outcome.PARTIAL, removals=3), cycle=7, now=500.0) is None  # an incomplete read's


def test_guard_holds_beside_failures_are_a_hold() -> None:
    """A partial cycle (an object failed) whose membership guard held a group still holds (its held entries)."""
    hold = next_hold(None, cycle(Outcome.PARTIAL, members=14, listed=1), cycle=2, now=50.0)
    assert hold is not None and hold.member_removals_held == 14 and hold.since_cycle == 2


def test_facts_name_the_counts_or_the_scope() -> None:
    """/healthz's `held`: since (UTC), counts and a reason; a held cycle that counted no removal is a scope halt."""
    facts = Hold(since_cycle=4, since=0.0, held_cycles=2, removals_held=40, member_removals_held=14).facts()
    assert facts == {"since_cycle": 4, "since": "1970-01-01T00:00:00Z", "held_cycles": 2, "removals_held": 40,
                     "member_removals_held": 14, "reason": "the guards hold 40 removals and 14 member removals"}
    halted = next_hold(None, cycle(Outcome.HELD), cycle=1, now=0.0)
    assert halted is not None
    assert halted.facts()["reason"] == "a scope that matches nothing stops each cycle before any write"


def test_the_healthcheck_names_the_flag_of_each_guard_that_holds() -> None:
    """Removals held name --allow-mass-delete, member removals --allow-member-removals, both both (since
    the two guards were split, one flag no longer lifts the other's hold)."""
    assert lifting_flags({"removals_held": 3, "member_removals_held": 0}) == "--allow-mass-delete"
    assert lifting_flags({"removals_held": 0, "member_removals_held": 14}) == "--allow-member-removals"
    assert lifting_flags({"removals_held": 2, "member_removals_held": 1}) == "--allow-mass-delete --allow-member-removals"
    assert lifting_flags({"removals_held": 0, "member_removals_held": 0}) == "--allow-mass-delete"  # a scope halt
