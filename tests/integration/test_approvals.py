"""An operator's approval of held removals (`scim-replicator approve`): the next cycle carries out up to
as many removals as it names (of a kind, and of one group's members), and only that cycle; a dry run
shows it and leaves it standing; it lifts nothing no number measures (an empty source read)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from replicator.app import approve_removals, read_status, replicate
from replicator.cli import main
from replicator.config import Config
from replicator.cycle import INCREMENTAL
from replicator.pipeline.canonical import CORE_SCHEMAS, GROUP, USER
from replicator.state import open_state
from replicator.testing import MemoryScimServer
from tests.harness import make_config

USERS = 20


@dataclass
class Pair:
    source: MemoryScimServer
    destination: MemoryScimServer
    config: Config

    def drop_users(self, count: int) -> None:
        for user_id in list(self.source.users)[:count]:
            del self.source.users[user_id]


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    """20 users copied (max_delete_count 3: four removals are held)."""
    source, destination = MemoryScimServer(), MemoryScimServer()
    await source.start()
    await destination.start()
    for index in range(USERS):
        source.add_user({"schemas": [CORE_SCHEMAS[USER]], "userName": f"user{index}"})
    config = make_config(source.base_url or "", destination.base_url or "", tmp_path / "state.db", max_delete_count=3)
    first = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert first.outcome == "ok" and len(destination.users) == USERS, first.summary()
    yield Pair(source, destination, config)
    await source.stop()
    await destination.stop()


async def test_an_approval_lets_the_next_cycle_alone_carry_out_what_was_held(pair: Pair) -> None:
    """6 users gone: held; `approve` (as many as the last run held: 6) lets the next cycle delete them and
    says so; the cycle after it holds 5 more again (an approval serves one cycle)."""
    pair.drop_users(6)
    held = await replicate(pair.config, mode=INCREMENTAL, dry_run=False)
    assert held.outcome == "held" and held.counts["removals_held"] == 6, held.summary()
    approval, _ = await approve_removals(pair.config.state, None, None, 60)
    assert approval is not None and approval.up_to == 6
    assert (await read_status(pair.config.state)).approval == approval
    approved = await replicate(pair.config, mode=INCREMENTAL, dry_run=False)
    assert approved.outcome == "ok" and approved.counts["deleted"] == 6, approved.summary()
    assert len(pair.destination.users) == USERS - 6
    assert any("(`approve`: up to 6 removals of users or of groups) apply to this cycle" in note for note in approved.notes), approved.notes
    assert (await read_status(pair.config.state)).approval is None
    pair.drop_users(5)
    again = await replicate(pair.config, mode=INCREMENTAL, dry_run=False)
    assert again.outcome == "held" and again.counts["removals_held"] == 5, again.summary()


async def test_an_approval_covers_no_more_than_it_names(pair: Pair) -> None:
    """Approved up to 5 while 6 removals wait: they stay held (over the number), and the approval is used."""
    pair.drop_users(6)
    await approve_removals(pair.config.state, 5, None, 60)
    result = await replicate(pair.config, mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "held" and result.counts["removals_held"] == 6, result.summary()
    assert any("6 removals exceed sync.max_delete_count=3, and more than the 5 approved (`approve`)" in note
               for note in result.notes), result.notes
    assert len(pair.destination.users) == USERS and (await read_status(pair.config.state)).approval is None


async def test_an_approval_below_the_configured_count_still_caps_what_goes(tmp_path: Path) -> None:
    """10 of 20 users gone, held for their share (50%) under the default max_delete_count of 100: an
    approval of 5 does not let the 10 go (it used to: the count limit was raised to the larger number)."""
    source, destination = MemoryScimServer(), MemoryScimServer()
    await source.start()
    await destination.start()
    try:
        ids = [source.add_user({"schemas": [CORE_SCHEMAS[USER]], "userName": f"user{i}"})["id"] for i in range(20)]
        config = make_config(source.base_url or "", destination.base_url or "", tmp_path / "state.db")
        await replicate(config, mode=INCREMENTAL, dry_run=False)
        for user_id in ids[:10]:
            del source.users[user_id]
        assert (await replicate(config, mode=INCREMENTAL, dry_run=False)).counts["removals_held"] == 10
        await approve_removals(config.state, 5, None, 60)
        capped = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert capped.outcome == "held" and len(destination.users) == 20, capped.summary()
        assert any("more than the 5 approved" in note for note in capped.notes), capped.notes
        await approve_removals(config.state, 10, None, 60)
        assert (await replicate(config, mode=INCREMENTAL, dry_run=False)).counts["deleted"] == 10
    finally:
        await source.stop()
        await destination.stop()


async def test_a_dry_run_shows_the_approval_and_leaves_it_standing(pair: Pair) -> None:
    """A dry run plans with the approval (6 deletes, none held) and leaves it for the real run, which uses it."""
    pair.drop_users(6)
    approval, _ = await approve_removals(pair.config.state, 6, None, 60)
    plan = await replicate(pair.config, mode=INCREMENTAL, dry_run=True)
    assert plan.counts["delete_planned"] == 6 and not plan.counts["removals_held"], (plan.counts, plan.notes)
    assert any("up to 6 removals of users or of groups) apply to this cycle" in note and "a dry run leaves it standing" in note
               for note in plan.notes), plan.notes
    assert (await read_status(pair.config.state)).approval == approval and len(pair.destination.users) == USERS
    real = await replicate(pair.config, mode=INCREMENTAL, dry_run=False)
    assert real.counts["deleted"] == 6 and (await read_status(pair.config.state)).approval is None


async def test_an_expired_approval_lets_nothing_through(pair: Pair) -> None:
    """An approval whose time ran out before a cycle started is not applied (one still standing is)."""
    pair.drop_users(6)
    now = time.time()
    async with open_state(pair.config.state) as store:
        await store.approvals.approve(6, 0, now=now - 120, expires_at=now - 60)
    result = await replicate(pair.config, mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "held" and result.counts["removals_held"] == 6, result.summary()
    assert not any("`approve`" in note for note in result.notes), result.notes
    async with open_state(pair.config.state) as store:
        await store.approvals.approve(6, 0, now=now - 120, expires_at=now + 60)
    assert (await replicate(pair.config, mode=INCREMENTAL, dry_run=False)).counts["deleted"] == 6


async def test_an_approval_does_not_lift_an_empty_source_read(pair: Pair) -> None:
    """Every user gone from the source read: an approval of 100 does not let the cycle wipe the destination."""
    pair.drop_users(USERS)
    await approve_removals(pair.config.state, 100, None, 60)
    result = await replicate(pair.config, mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "held" and len(pair.destination.users) == USERS, result.summary()
    assert any("the source returned no objects" in note for note in result.notes), result.notes
    assert any("(`approve`: up to 100 removals of users or of groups) apply" in note for note in result.notes), result.notes


async def test_an_approval_lets_a_group_lose_as_many_members(tmp_path: Path) -> None:
    """A group of 20 loses 10 members in the source (held by the membership guard); approved, the next
    cycle removes them from the destination's group."""
    source, destination = MemoryScimServer(), MemoryScimServer()
    await source.start()
    await destination.start()
    try:
        ids = [source.add_user({"schemas": [CORE_SCHEMAS[USER]], "userName": f"user{i}"})["id"] for i in range(20)]
        group = source.add_group({"schemas": [CORE_SCHEMAS[GROUP]], "displayName": "All",
                                  "members": [{"value": i, "type": "User"} for i in ids]})
        config = make_config(source.base_url or "", destination.base_url or "", tmp_path / "state.db")
        await replicate(config, mode=INCREMENTAL, dry_run=False)
        source.groups[group["id"]]["members"] = [{"value": i, "type": "User"} for i in ids[:10]]
        held = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert held.outcome == "held" and held.counts["member_removals_held"] == 10, held.summary()
        approval, _ = await approve_removals(config.state, None, None, 60)
        assert approval is not None and (approval.up_to, approval.members_up_to) == (0, 10)
        approved = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert approved.outcome == "ok" and not approved.counts["member_removals_held"], approved.summary()
        [copy] = destination.groups.values()
        assert len(copy["members"]) == 10
    finally:
        await source.stop()
        await destination.stop()


def test_approve_on_the_command_line(pair: Pair, capsys: pytest.CaptureFixture[str]) -> None:
    """`approve` with nothing held and no --up-to: exit 2 naming --up-to; after a held run it approves as
    many as were held and says so; `status` (text and JSON) shows it standing."""
    state = pair.config.state
    assert main(["approve", "--state", state]) == 2
    assert "held no removals; name how many with --up-to N (users or groups) or --members-up-to M" in capsys.readouterr().err
    assert main(["approve", "--state", state, "--up-to", "7", "--expires-in", "30", "--output", "json"]) == 0
    approval = json.loads(capsys.readouterr().out)["approval"]
    assert (approval["up_to"], approval["members_up_to"]) == (7, 0) and 1790 < approval["expires_at"] - approval["approved_at"] < 1810
    assert approval["says"].startswith("the next cycle may carry out up to 7 removals of users or of groups (approved")
    assert main(["status", "--state", state]) == 0
    assert "removals approved: the next cycle may carry out up to 7 removals of users or" in capsys.readouterr().out
    assert main(["status", "--state", state, "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["approval"]["up_to"] == 7
    assert main(["approve", "--state", state, "--members-up-to", "3"]) == 0
    assert "(it replaces the approval standing before it, which said: the next cycle may carry out up to 7" in \
        capsys.readouterr().out
    assert main(["approve", "--state", state, "--withdraw"]) == 0
    assert capsys.readouterr().out.startswith("withdrawn: the next cycle may carry out up to 3 member removals")
    assert main(["approve", "--state", state, "--withdraw"]) == 0
    assert capsys.readouterr().out == "no approval was standing\n"
    assert main(["approve", "--state", str(Path(state).with_name("missing.db"))]) == 2


async def test_each_guard_is_raised_by_its_own_number(tmp_path: Path) -> None:
    """6 of 20 users gone and a group of the other 14 losing 7 who stay: both guards hold. Approved for the
    users only (`--up-to 10`, more than the 7), the next cycle deletes them and the group still keeps its 7; approved then
    for the 7 member removals alone, the cycle after removes them."""
    source, destination = MemoryScimServer(), MemoryScimServer()
    await source.start()
    await destination.start()
    try:
        ids = [source.add_user({"schemas": [CORE_SCHEMAS[USER]], "userName": f"user{i}"})["id"] for i in range(20)]
        group = source.add_group({"schemas": [CORE_SCHEMAS[GROUP]], "displayName": "Staff",
                                  "members": [{"value": i, "type": "User"} for i in ids[6:]]})
        config = make_config(source.base_url or "", destination.base_url or "", tmp_path / "state.db",
                             max_delete_count=3)
        await replicate(config, mode=INCREMENTAL, dry_run=False)
        for user_id in ids[:6]:
            del source.users[user_id]
        source.groups[group["id"]]["members"] = [{"value": i, "type": "User"} for i in ids[6:13]]
        held = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert (held.counts["removals_held"], held.counts["member_removals_held"]) == (6, 7), held.summary()
        await approve_removals(config.state, 10, None, 60)  # (more than the group's 7: still not theirs)
        users_only = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert users_only.counts["deleted"] == 6 and users_only.counts["member_removals_held"] == 7, users_only.summary()
        [copy] = destination.groups.values()
        assert len(destination.users) == 14 and len(copy["members"]) == 14
        approval, _ = await approve_removals(config.state, None, 7, 60)
        assert approval is not None and (approval.up_to, approval.members_up_to) == (0, 7)
        members = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert members.outcome == "ok" and not members.counts["member_removals_held"], members.summary()
        [copy] = destination.groups.values()
        assert len(copy["members"]) == 7
    finally:
        await source.stop()
        await destination.stop()
