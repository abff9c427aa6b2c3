"""The destination's groups listed while the users are written: a first copy does not wait for that
listing between its two phases, and a cycle that stops before the groups' phase leaves no listing running."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from replicator.app import replicate
from replicator.config import ScopeConfig
from replicator.cycle import FULL, INCREMENTAL
from replicator.cycle.listing import DestinationIndex, Listing
from replicator.errors import ProtocolError
from replicator.pipeline.canonical import GROUP
from replicator.scim.client import ScimClient
from replicator.scim.paging import ReadReport
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
    original = DestinationIndex.read_listing

    async def groups_listing_never_ends(self: DestinationIndex, kind: str) -> tuple[Listing, ReadReport]:
        if kind != GROUP:
            return await original(self, kind)
        listing_began.set()
        stop.set()  # the cycle is asked to stop while this listing still runs
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    monkeypatch.setattr(DestinationIndex, "read_listing", groups_listing_never_ends)
    async with memory_servers(TOKEN) as (source, destination):
        seed_directory(source, 40, 3)
        pair = MemoryPair(source, destination, tmp_path, TOKEN)
        result = await asyncio.wait_for(replicate(pair.config, mode=INCREMENTAL, dry_run=False, stop=stop), 30)
    assert listing_began.is_set()
    assert result.outcome == "interrupted", result.summary()
    running = [task for task in asyncio.all_tasks() if "groups_listing_never_ends" in repr(task.get_coro())]
    assert not running
    assert not destination.groups


async def test_a_groups_listing_that_failed_ahead_of_a_phase_never_reached_leaves_the_held_outcome(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full cycle whose user filter matches none of the users it replicates is held at the end of the
    users' phase. The destination's groups, listed meanwhile, failed: that listing was never used, so the
    cycle is held (not partial) and says nothing of it."""
    original = ScimClient.iter_pages

    def groups_fail_at_the_destination(self: ScimClient, kind: str, report: ReadReport,
                                       **options: Any) -> AsyncGenerator[list[Any], None]:
        if kind != GROUP or str(self.base_url).rstrip("/") != (destination.base_url or "").rstrip("/"):
            return original(self, kind, report, **options)

        async def failing() -> AsyncGenerator[list[Any], None]:
            report.problems.append("page 1: injected")
            raise ProtocolError("GET /v2/Groups: injected failure")
            yield []

        return failing()

    async with memory_servers(TOKEN) as (source, destination):
        seed_directory(source, 10, 2)
        pair = MemoryPair(source, destination, tmp_path, TOKEN)
        assert (await replicate(pair.config, mode=INCREMENTAL, dry_run=False)).outcome == "ok"
        monkeypatch.setattr(ScimClient, "iter_pages", groups_fail_at_the_destination)
        config = msgspec.structs.replace(pair.config, scope=ScopeConfig(user_filter='title eq "nobody"'))
        result = await replicate(config, mode=FULL, dry_run=False)
    assert result.reads["destination Group"].problems == ["page 1: injected"]  # the listing did fail
    assert result.outcome == "held", result.summary()
    assert not [note for note in result.notes if "listing incomplete" in note], result.notes
