"""A scope mistake or a shrunken source group must not remove access: memberships are guarded like objects.

Each test replicates a directory first, then runs with a bad or narrow scope (or a source group that lost
most of its members) and checks that the destination's memberships are exactly as they were and that the
outcome is held (exit code 4); lifting the guard (`allow_mass_delete` for objects, `allow_member_removals`
for a group's members) then lets the change through.
"""

from __future__ import annotations

from typing import Any

import msgspec

from replicator.app import replicate
from replicator.config import Config, ScopeConfig
from replicator.cycle import FULL, INCREMENTAL
from replicator.pipeline.canonical import GROUP, USER
from tests.conftest import DESTINATION_TOKEN, SOURCE_TOKEN, Pair
from tests.harness import make_config, patch_body, read_all, seed, writes
from tests.integration.test_cli import cli


def config_for(pair: Pair, scope: ScopeConfig | None = None, **sync: Any) -> Config:
    config = make_config(pair.source_url, pair.destination_url, pair.state,
                         source_token=SOURCE_TOKEN, destination_token=DESTINATION_TOKEN, **sync)
    return msgspec.structs.replace(config, scope=scope) if scope is not None else config


async def memberships(pair: Pair) -> dict[str, set[str]]:
    """Destination group displayName -> the userNames (or group names) of its members."""
    users = {u["id"]: u["userName"] for u in await read_all(pair.destination, USER)}
    groups = await read_all(pair.destination, GROUP)
    names = {g["id"]: g["displayName"] for g in groups}
    return {g["displayName"]: {users.get(m["value"]) or names.get(m["value"]) or m["value"]
                               for m in g.get("members", [])} for g in groups}


async def replicated(pair: Pair) -> tuple[dict[str, list[str]], dict[str, set[str]]]:
    ids = await seed(pair.source, users=40, groups=6)
    first = await replicate(config_for(pair), mode=INCREMENTAL, dry_run=False)
    assert first.outcome == "ok", first.summary()
    before = await memberships(pair)
    assert sum(len(m) for m in before.values()) > 45  # the seed made memberships to lose
    return ids, before


async def smallest_group(pair: Pair) -> str:
    groups = [g for g in await read_all(pair.source, GROUP) if g.get("members")]
    return min(groups, key=lambda g: len(g["members"]))["displayName"]


async def test_scope_group_typo_is_held_before_any_write(pair: Pair) -> None:
    """A scope.user_groups name the source lacks stops --once and --full before any write (held, names the setting)."""
    _, before = await replicated(pair)
    typo = ScopeConfig(user_groups=["All Staf"])
    for mode in (INCREMENTAL, FULL):
        result = await replicate(config_for(pair, typo), mode=mode, dry_run=False)
        assert result.outcome == "held", result.summary()
        assert writes(result.destination_requests) == 0, result.destination_requests
        assert any("scope.user_groups" in note and "'All Staf' (did you mean 'All Staff'?)" in note
                   for note in result.notes), result.notes
        assert await memberships(pair) == before


async def test_narrow_scope_keeps_every_membership(pair: Pair) -> None:
    """A real but narrow scope (the smallest group): --once and --full remove no membership and no user (held)."""
    _, before = await replicated(pair)
    narrow = ScopeConfig(user_groups=[await smallest_group(pair)])
    for mode in (INCREMENTAL, FULL):
        result = await replicate(config_for(pair, narrow), mode=mode, dry_run=False)
        assert result.outcome == "held", result.summary()
        assert result.counts["removals_held"] > 30 and result.destination_requests.get("DELETE", 0) == 0
        assert await memberships(pair) == before
        assert len(await read_all(pair.destination, USER)) == 40
    # the guard lifted on purpose: users outside the scope leave their groups and the destination
    allowed = await replicate(config_for(pair, narrow, allow_mass_delete=True), mode=FULL, dry_run=False)
    assert allowed.outcome == "ok", allowed.summary()
    assert sum(len(m) for m in (await memberships(pair)).values()) < sum(len(m) for m in before.values())


async def test_user_filter_matching_nothing_is_held(pair: Pair) -> None:
    """A scope.user_filter that matches none of the tracked users stops the cycle before any write."""
    _, before = await replicated(pair)
    nobody = ScopeConfig(user_filter='userName eq "nobody-has-this-name"')
    result = await replicate(config_for(pair, nobody), mode=FULL, dry_run=False)
    assert result.outcome == "held", result.summary()
    assert writes(result.destination_requests) == 0
    assert any("scope.user_filter matches none of the 40 Users" in note for note in result.notes), result.notes
    assert await memberships(pair) == before


async def test_a_source_group_losing_most_members_is_held(pair: Pair) -> None:
    """A group whose source lost most of its members keeps them (held, listed) until the guard is lifted."""
    _, before = await replicated(pair)
    staff = next(g for g in await read_all(pair.source, GROUP) if g["displayName"] == "All Staff")
    leaving = [m["value"] for m in staff["members"][3:]]
    await pair.source.patch(GROUP, staff["id"], patch_body(
        [{"op": "remove", "path": f'members[value eq "{value}"]'} for value in leaving]))
    for mode in (INCREMENTAL, FULL):
        result = await replicate(config_for(pair), mode=mode, dry_run=False)
        assert result.outcome == "held", result.summary()
        assert result.counts["member_removals_held"] == len(leaving)
        assert any(label == "All Staff" and "member removals held" in why for _, label, why in result.held)
        assert await memberships(pair) == before
    plan = await replicate(config_for(pair), mode=INCREMENTAL, dry_run=True)
    assert plan.outcome == "held" and [label for _, label, _ in plan.held] == ["All Staff"]
    allowed = await replicate(config_for(pair, allow_member_removals=True), mode=INCREMENTAL, dry_run=False)
    assert allowed.outcome == "ok", allowed.summary()
    assert len((await memberships(pair))["All Staff"]) == 3


async def departures(pair: Pair) -> tuple[set[str], set[str]]:
    """After a first cycle: 12 users (30%, nobody's manager, not in Leadership) leave the source and its
    groups, and 20 users who stay leave All Staff (50% of it). Returns the userNames of both sets."""
    ids, _ = await replicated(pair)
    names = {u["id"]: u["userName"] for u in await read_all(pair.source, USER)}
    gone, left_staff = ids[USER][28:], ids[USER][8:28]  # (user i reports to user (i - 1) // 5: 0..7 manage)
    for group in await read_all(pair.source, GROUP):
        leaving = [m["value"] for m in group.get("members", []) if m["value"] in gone
                   or (group["displayName"] == "All Staff" and m["value"] in left_staff)]
        if leaving:
            await pair.source.patch(GROUP, group["id"], patch_body(
                [{"op": "remove", "path": f'members[value eq "{value}"]'} for value in leaving]))
    for user_id in gone:
        await pair.source.delete(USER, user_id)
    return {names[i] for i in gone}, {names[i] for i in left_staff}


async def test_allow_mass_delete_removes_the_users_but_holds_a_groups_mass_member_removals(pair: Pair) -> None:
    """--allow-mass-delete deletes the departed users (their memberships go with them, in every group) but
    All Staff keeps the 20 staying users it lost: the membership guard holds them, naming its own flag."""
    gone, left_staff = await departures(pair)
    result = await replicate(config_for(pair, allow_mass_delete=True), mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "held", result.summary()
    assert result.counts["deleted"] == 12 and result.counts["member_removals_held"] == 20
    ((_, label, why),) = result.held
    assert label == "All Staff" and "--allow-member-removals" in why and "allow_mass_delete no longer" in why
    assert {u["userName"] for u in await read_all(pair.destination, USER)}.isdisjoint(gone)
    after = await memberships(pair)
    assert left_staff <= after["All Staff"] and len(after["All Staff"]) == 28
    assert not any(gone & members for members in after.values())


async def test_allow_member_removals_removes_the_members_but_holds_mass_user_deletes(pair: Pair) -> None:
    """--allow-member-removals (the real CLI) lets All Staff lose its members but deletes none of the 12
    departed users: exit 4, the note naming --allow-mass-delete; with both flags the cycle is ok."""
    gone, left_staff = await departures(pair)
    flags = ["--source-url", pair.source_url, "--source-token", SOURCE_TOKEN, "--destination-url",
             pair.destination_url, "--destination-token", DESTINATION_TOKEN, "--state", str(pair.state)]
    code, out, err = await cli("run", "--once", "--allow-member-removals", *flags)
    assert code == 4, (out, err)
    assert "12 User removals held" in out and "run with --allow-mass-delete if this is intended" in out
    assert "member removals held" not in out
    assert gone <= {u["userName"] for u in await read_all(pair.destination, USER)}
    assert (await memberships(pair))["All Staff"].isdisjoint(left_staff | gone)
    code, out, err = await cli("run", "--once", "--allow-member-removals", "--allow-mass-delete", *flags)
    assert code == 0, (out, err)
    assert {u["userName"] for u in await read_all(pair.destination, USER)}.isdisjoint(gone)


async def test_cli_exit_code_says_held_for_a_scope_typo(pair: Pair) -> None:
    """Through the real CLI, a scope typo exits 4 and its report names the setting; memberships stay."""
    _, before = await replicated(pair)
    flags = ["--source-url", pair.source_url, "--source-token", SOURCE_TOKEN, "--destination-url",
             pair.destination_url, "--destination-token", DESTINATION_TOKEN, "--state", str(pair.state)]
    code, out, err = await cli("run", "--full", "--scope-user-groups", "All Staf", *flags)
    assert code == 4, (out, err)
    assert "scope.user_groups names groups the source does not have: 'All Staf'" in out
    assert await memberships(pair) == before
