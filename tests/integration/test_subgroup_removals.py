"""Subgroups deleted from the source, and the membership guard of the groups that held them.

A parent group that loses subgroups the source deleted loses them on the destination too: the groups'
removals are judged only once the groups are read (after the parent was planned), so the membership
guard holds the parent's loss of them while planning, and the cycle's removals then delete them and
take them out of the parent (the member drop). Such removals went through: they are not counted as
held, and the cycle is not held for them, once the drop is written (a failed or unwritten one leaves
them in the parent: still held). Member removals of the parent that are not deleted objects
stay held, counted and listed, as before.

The state remembers what we removed (state.removed) until no group of ours names it: a parent whose drop
failed, or was not written, loses those members in the next cycle without a hold (and so does one that
still names users we deleted), while removals of members we did not delete are still held; a dry run
predicts it, and the remembered removals are forgotten once dropped, or after 30 days.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from replicator.app import replicate
from replicator.config import Config, SideConfig, SyncConfig
from replicator.cycle import FULL, INCREMENTAL
from replicator.cycle.renames import BlockedRenames
from replicator.cycle.result import CycleResult
from replicator.cycle.sinks import LiveSink
from replicator.cycle.writer import StepWriter
from replicator.pipeline.plan import Step
from replicator.pipeline.removals import REMOVALS_REMEMBERED
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

    def delete_users(self, indexes: range) -> None:
        """The source deletes these users and, as SCIM servers do, takes them out of its groups."""
        gone = {self.users[i] for i in indexes}
        for user_id in gone:
            del self.source.users[user_id]
        for group in self.source.groups.values():
            group["members"] = [m for m in group.get("members", []) if m["value"] not in gone]

    def removed_remembered(self) -> int:
        """How many removals of ours the state remembers (state.removed)."""
        with closing(sqlite3.connect(self.state)) as db:
            return int(db.execute("SELECT COUNT(*) FROM removed_objects").fetchone()[0])

    def age_removals(self, seconds: float) -> None:
        """The removals the state remembers were made `seconds` earlier."""
        with closing(sqlite3.connect(self.state)) as db, db:
            db.execute("UPDATE removed_objects SET removed_at = removed_at - ?", (seconds,))

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


def fail_the_member_drops(monkeypatch: pytest.MonkeyPatch, destination: MemoryScimServer) -> list[str]:
    """The destination answers 503 to the first request of each member drop (after the removals); the
    list returned gets the label of each drop the fault was answered to."""
    follow_up = LiveSink.follow_up
    fired: list[str] = []

    async def failing(self: LiveSink, steps: list[Step]) -> None:
        destination.faults.script = [503]
        try:
            await follow_up(self, steps)
        finally:
            fired.extend(step.label for step in steps if not destination.faults.script)
            destination.faults.script = []

    monkeypatch.setattr(LiveSink, "follow_up", failing)
    return fired


def fail_the_writes_of(monkeypatch: pytest.MonkeyPatch, destination: MemoryScimServer, label: str) -> list[str]:
    """The destination answers 503 to the first request of every write of the object named `label` (its
    planned write and its member drop); the list returned gets the action of each write it fired on."""
    run_step = StepWriter.run_step
    fired: list[str] = []

    async def failing(self: StepWriter, step: Step) -> None:
        if step.label != label:
            return await run_step(self, step)
        destination.faults.script = [503]
        try:
            await run_step(self, step)
        finally:
            fired.extend([step.action] if not destination.faults.script else [])
            destination.faults.script = []

    monkeypatch.setattr(StepWriter, "run_step", failing)
    return fired


def retry_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed object is due again at once (no retry delay): the next incremental cycle plans it."""
    monkeypatch.setattr("replicator.cycle.recorder.failure_backoff", lambda attempts: 0.0)


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
    assert pair.removed_remembered() == 0  # no group of ours names them any more
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
                                                  "we deleted"), why
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


async def fail_the_drop_of_the_deleted_subgroups(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> CycleResult:
    """The source deletes the 6 subgroups; the cycle deletes them, but the PATCH taking them out of
    Everyone fails (one 503, no retry): Everyone still names them on the destination (the in-memory one,
    like some servers, does not drop them itself), so their removal is still held this cycle."""
    pair.delete_subgroups(SUBGROUPS)
    fired = fail_the_member_drops(monkeypatch, pair.destination)
    result = await pair.cycle("held", retry_attempts=1)
    assert fired == ["Everyone"]  # the fault was answered to Everyone's drop
    assert result.counts["deleted"] == SUBGROUPS and result.counts["failed"] == 1
    assert [label for _, label, _ in result.failures] == ["Everyone"]
    assert result.counts["member_removals_held"] == SUBGROUPS
    ((_, label, why),) = result.held
    assert label == "Everyone" and why.startswith(f"{SUBGROUPS} member removals held"), why
    assert not pair.destination_groups() & {f"Sub {i}" for i in range(SUBGROUPS)}
    assert len(pair.parent_members()) == USERS + SUBGROUPS  # the deleted subgroups' ids stay
    assert pair.removed_remembered() == SUBGROUPS
    monkeypatch.undo()
    return result


@pytest.mark.parametrize("mode", [INCREMENTAL, FULL])
async def test_a_failed_member_drop_of_deleted_subgroups_is_written_next_cycle_without_a_hold(
        pair: Pair, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """The drop of the deleted subgroups from Everyone fails; the next cycle (incremental once Everyone's
    retry is due, or --full), without --allow-member-removals, knows they were ours and are gone: it
    takes them out of Everyone and holds nothing; the state forgets them; the cycle after writes nothing."""
    if mode == INCREMENTAL:
        retry_at_once(monkeypatch)
    await fail_the_drop_of_the_deleted_subgroups(pair, monkeypatch)
    again = await pair.cycle("ok", mode=mode)
    assert again.counts["member_removals_held"] == 0 and again.held == [] and again.counts["failed"] == 0
    assert pair.parent_members() == users_named(range(USERS))
    assert pair.removed_remembered() == 0
    third = await pair.cycle("ok", mode=mode)
    assert not {"POST", "PATCH", "PUT", "DELETE"} & set(third.destination_requests)


async def test_the_dry_run_after_a_failed_member_drop_predicts_no_hold(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the failed drop, a dry run plans Everyone's loss of the deleted subgroups and holds nothing,
    as the live cycle after it does (the dry run forgot none of the removals the state remembers)."""
    await fail_the_drop_of_the_deleted_subgroups(pair, monkeypatch)
    plan = await pair.cycle("ok", mode=FULL, dry_run=True)
    assert plan.counts["member_removals_held"] == 0 and plan.held == []
    assert [(step.label, step.reason) for step in plan.changes if step.action == "patch"] == [
        ("Everyone", "a member was removed")]
    assert pair.removed_remembered() == SUBGROUPS
    live = await pair.cycle("ok", mode=FULL)
    assert live.counts["member_removals_held"] == 0 and live.counts["updated"] == plan.counts["patch_planned"] == 1
    assert pair.parent_members() == users_named(range(USERS))


async def test_removals_of_members_we_did_not_delete_are_still_held_next_cycle(
        pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """Everyone loses its 6 deleted subgroups and 6 users that stay in the source, and the drop of the
    subgroups fails: all 12 are held. The next cycle takes the subgroups out without counting them, and
    still holds the 6 users (judged against the 10 members left, 60%), every cycle, until lifted."""
    pair.delete_subgroups(SUBGROUPS)
    pair.take_users_out(6)
    fired = fail_the_member_drops(monkeypatch, pair.destination)
    first = await pair.cycle("held", retry_attempts=1)
    assert fired == ["Everyone"] and first.counts["member_removals_held"] == 12
    monkeypatch.undo()
    again = await pair.cycle("held", mode=FULL)
    assert again.counts["member_removals_held"] == 6
    ((_, label, why),) = again.held
    assert label == "Everyone" and why.startswith("6 member removals held: 6 removals are 60% of 10 members"), why
    assert pair.parent_members() == users_named(range(USERS))
    third = await pair.cycle("held")
    assert third.counts["member_removals_held"] == 6 and third.held == again.held
    await pair.cycle("ok", allow_member_removals=True)
    assert pair.parent_members() == users_named(range(4))


@pytest.mark.parametrize("remove_action", ["delete", "disable"])
async def test_users_we_removed_whose_group_write_failed_leave_it_next_cycle_without_a_hold(
        pair: Pair, monkeypatch: pytest.MonkeyPatch, remove_action: str) -> None:
    """The source deletes 6 of Everyone's users; we delete (or disable) them, but both Everyone's write
    leaving them out and its member drop fail. Next cycle Everyone still names them and would lose 6 of
    16 members: they are users we removed, so nothing is held and Everyone loses them."""
    pair.delete_users(range(4, USERS))
    fired = fail_the_writes_of(monkeypatch, pair.destination, "Everyone")
    first = await pair.cycle("partial", retry_attempts=1, allow_mass_delete=True, remove_action=remove_action)
    assert fired == ["patch", "patch"]  # its planned write, then its member drop
    assert first.counts["deleted" if remove_action == "delete" else "disabled"] == 6
    assert [label for _, label, _ in first.failures] == ["Everyone", "Everyone"]
    assert len(pair.parent_members()) == USERS + SUBGROUPS  # the removed users' ids stay
    monkeypatch.undo()
    again = await pair.cycle("ok", mode=FULL, remove_action=remove_action)
    assert again.counts["member_removals_held"] == 0 and again.held == []
    assert pair.parent_members() == users_named(range(4)) | {f"Sub {i}" for i in range(SUBGROUPS)}
    assert pair.removed_remembered() == 0


async def test_a_removal_remembered_longer_than_its_time_is_forgotten(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """Removals the state remembers past REMOVALS_REMEMBERED (30 days) are forgotten by the next cycle:
    the table does not grow without bound, and a hold of such members comes back to an operator."""
    await fail_the_drop_of_the_deleted_subgroups(pair, monkeypatch)
    pair.age_removals(REMOVALS_REMEMBERED + 60)
    again = await pair.cycle("held", mode=FULL)
    assert again.counts["member_removals_held"] == SUBGROUPS
    assert pair.removed_remembered() == 0


async def test_a_cycle_stopped_before_the_member_drops_leaves_the_hold_counted(
        pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """Asked to stop once the subgroups are deleted, the cycle writes no member drop: Everyone still
    names them, and their removal is still counted and listed as held. The next cycle drops them without
    a hold."""
    async def stop(self: BlockedRenames) -> None:  # runs just before the member drops
        self.cx.stop.set()

    monkeypatch.setattr(BlockedRenames, "write_parked", stop)
    pair.delete_subgroups(SUBGROUPS)
    result = await pair.cycle("interrupted")
    assert result.counts["deleted"] == SUBGROUPS and result.counts["member_removals_held"] == SUBGROUPS
    assert [label for _, label, _ in result.held] == ["Everyone"]
    assert len(pair.parent_members()) == USERS + SUBGROUPS
    monkeypatch.undo()
    again = await pair.cycle("ok")
    assert again.counts["member_removals_held"] == 0 and again.held == []
    assert pair.parent_members() == users_named(range(USERS))
    assert pair.removed_remembered() == 0


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
