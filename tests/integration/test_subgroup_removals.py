"""Subgroups deleted from the source, and the membership guard of the groups that held them.

A parent group that loses subgroups the source deleted loses them on the destination too: the groups'
removals are judged only once the groups are read (after the parent was planned), so the membership
guard holds the parent's loss of them while planning, and the cycle's removals then delete them and
take them out of the parent (the member drop). Such removals went through: they are not counted as
held, and the cycle is not held for them, once the drop is written (a failed or unwritten one leaves
them in the parent: still held). Member removals of the parent that are not deleted objects
stay held, counted and listed, as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from replicator.app import replicate
from replicator.config import Config, SideConfig, SyncConfig
from replicator.cycle import FULL, INCREMENTAL
from replicator.cycle.renames import BlockedRenames
from replicator.cycle.result import CycleResult
from replicator.cycle.sinks import LiveSink
from replicator.report import report_text
from replicator.testing import MemoryScimServer

TOKEN = "subgroup-removals-token"
USERS = 10
SUBGROUPS = 6  # more than 5 removals of the parent's 16 members (38%): over max_delete_percent=25
FILLERS = 20  # other groups, so that deleting the subgroups (6 of 27 groups) passes the guard on objects


class Pair:
    """A source and a destination in-memory server, a state file, and a parent group ("Everyone": every
    user and every subgroup) replicated once."""

    def __init__(self, source: MemoryScimServer, destination: MemoryScimServer, tmp: Path) -> None:
        self.source, self.destination = source, destination
        self.state = tmp / "state.db"
        users = [source.add_user({"userName": f"user{i:02d}"})["id"] for i in range(USERS)]
        self.users = users
        self.subgroups = [source.add_group({"displayName": f"Sub {i}", "members": [{"value": users[i], "type": "User"}]})["id"]
                          for i in range(SUBGROUPS)]
        for i in range(FILLERS):
            source.add_group({"displayName": f"Team {i:02d}"})
        self.parent = source.add_group({"displayName": "Everyone", "members": [
            *({"value": u, "type": "User"} for u in users), *({"value": g, "type": "Group"} for g in self.subgroups)]})["id"]

    def config(self, *, retry_attempts: int = 3, **sync: Any) -> Config:
        return Config(source=SideConfig(url=self.source.base_url or "", token=TOKEN),
                      destination=SideConfig(url=self.destination.base_url or "", token=TOKEN,
                                             retry_attempts=retry_attempts),
                      sync=SyncConfig(**sync), state=str(self.state))

    async def cycle(self, outcome: str, *, mode: str = INCREMENTAL, dry_run: bool = False, retry_attempts: int = 3,
                    **sync: Any) -> CycleResult:
        result = await replicate(self.config(retry_attempts=retry_attempts, **sync), mode=mode, dry_run=dry_run)
        assert result.outcome == outcome, (result.summary(), result.held, result.notes)
        return result

    def delete_subgroups(self, count: int) -> None:
        """The source deletes `count` subgroups and, as SCIM servers do, takes them out of the parent."""
        gone = set(self.subgroups[:count])
        for group_id in gone:
            del self.source.groups[group_id]
        parent = self.source.groups[self.parent]
        parent["members"] = [m for m in parent["members"] if m["value"] not in gone]

    def take_users_out(self, count: int) -> None:
        """The source takes the last `count` users out of the parent (they stay in the source)."""
        leaving = set(self.users[USERS - count:])
        parent = self.source.groups[self.parent]
        parent["members"] = [m for m in parent["members"] if m["value"] not in leaving]

    def add_user_to_parent(self) -> None:
        """A new user of the source, a member of the parent."""
        user = self.source.add_user({"userName": "newcomer"})["id"]
        self.source.groups[self.parent]["members"].append({"value": user, "type": "User"})

    def parent_members(self) -> set[str]:
        """The names (userName, displayName) of the destination parent's members."""
        names = {i: u["userName"] for i, u in self.destination.users.items()}
        names |= {i: g["displayName"] for i, g in self.destination.groups.items()}
        (parent,) = [g for g in self.destination.groups.values() if g["displayName"] == "Everyone"]
        return {names.get(m["value"], m["value"]) for m in parent.get("members", [])}

    def destination_groups(self) -> set[str]:
        return {g["displayName"] for g in self.destination.groups.values()}


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    source, destination = MemoryScimServer(bearer_token=TOKEN), MemoryScimServer(bearer_token=TOKEN)
    await source.start()
    await destination.start()
    out = Pair(source, destination, tmp_path)
    await out.cycle("ok")
    assert out.parent_members() == {*(f"user{i:02d}" for i in range(USERS)), *(f"Sub {i}" for i in range(SUBGROUPS))}
    yield out
    await source.stop()
    await destination.stop()


def users_named(indexes: range) -> set[str]:
    return {f"user{i:02d}" for i in indexes}


def fail_the_member_drops(monkeypatch: pytest.MonkeyPatch, destination: MemoryScimServer) -> None:
    """The destination answers 503 to the first request of each member drop (after the removals)."""
    follow_up = LiveSink.follow_up

    async def failing(self: LiveSink, steps: list[Any]) -> None:
        destination.faults.script = [503]
        try:
            await follow_up(self, steps)
        finally:
            destination.faults.script = []

    monkeypatch.setattr(LiveSink, "follow_up", failing)


@pytest.mark.parametrize("mode", [INCREMENTAL, FULL])
async def test_a_parent_losing_deleted_subgroups_is_not_held(pair: Pair, mode: str) -> None:
    """The source deletes 6 subgroups of Everyone (16 members): they are deleted on the destination and
    Everyone holds its 10 users only; nothing was held, so the cycle is ok and counts no held member
    removal; the next cycle writes nothing."""
    pair.delete_subgroups(SUBGROUPS)
    result = await pair.cycle("ok", mode=mode)
    assert result.counts["deleted"] == SUBGROUPS
    assert result.counts["member_removals_held"] == 0 and result.held == []
    assert pair.parent_members() == users_named(range(USERS))
    assert not pair.destination_groups() & {f"Sub {i}" for i in range(SUBGROUPS)}
    again = await pair.cycle("ok", mode=mode)
    assert again.counts["member_removals_held"] == 0
    assert not {"POST", "PATCH", "PUT", "DELETE"} & set(again.destination_requests)


async def test_the_dry_run_predicts_no_hold_for_deleted_subgroups(pair: Pair) -> None:
    """The dry-run plans the 6 deletes and Everyone's loss of them, and holds nothing either."""
    pair.delete_subgroups(SUBGROUPS)
    plan = await pair.cycle("ok", dry_run=True)
    assert plan.counts["delete_planned"] == SUBGROUPS
    assert plan.counts["member_removals_held"] == 0 and plan.held == []
    assert [step.label for step in plan.changes if step.action == "patch"] == ["Everyone"]


async def test_a_real_mass_member_removal_beside_a_deleted_subgroup_is_still_held(pair: Pair) -> None:
    """Everyone loses a deleted subgroup and 6 users that stay in the source: the subgroup goes, the 6
    users are held (counted, listed, the cycle held) until the guard is lifted, judged against the 15
    members Everyone has without the subgroup (40%), as the next cycle judges them."""
    pair.delete_subgroups(1)
    pair.take_users_out(6)
    result = await pair.cycle("held")
    assert result.counts["deleted"] == 1 and result.counts["member_removals_held"] == 6
    ((kind, label, why),) = result.held
    assert (kind, label) == ("Group", "Everyone")
    assert why.startswith("6 member removals held: 6 removals are 40% of 15 members"), why
    assert pair.parent_members() == users_named(range(USERS)) | {f"Sub {i}" for i in range(1, SUBGROUPS)}
    again = await pair.cycle("held")
    assert again.counts["member_removals_held"] == 6 and again.held == result.held  # held every cycle until lifted
    await pair.cycle("ok", allow_member_removals=True)
    assert pair.parent_members() == users_named(range(4)) | {f"Sub {i}" for i in range(1, SUBGROUPS)}


async def test_member_removals_held_with_deleted_subgroups_are_counted_alone(pair: Pair) -> None:
    """Everyone loses its 6 deleted subgroups and one user: the guard held all 7 while planning; the
    subgroups went with their removal, the user's removal was held (counted as 1, its reason saying
    so); alone it is under the guard's limits, so the next cycle takes it out."""
    pair.delete_subgroups(SUBGROUPS)
    pair.take_users_out(1)
    result = await pair.cycle("held")
    assert result.counts["deleted"] == SUBGROUPS and result.counts["member_removals_held"] == 1
    ((_, label, why),) = result.held
    assert label == "Everyone" and why.startswith("1 member removals held: held with 6 removals of members "
                                                  "deleted this cycle"), why
    assert pair.parent_members() == users_named(range(USERS))
    again = await pair.cycle("ok")
    assert again.counts["member_removals_held"] == 0
    assert pair.parent_members() == users_named(range(USERS - 1))


async def test_subgroups_whose_removal_the_guard_on_objects_holds_stay_held_in_their_parent(pair: Pair) -> None:
    """With sync.max_delete_count=5, deleting 6 subgroups is held by the guard on objects: they stay on the
    destination and in Everyone, whose loss of them the membership guard holds (both counted)."""
    pair.delete_subgroups(SUBGROUPS)
    result = await pair.cycle("held", max_delete_count=5)
    assert result.counts["removals_held"] == SUBGROUPS and result.counts["member_removals_held"] == SUBGROUPS
    assert ("Group", "Everyone") in {(kind, label) for kind, label, _ in result.held}
    assert pair.parent_members() == users_named(range(USERS)) | {f"Sub {i}" for i in range(SUBGROUPS)}
    await pair.cycle("ok", max_delete_count=5, allow_mass_delete=True)
    assert pair.parent_members() == users_named(range(USERS))


async def test_a_failed_member_drop_leaves_the_hold_of_the_deleted_subgroups_counted(
        pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """The subgroups are deleted, but the PATCH taking them out of Everyone fails (one 503, no retry):
    Everyone still names them on the destination (the in-memory one, like some servers, does not drop
    them itself), so their removal is still held: counted, listed, and the next cycle, --full, says
    the same; lifting the guard takes them out (--full: Everyone's failure waits for its retry delay)."""
    pair.delete_subgroups(SUBGROUPS)
    fail_the_member_drops(monkeypatch, pair.destination)
    result = await pair.cycle("held", retry_attempts=1)
    assert result.counts["deleted"] == SUBGROUPS and result.counts["failed"] == 1
    assert [label for _, label, _ in result.failures] == ["Everyone"]
    assert result.counts["member_removals_held"] == SUBGROUPS
    ((_, label, why),) = result.held
    assert label == "Everyone" and why.startswith(f"{SUBGROUPS} member removals held"), why
    assert not pair.destination_groups() & {f"Sub {i}" for i in range(SUBGROUPS)}
    assert len(pair.parent_members()) == USERS + SUBGROUPS  # the deleted subgroups' ids stay
    monkeypatch.undo()
    again = await pair.cycle("held", mode=FULL)
    assert again.counts["member_removals_held"] == SUBGROUPS and [e[1] for e in again.held] == ["Everyone"]
    await pair.cycle("ok", mode=FULL, allow_member_removals=True)
    assert pair.parent_members() == users_named(range(USERS))


async def test_a_cycle_stopped_before_the_member_drops_leaves_the_hold_counted(
        pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """Asked to stop once the subgroups are deleted, the cycle writes no member drop: Everyone still
    names them, and their removal is still counted and listed as held."""
    async def stop(self: BlockedRenames) -> None:  # runs just before the member drops
        self.cx.stop.set()

    monkeypatch.setattr(BlockedRenames, "write_parked", stop)
    pair.delete_subgroups(SUBGROUPS)
    result = await pair.cycle("interrupted")
    assert result.counts["deleted"] == SUBGROUPS and result.counts["member_removals_held"] == SUBGROUPS
    assert [label for _, label, _ in result.held] == ["Everyone"]
    assert len(pair.parent_members()) == USERS + SUBGROUPS


def plan_line(plan: CycleResult, label: str) -> str:
    """The head line of the dry run's step for this object (the first: a member drop comes after)."""
    return next(line for line in report_text(plan).splitlines() if line.startswith("patch") and f" {label}" in line)


async def test_the_plan_line_of_a_settled_hold_says_what_is_still_held(pair: Pair) -> None:
    """Everyone loses its 6 deleted subgroups and a user, and gains a user: the dry run's line for its
    step says the 1 removal still held, as the held list and the counts do, not the 7 held while it
    was planned."""
    pair.delete_subgroups(SUBGROUPS)
    pair.take_users_out(1)
    pair.add_user_to_parent()
    plan = await pair.cycle("held", dry_run=True)
    assert plan.counts["member_removals_held"] == 1
    ((_, _, why),) = plan.held
    line = plan_line(plan, "Everyone")
    assert why in line and "7 member removals held" not in line, line
    (step,) = [s for s in plan.changes if s.label == "Everyone" and s.held_why]
    assert step.held_members == 1


async def test_the_plan_line_of_a_hold_settled_entirely_says_nothing_is_held(pair: Pair) -> None:
    """Everyone loses its 6 deleted subgroups and gains a user: nothing is held, and the dry run's
    line for its step (adding the user) does not say 6 removals are."""
    pair.delete_subgroups(SUBGROUPS)
    pair.add_user_to_parent()
    plan = await pair.cycle("ok", dry_run=True)
    assert plan.counts["member_removals_held"] == 0 and plan.held == []
    assert "held" not in plan_line(plan, "Everyone")
    assert not any(step.held for step in plan.changes)
