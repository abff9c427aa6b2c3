"""The membership guard and the scope checks: pure decisions that keep a mistake from removing access."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from replicator.config import SyncConfig
from replicator.pipeline.canonical import GROUP, digest
from replicator.pipeline.plan import (
    NOTHING,
    PATCH,
    Step,
    Stored,
    hold_member_removals,
    plan_adoption,
    plan_upsert,
    removal_guard,
)
from replicator.pipeline.scope import empty_scope_problem, make_scope, missing_names_problem


def group(*members: str) -> dict[str, Any]:
    form: dict[str, Any] = {"displayName": "All Staff"}
    if members:
        form["members"] = [{"value": m} for m in sorted(members)]
    return form


STAFF = group(*[f"u{i:02d}" for i in range(15)])


def test_a_few_member_removals_pass() -> None:
    """Removing 5 or fewer members, or a share under max_delete_percent, is not held."""
    desired = group(*[f"u{i:02d}" for i in range(10)])
    assert hold_member_removals(desired, STAFF, None, SyncConfig()) == (desired, 0, "")
    desired = group(*[f"u{i:02d}" for i in range(12)])
    assert hold_member_removals(desired, STAFF, None, SyncConfig(max_delete_percent=25))[1] == 0


def test_most_members_leaving_is_held_with_the_members_kept() -> None:
    """14 of 15 members leaving is held: the desired form keeps them, and the reason names the setting."""
    desired, held, why = hold_member_removals(group("u00"), STAFF, None, SyncConfig())
    assert held == 14 and desired == STAFF
    assert "14 member removals held" in why and "sync.max_delete_percent=25" in why and "15 members" in why


def test_count_rule_and_override() -> None:
    """More removals than max_delete_count are held whatever the share; allow_member_removals lifts the guard."""
    big = group(*[f"u{i:03d}" for i in range(300)])
    smaller = group(*[f"u{i:03d}" for i in range(150)])
    assert hold_member_removals(smaller, big, None, SyncConfig(max_delete_percent=90))[1] == 150
    assert hold_member_removals(smaller, big, None, SyncConfig(allow_member_removals=True)) == (smaller, 0, "")


def test_each_guard_is_lifted_by_its_own_setting_only() -> None:
    """allow_mass_delete lifts the guard on objects, not the membership guard (whose reason names the flag
    that lifts it and says the old one no longer does); allow_member_removals lifts only the membership guard."""
    desired, held, why = hold_member_removals(group("u00"), STAFF, None, SyncConfig(allow_mass_delete=True))
    assert held == 14 and desired == STAFF
    assert why.endswith("; run with --allow-member-removals (sync.allow_member_removals) if this is intended "
                        "(a daemon: `scim-replicator approve --members-up-to N`) (allow_mass_delete no longer "
                        "lifts the membership guard)")
    assert "no longer" not in hold_member_removals(group("u00"), STAFF, None, SyncConfig())[2]
    assert removal_guard(removals=30, tracked=40, seen=10, policy=SyncConfig(allow_mass_delete=True)) is None
    held_objects = removal_guard(removals=30, tracked=40, seen=10, policy=SyncConfig(allow_member_removals=True))
    assert held_objects == "30 removals are 75% of 40 tracked, over sync.max_delete_percent=25"


def test_members_removed_with_their_user_are_not_the_membership_guards() -> None:
    """Members whose own removal the guard on objects let through leave the group without counting:
    only the other removals are weighed (and held), and the leaving members are not kept."""
    leaving = frozenset(f"u{i:02d}" for i in range(1, 13))
    policy = SyncConfig(allow_mass_delete=True)
    assert hold_member_removals(group("u00", "u13", "u14"), STAFF, None, policy, leaving) == (
        group("u00", "u13", "u14"), 0, "")
    desired, held, _ = hold_member_removals(group("u00"), STAFF, None, SyncConfig(), frozenset({"u01"}))
    assert held == 13 and desired == group("u00", *[f"u{i:02d}" for i in range(2, 15)])


def test_plan_upsert_and_plan_adoption_pass_the_leaving_members_to_the_guard() -> None:
    """The members leaving with their own removal are given to plan_upsert and plan_adoption as an
    argument (the policy is the configuration alone): without them 14 removals are held, with them none."""
    leaving = frozenset(f"u{i:02d}" for i in range(1, 15))
    stored = Stored("d1", digest(STAFF), STAFF)
    for live, live_known in ((None, False), (STAFF, True)):
        for passed, held in ((frozenset(), 14), (leaving, 0)):
            step = plan_upsert(kind=GROUP, source_id="s1", label="All Staff", desired=group("u00"), stored=stored,
                               live=live, live_known=live_known, policy=SyncConfig(), leaving=passed)
            assert step.held_members == held
        assert step.action == PATCH and step.held_members == 0 and len(step.operations) == 14
    create = Step(PATCH, GROUP, "s1", "All Staff", desired=group("u00"), digest=digest(group("u00")))
    overwrite = SyncConfig(membership="overwrite")
    assert plan_adoption(step=create, live=STAFF, dest_id="d1", policy=overwrite).held_members == 14
    adopted = plan_adoption(step=create, live=STAFF, dest_id="d1", policy=overwrite, leaving=leaving)
    assert adopted.held_members == 0 and len(adopted.operations) == 14


def test_a_group_written_leaves_out_the_members_leaving_with_their_removal() -> None:
    """A group planned (or adopted) while its source still names users whose removal the guard let
    through is written without them (not in a second PATCH after their removal) and records no source
    digest (planned again while its source names them); a member typed Group with such a value stays."""
    desired = {"displayName": "All Staff", "members": [{"value": "u00"}, {"value": "u01"}, {"value": "u02"},
                                                       {"value": "u03", "type": "Group"}]}
    written = group("u00", "u01", "u02")
    step = plan_upsert(kind=GROUP, source_id="s1", label="All Staff", desired=desired, source_digest="read",
                       stored=Stored("d1", digest(written), written), live=None, live_known=False,
                       policy=SyncConfig(), leaving=frozenset({"u01", "u03"}))
    assert step.action == PATCH and step.source_digest is None and step.held_members == 0
    assert [m["value"] for m in (step.desired or {})["members"]] == ["u00", "u02", "u03"]
    assert step.digest == digest(step.desired or {})
    assert {op["op"] for op in step.operations} == {"add", "remove"}
    create = Step(PATCH, GROUP, "s1", "All Staff", desired=group("u00", "u01"), digest=digest(group("u00", "u01")),
                  source_digest="read")
    adopted = plan_adoption(step=create, live=group("u00"), dest_id="d1", policy=SyncConfig(),
                            leaving=frozenset({"u01"}))
    assert adopted.action == "record" and adopted.desired == group("u00") and adopted.source_digest is None
    assert plan_upsert(kind=GROUP, source_id="s1", label="All Staff", desired=written, stored=None, live=None,
                       live_known=False, policy=SyncConfig(), leaving=frozenset({"u01", "u02"})).desired == group("u00")


def test_merge_mode_counts_only_removable_members() -> None:
    """Members we may not remove (someone else's, in merge mode) are neither counted nor added back."""
    desired, held, _ = hold_member_removals(group("u00"), STAFF, {"u01", "u02"}, SyncConfig())
    assert held == 0 and desired == group("u00")


@given(st.sets(st.integers(0, 40), max_size=40), st.sets(st.integers(0, 40), max_size=40))
def test_guard_never_removes_more_than_it_allows(before_ids: set[int], after_ids: set[int]) -> None:
    """Property: the guarded form removes nothing, or removes only what the thresholds allow."""
    before, after = group(*map(str, before_ids)), group(*map(str, after_ids))
    desired, held, _ = hold_member_removals(after, before, None, SyncConfig())
    kept = {m["value"] for m in desired.get("members", [])}
    removed = {str(i) for i in before_ids} - kept
    assert {str(i) for i in after_ids} <= kept
    if held:
        assert not removed
    else:
        assert len(removed) <= 5 or len(removed) <= 0.25 * len(before_ids)


def test_plan_upsert_holds_member_removals_incremental_and_full() -> None:
    """plan_upsert keeps held members in the desired form and its digest, against the written and the live form."""
    stored = Stored("d1", digest(STAFF), STAFF)
    for live, live_known in ((None, False), (STAFF, True)):
        step = plan_upsert(kind=GROUP, source_id="s1", label="All Staff", desired=group("u00"), stored=stored,
                           live=live, live_known=live_known, policy=SyncConfig())
        assert step.action == NOTHING and step.held_members == 14 and step.digest == digest(STAFF)
    step = plan_upsert(kind=GROUP, source_id="s1", label="All Staff", desired=group("u00"), stored=stored, live=None,
                       live_known=False, policy=SyncConfig(allow_member_removals=True))
    assert step.action == PATCH and step.held_members == 0 and len(step.operations) == 14


def test_plan_adoption_holds_overwrite_removals() -> None:
    """Adopting a group in overwrite mode does not strip most of its members (held)."""
    step = Step(PATCH, GROUP, "s1", "All Staff", desired=group("u00"), digest=digest(group("u00")))
    adopted = plan_adoption(step=step, live=STAFF, dest_id="d1", policy=SyncConfig(membership="overwrite"))
    assert adopted.held_members == 14 and not adopted.operations and adopted.source_digest is None


def test_missing_scope_groups_name_the_setting_and_suggest() -> None:
    """A missing scope group is named with its setting and the closest existing name."""
    problem = missing_names_problem("scope.user_groups", ["All Staf", "Zzz"], ["All Staff", "Sales"])
    assert problem == ("scope.user_groups names groups the source does not have: 'All Staf' "
                       "(did you mean 'All Staff'?), 'Zzz'")
    assert missing_names_problem("scope.user_groups", [], ["All Staff"]) is None


def test_empty_scope_problem() -> None:
    """A scope keeping out every object read while some are tracked is a problem naming the settings used."""
    scope = make_scope(user_filter='userName eq "x"', user_groups=["A"])
    assert empty_scope_problem("User", scope, read=40, in_scope=0, tracked=40) == (
        "scope.user_filter and scope.user_groups match none of the 40 Users read from the source while 40 "
        "are replicated")
    assert empty_scope_problem("User", scope, read=40, in_scope=1, tracked=40) is None
    assert empty_scope_problem("User", scope, read=40, in_scope=0, tracked=0) is None
    assert empty_scope_problem("User", scope, read=0, in_scope=0, tracked=40) is None  # the removal guard's case
    assert empty_scope_problem("Group", scope, read=5, in_scope=0, tracked=5) is None  # no group rule set


def test_zero_change_key_is_the_same_in_every_process() -> None:
    """The rules' key (the zero-change salt) does not follow the hash seed: 8 processes, one key."""
    import os
    import subprocess
    import sys

    program = (
        "from replicator.pipeline.mapping import make_rules, rules_key\n"
        "rules = make_rules(exclude=['urn:a:b:1.0:User:x', 'urn:c:d:1.0:User:y', 'nickName'],\n"
        "                   schema_urns={'urn:p:src:custom': 'urn:p:dst:custom', 'urn:q:src': 'urn:q:dst'},\n"
        "                   constants={'urn:e:f:1.0:User:org': {'b': 1, 'a': [2, 1]}})\n"
        "print(rules_key(rules).hex())\n"
    )
    keys = {
        subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout.strip()
        for seed in range(8)
    }
    assert len(keys) == 1 and len(keys.pop()) == 32


def test_held_member_removals_reach_the_metrics() -> None:
    """A cycle's member_removals_held count is exported as an operation, so an alert can fire on it."""
    from replicator.cycle import CycleResult
    from replicator.daemon import Metrics

    result = CycleResult(mode="full", dry_run=False, outcome="held")
    result.counts["member_removals_held"] = 14
    metrics = Metrics()
    metrics.record(result, [])
    assert 'scimrep_operations_total{operation="member_removals_held"} 14.0' in metrics.render().decode()
