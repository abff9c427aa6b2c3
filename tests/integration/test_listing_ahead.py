"""The destination's groups listed while the users are written: a first copy does not wait for that
listing between its two phases, and a cycle that stops before the groups' phase leaves no listing running."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from replicator.app import replicate
from replicator.cycle import INCREMENTAL
from replicator.cycle.listing import DestinationIndex, Listing
from replicator.pipeline.canonical import GROUP
from replicator.testing.seeding import seed_directory
from tests.harness import MemoryPair, memory_servers

TOKEN = "listing-ahead-token"


async def test_a_first_copy_lists_the_destinations_groups_while_it_writes_the_users(tmp_path: Path) -> None:
    async with memory_servers(TOKEN) as (source, destination):
        seed_directory(source, 40, 3)
        pair = MemoryPair(source, destination, tmp_path, TOKEN)
        result = await replicate(pair.config, mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "ok", result.summary()
    assert (len(destination.users), len(destination.groups)) == (40, 3)
    log = destination.request_log
    groups_listed = log.index(("GET", "/v2/Groups"))
    last_user_written = max(index for index, entry in enumerate(log) if entry == ("POST", "/v2/Users"))
    assert groups_listed < last_user_written, log


async def test_a_cycle_stopped_in_the_users_phase_leaves_no_listing_of_groups_running(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stop, listing_began = asyncio.Event(), asyncio.Event()
    original = DestinationIndex.list_destination

    async def groups_listing_never_ends(self: DestinationIndex, kind: str) -> Listing:
        if kind != GROUP:
            return await original(self, kind)
        listing_began.set()
        stop.set()  # the cycle is asked to stop while this listing still runs
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    monkeypatch.setattr(DestinationIndex, "list_destination", groups_listing_never_ends)
    async with memory_servers(TOKEN) as (source, destination):
        seed_directory(source, 40, 3)
        pair = MemoryPair(source, destination, tmp_path, TOKEN)
        result = await asyncio.wait_for(replicate(pair.config, mode=INCREMENTAL, dry_run=False, stop=stop), 30)
    assert listing_began.is_set()
    assert result.outcome == "interrupted", result.summary()
    running = [task for task in asyncio.all_tasks() if "groups_listing_never_ends" in repr(task.get_coro())]
    assert not running
    assert not destination.groups
