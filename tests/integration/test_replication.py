"""End-to-end replication against real SCIM servers (scim2-server processes and the in-memory server)."""

from __future__ import annotations

from typing import Any

from replicator.app import replicate
from replicator.cycle import FULL, INCREMENTAL
from replicator.pipeline.canonical import GROUP, USER
from replicator.scim.paging import ReadReport
from replicator.scim.urns import ENTERPRISE_USER
from replicator.state import open_state
from tests.conftest import DESTINATION_TOKEN, SOURCE_TOKEN, Pair
from tests.harness import (
    assert_replicated,
    count_duplicates,
    make_config,
    patch_body,
    read_all,
    seed,
    writes,
)


def config_for(pair: Pair, **sync: Any):  # type: ignore[no-untyped-def]
    return make_config(pair.source_url, pair.destination_url, pair.state,
                       source_token=SOURCE_TOKEN, destination_token=DESTINATION_TOKEN, **sync)


async def dest_ids(pair: Pair) -> dict[tuple[str, str], str]:
    async with open_state(pair.state) as store:
        return {(kind, row.source_id): row.dest_id
                for kind in (USER, GROUP) async for row in store.iter_rows(kind)}


async def test_full_copy_then_second_run_writes_nothing(pair: Pair) -> None:
    """A first copy replicates users, managers, a large group (chunked), nested and empty groups; reruns write nothing."""
    await seed(pair.source, users=60, groups=6)
    config = config_for(pair, member_chunk=25)
    first = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert first.outcome == "ok", first.summary()
    assert first.counts["created"] == 60 + 7
    assert first.destination_requests.get("DELETE", 0) == 0
    await assert_replicated(pair.source, pair.destination)
    sizes = [len(g.get("members", [])) for g in await read_all(pair.source, GROUP)]
    assert max(sizes) == 60
    if first.destination_flow.get("bulk_operations"):  # scim2-server offers SCIM Bulk
        assert first.destination_requests["POST"] < 67 / 4
    else:
        # one POST per object; a group's members beyond the first 25 follow in PATCHes of at most 25
        assert first.destination_requests["POST"] == 67
        assert first.destination_requests.get("PATCH", 0) == sum(max(0, -(-n // 25) - 1) for n in sizes)
    again = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert writes(again.destination_requests) == 0, again.summary()
    assert again.counts["unchanged"] == 67
    full = await replicate(config, mode=FULL, dry_run=False)
    assert writes(full.destination_requests) == 0, full.summary()


async def test_source_changes_propagate_as_patches(pair: Pair) -> None:
    """Modify, clear, rename, deactivate, manager change, membership add/remove and group rename are PATCHes; ids stay."""
    ids = await seed(pair.source, users=20, groups=4)
    config = config_for(pair)
    await replicate(config, mode=INCREMENTAL, dry_run=False)
    before = await dest_ids(pair)
    users, groups = ids[USER], ids[GROUP]
    src = pair.source
    await src.patch(USER, users[1], patch_body([{"op": "replace", "path": "title", "value": "Chief Of Tests"}]))
    await src.patch(USER, users[2], patch_body([{"op": "remove", "path": "phoneNumbers"},
                                                 {"op": "remove", "path": "name.givenName"}]))
    await src.patch(USER, users[3], patch_body([{"op": "replace", "path": "userName", "value": "renamed-3@example.com"}]))
    await src.patch(USER, users[4], patch_body([{"op": "replace", "path": "active", "value": False}]))
    await src.patch(USER, users[6], patch_body(
        [{"op": "replace", "path": f"{ENTERPRISE_USER}:manager", "value": {"value": users[0]}}]))
    await src.patch(GROUP, groups[1], patch_body([
        {"op": "add", "path": "members", "value": [{"value": users[19], "type": "User"}]},
        {"op": "remove", "path": f'members[value eq "{users[0]}"]'},
    ]))
    await src.patch(GROUP, groups[2], patch_body([{"op": "replace", "path": "displayName", "value": "Renamed Group"}]))
    await src.delete(USER, users[5])
    result = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "ok", result.summary()
    await assert_replicated(pair.source, pair.destination)
    assert result.counts["created"] == 0 and result.counts["adopted"] == 0
    assert result.counts["updated"] >= 7 and result.counts["deleted"] == 1
    after = await dest_ids(pair)
    deleted = before.pop((USER, users[5]))
    assert after == before  # every surviving object kept its destination id
    # neither server drops a deleted user from its groups: the cycle that deleted it took it out
    groups_after = [group async for page in pair.destination.iter_pages(GROUP, ReadReport("Group")) for group in page]
    assert not any(m.get("value") == deleted for group in groups_after for m in group.get("members", []))
    again = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert writes(again.destination_requests) == 0, again.summary()


async def test_populated_destination_is_adopted_not_duplicated(pair: Pair) -> None:
    """A first run against a destination that already has the objects adopts them instead of creating copies."""
    await seed(pair.source, users=15, groups=3)
    dest_seed = await seed(pair.destination, users=15, groups=3)
    await pair.destination.patch(USER, dest_seed[USER][0], patch_body(
        [{"op": "replace", "path": "title", "value": "stale title on the destination"}]))
    config = config_for(pair)
    result = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "ok", result.summary()
    assert result.counts["adopted"] == 15 + 4
    assert result.destination_requests.get("POST", 0) == 0
    assert await count_duplicates(pair.destination) == 0
    await assert_replicated(pair.source, pair.destination)
    again = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert writes(again.destination_requests) == 0


async def test_drift_on_destination_is_repaired_by_full(pair: Pair) -> None:
    """Edits and deletions made directly on the destination are invisible to --once and repaired by --full."""
    await seed(pair.source, users=12, groups=3)
    config = config_for(pair)
    await replicate(config, mode=INCREMENTAL, dry_run=False)
    dest_users = await read_all(pair.destination, USER)
    dest_groups = await read_all(pair.destination, GROUP)
    await pair.destination.patch(USER, dest_users[1]["id"], patch_body(
        [{"op": "replace", "path": "title", "value": "edited on the destination"}]))
    await pair.destination.patch(USER, dest_users[2]["id"], patch_body([{"op": "remove", "path": "emails"}]))
    big = next(g for g in dest_groups if g["displayName"] == "All Staff")
    await pair.destination.patch(GROUP, big["id"], patch_body(
        [{"op": "remove", "path": f'members[value eq "{dest_users[3]["id"]}"]'}]))
    await pair.destination.delete(USER, dest_users[4]["id"])
    incremental = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert writes(incremental.destination_requests) == 0
    full = await replicate(config, mode=FULL, dry_run=False)
    assert full.outcome == "ok", full.summary()
    assert full.counts["recreated"] == 1
    await assert_replicated(pair.source, pair.destination)
    again = await replicate(config, mode=FULL, dry_run=False)
    assert writes(again.destination_requests) == 0, again.summary()


async def test_dry_run_writes_nothing_and_plans_everything(pair: Pair) -> None:
    """--dry-run plans every create (groups with members of new users) and writes neither destination nor state."""
    await seed(pair.source, users=10, groups=3)
    config = config_for(pair)
    result = await replicate(config, mode=INCREMENTAL, dry_run=True)
    assert writes(result.destination_requests) == 0
    assert result.counts["create_planned"] == 10 + 4
    group = next(s for s in result.changes if s.kind == GROUP and s.label == "All Staff")
    assert group.desired is not None and len(group.desired["members"]) == 10
    assert await read_all(pair.destination, USER) == []
    async with open_state(pair.state) as store:
        assert await store.count() == 0
