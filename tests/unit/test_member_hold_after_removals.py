"""The membership guard judged again once the cycle's removals are done (`member_hold_after_removals`):
held removals of members this cycle deleted went through with their removal, the rest stay held."""

from __future__ import annotations

from typing import Any

from replicator.config import SyncConfig
from replicator.pipeline.canonical import GROUP, USER
from replicator.pipeline.plan import Stored, plan_upsert
from replicator.pipeline.removals import (
    forgotten_removals,
    hold_member_removals,
    member_hold_after_removals,
    removed_lookups,
)


def member(value: str, kind: str | None = None) -> dict[str, Any]:
    return {"value": value, **({"type": kind} if kind else {})}


def parent(*members: dict[str, Any]) -> dict[str, Any]:
    return {"displayName": "Everyone", "members": list(members)}


USERS = [member(f"u{i}", USER) for i in range(10)]
SUBGROUPS = [member(f"g{i}", GROUP) for i in range(6)]


def held_step(desired: dict[str, Any], before: dict[str, Any], **policy: Any) -> tuple[Any, ...]:
    step = plan_upsert(kind=GROUP, source_id="p", label="Everyone", desired=desired,
                       stored=Stored("P", "old", before), live=None, live_known=False, policy=SyncConfig(**policy))
    return step.held, step.held_among


def test_the_step_carries_the_members_it_held_and_the_group_they_were_judged_against() -> None:
    held, among = held_step(parent(*USERS), parent(*USERS, *SUBGROUPS))
    assert [m["value"] for m in held] == [f"g{i}" for i in range(6)] and among == 16
    assert held_step(parent(*USERS, *SUBGROUPS[1:]), parent(*USERS, *SUBGROUPS)) == ((), 0)  # 1 removal: not held


def test_held_removals_of_deleted_subgroups_are_not_held() -> None:
    held, among = held_step(parent(*USERS), parent(*USERS, *SUBGROUPS))
    gone = {f"g{i}" for i in range(6)}
    assert member_hold_after_removals(held, among, gone_users=set(), gone_groups=gone, policy=SyncConfig()) == (0, "")


def test_a_hold_naming_nothing_deleted_stands_as_it_was() -> None:
    held, among = held_step(parent(*USERS), parent(*USERS, *SUBGROUPS))
    assert member_hold_after_removals(held, among, gone_users={"g0"}, gone_groups={"u0"}, policy=SyncConfig()) is None
    # a member typed Group is not a deleted user of the same id (servers numbering users and groups apart)


def test_untyped_members_match_deleted_objects_of_either_kind() -> None:
    untyped = [member(f"g{i}") for i in range(6)]
    held, among = held_step(parent(*USERS), parent(*USERS, *untyped))
    assert member_hold_after_removals(held, among, gone_users={"g0", "g1"}, gone_groups={"g2", "g3", "g4", "g5"},
                                      policy=SyncConfig()) == (0, "")


def test_the_rest_of_a_hold_is_judged_alone() -> None:
    """Over the limits alone: the usual reason, for the rest only. Under them: still held this cycle
    (the group kept them), the reason saying why, and no flag to lift a guard that would let them go."""
    held, among = held_step(parent(*USERS[:4]), parent(*USERS, SUBGROUPS[0]))  # 6 users and a subgroup: 7 of 11
    still, why = member_hold_after_removals(held, among, gone_users=set(), gone_groups={"g0"}, policy=SyncConfig()) or (0, "")
    assert still == 6 and why.startswith("6 member removals held: 6 removals are 60% of 10 members"), why
    assert "--allow-member-removals" in why
    held, among = held_step(parent(*USERS[:9]), parent(*USERS, *SUBGROUPS))  # a user and 6 subgroups: 7 of 16
    still, why = member_hold_after_removals(held, among, gone_users=set(), gone_groups={f"g{i}" for i in range(6)},
                                            policy=SyncConfig()) or (0, "")
    assert still == 1 and why.startswith("1 member removals held: held with 6 removals of members we deleted, "
                                         "which went through (7 removals are 44% of 16 members"), why
    assert "planned again next cycle" in why and "--allow-member-removals" not in why


def test_the_rest_of_a_hold_is_judged_against_the_group_without_the_members_that_went() -> None:
    """100 users and 60 subgroups; the 60 subgroups are deleted and 30 users taken out. The 30 are not
    few in a group of 160 (19%), but the group keeps 100 once the subgroups went, and the next cycle
    holds the 30 against those (30%): so does the rest of this cycle's hold, with the same reason."""
    users = [member(f"u{i}", USER) for i in range(100)]
    subgroups = [member(f"g{i}", GROUP) for i in range(60)]
    held, among = held_step(parent(*users[:70]), parent(*users, *subgroups))
    assert len(held) == 90 and among == 160
    settled = member_hold_after_removals(held, among, gone_users=set(), gone_groups={f"g{i}" for i in range(60)},
                                         policy=SyncConfig())
    assert settled is not None
    still, why = settled
    assert still == 30 and why.startswith("30 member removals held: 30 removals are 30% of 100 members"), why
    _, next_held, next_why = hold_member_removals(parent(*users[:70]), parent(*users), None, SyncConfig())
    assert (still, why) == (next_held, next_why)  # what the next cycle says of them


def test_held_members_are_looked_up_among_earlier_removals_of_their_kind() -> None:
    """A member typed User is asked for among removed users, typed Group among groups, an untyped one
    among both; members naming this cycle's removals are known already, and not asked for."""
    held = [member("u1", USER), member("g1", GROUP), member("x"), member("u2", USER), member("g2", GROUP)]
    assert removed_lookups(held, {"u2"}, {"g2"}) == {USER: ["u1", "x"], GROUP: ["g1", "x"]}
    assert removed_lookups([], set(), set()) == {USER: [], GROUP: []}


def test_removals_are_forgotten_unless_a_group_whose_drop_failed_still_names_them() -> None:
    considered = {USER: {"u1", "u2"}, GROUP: {"g1"}}
    assert {kind: sorted(ids) for kind, ids in forgotten_removals(considered, {"u2"}).items()} == {
        USER: ["u1"], GROUP: ["g1"]}
    assert forgotten_removals(considered, {"u1", "u2", "g1"}) == {USER: [], GROUP: []}
