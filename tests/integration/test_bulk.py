"""SCIM Bulk (RFC 7644 3.7): batched creates, patches and deletes, and falling back when Bulk says no."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from replicator.cli import replicate
from replicator.config import Config, SideConfig, SyncConfig
from replicator.pipeline.cycle import INCREMENTAL
from replicator.sample_data import group_plan, sample_group, sample_users
from replicator.scim.memory_server import Faults, MemoryScimServer
from tests.integration.test_reliability import Servers, delete_user
from tests.harness import writes

TOKEN = "reliability-token"


@pytest.fixture
async def bulk_servers(tmp_path: Path) -> AsyncIterator[Servers]:
    source = MemoryScimServer(bearer_token=TOKEN)
    destination = MemoryScimServer(bearer_token=TOKEN, bulk_max_operations=50, patch_returns_resource=False)
    await source.start()
    await destination.start()
    yield Servers(source, destination, tmp_path)
    await source.stop()
    await destination.stop()


def seed(server: MemoryScimServer, users: int, groups: int) -> list[str]:
    ids = [server.add_user(u)["id"] for u in sample_users(users)]
    for name, members in group_plan(users, groups):
        server.add_group(sample_group(name, [ids[i] for i in members[:40]]))
    return ids


def bulk_posts(server: MemoryScimServer) -> int:
    return sum(1 for method, path in server.request_log if method == "POST" and path.endswith("/Bulk"))


async def test_first_copy_and_changes_go_in_bulk_requests(bulk_servers: Servers) -> None:
    """Creates (absence proven by the listing), patches and deletes travel in Bulk requests of <= 50."""
    s = bulk_servers
    ids = seed(s.source, 300, 6)
    config = s.config(concurrency=4)
    first = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert first.outcome == "ok", first.summary()
    assert first.counts["created"] == 306
    assert first.destination_flow["bulk_operations"] >= 300
    assert first.destination_requests["POST"] <= 306 / 10  # a handful of Bulk requests, not 306 POSTs
    await s.check()
    for user_id in ids[:20]:
        s.source.users[user_id]["title"] = "Bulk Changed"
    for user_id in ids[20:23]:
        delete_user(s.source, user_id)
    s.destination.request_log.clear()
    changes = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert changes.counts["updated"] >= 20 and changes.counts["deleted"] == 3, changes.summary()
    assert bulk_posts(s.destination) <= 4 and changes.destination_requests.get("PATCH", 0) == 0
    await s.check()
    again = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert writes(again.destination_requests) == 0


async def test_refused_bulk_operations_are_retried_alone(bulk_servers: Servers) -> None:
    """An operation the Bulk answer refuses goes through the single path; a refused one is recorded as failed."""
    s = bulk_servers
    seed(s.source, 60, 0)
    s.source.add_user({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bad@example.com",
                       "title": "REFUSE-ME"})
    s.destination.faults = Faults(refuse_values={"REFUSE-ME"})
    result = await replicate(s.config(concurrency=4), mode=INCREMENTAL, dry_run=False)
    assert result.counts["created"] == 60 and result.counts["failed"] == 1
    assert [label for _, label, _ in result.failures] == ["bad@example.com"]


async def test_payload_too_large_falls_back_and_shrinks(tmp_path: Path) -> None:
    """413 from Bulk: the operations go one by one, later batches are smaller, and the copy completes."""
    source = MemoryScimServer()
    destination = MemoryScimServer(bulk_max_operations=50, bulk_max_payload=4000)
    await source.start()
    await destination.start()
    seed(source, 80, 0)
    config = Config(source=SideConfig(url=source.base_url or ""),
                    destination=SideConfig(url=destination.base_url or ""),
                    sync=SyncConfig(), state=str(tmp_path / "s.db"), concurrency=2)
    result = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "ok" and len(destination.users) == 80, result.summary()
    await source.stop()
    await destination.stop()


async def test_bulk_can_be_switched_off(bulk_servers: Servers) -> None:
    """sync.bulk = off keeps to single requests even when the server offers Bulk."""
    s = bulk_servers
    seed(s.source, 30, 0)
    result = await replicate(s.config(concurrency=4, bulk="off"), mode=INCREMENTAL, dry_run=False)
    assert result.counts["created"] == 30 and bulk_posts(s.destination) == 0
