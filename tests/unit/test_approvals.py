"""pipeline/approvals: an approval raises a guard's limits for one cycle, never lowers them; what the
default approval covers of each guard."""

from __future__ import annotations

from replicator.config import SyncConfig
from replicator.pipeline.approvals import approved_policy, held_by
from replicator.pipeline.removals import removal_guard


def test_an_approval_raises_the_limits_to_its_number_and_lowers_none() -> None:
    policy = SyncConfig(max_delete_count=3, max_delete_percent=25.0)
    assert approved_policy(policy, 0) is policy
    approved = approved_policy(policy, 40)
    assert (approved.max_delete_count, approved.max_delete_percent) == (3, 25.0)  # the settings stay
    assert removal_guard(removals=40, tracked=40, seen=1, policy=approved) is None  # any share of the tracked
    over = removal_guard(removals=41, tracked=100, seen=59, policy=approved)  # no more than named
    assert over == "41 removals exceed sync.max_delete_count=3, and more than the 40 approved (`approve`)"
    assert removal_guard(removals=3, tracked=3, seen=0, policy=approved) is not None  # an empty source read
    assert removal_guard(removals=2, tracked=100, seen=98, policy=approved) is None  # let through anyway
    # held for their share under a generous count (10 of 20, 50%): an approval of 5 is not an approval of 10
    generous = SyncConfig(max_delete_count=500)
    assert removal_guard(removals=10, tracked=20, seen=10, policy=approved_policy(generous, 5)) is not None
    assert removal_guard(removals=10, tracked=20, seen=10, policy=approved_policy(generous, 10)) is None
    assert approved_policy(approved, 7).approved == 7  # type: ignore[attr-defined]


def test_the_default_approval_covers_what_the_last_run_held_of_each_guard() -> None:
    assert held_by({"removals_held": 6, "member_removals_held": 10}) == (6, 10)
    assert held_by({"removals_held": 6}) == (6, 0)
    assert held_by({}) == (0, 0)
