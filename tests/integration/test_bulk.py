"""SCIM Bulk (RFC 7644 3.7): batched creates, patches and deletes, and falling back when Bulk says no."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from replicator.app import replicate
from replicator.config import Config, SideConfig, SyncConfig
from replicator.cycle import INCREMENTAL
from replicator.pipeline.canonical import USER
from replicator.scim.urns import ENTERPRISE_USER
from replicator.testing import Faults, MemoryScimServer, Quirks
from replicator.testing.seeding import seed_directory
from tests.harness import writes
from tests.integration.test_reliability import Servers, delete_user

TOKEN = "reliability-token"


@asynccontextmanager
async def servers_with(tmp_path: Path, **destination_options: Any) -> AsyncIterator[Servers]:
    """A source and a Bulk destination in-memory server (with these options), started and stopped."""
    source = MemoryScimServer(bearer_token=TOKEN)
    destination = MemoryScimServer(bearer_token=TOKEN,
                                   quirks=Quirks(**{"bulk_max_operations": 50, **destination_options}))
    await source.start()
    await destination.start()
    try:
        yield Servers(source, destination, tmp_path)
    finally:
        await source.stop()
        await destination.stop()


@pytest.fixture
async def bulk_servers(tmp_path: Path) -> AsyncIterator[Servers]:
    async with servers_with(tmp_path, patch_returns_resource=False) as servers:
        yield servers


def seed(server: MemoryScimServer, users: int, groups: int) -> list[str]:
    """The sample users without managers, and the sample groups cut to 40 members; returns the user ids."""
    return seed_directory(server, users, groups, managers=False, max_members=40)[USER]


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
    # 20 user PATCHes, 3 DELETEs and the PATCHes of the groups that held them, in a handful of requests
    # (groups are read a few at a time at first, so a group's PATCH may go alone)
    assert bulk_posts(s.destination) <= 4 and writes(changes.destination_requests) <= 6
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
    destination = MemoryScimServer(quirks=Quirks(bulk_max_operations=50, bulk_max_payload=4000))
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


def chain_of_managers(server: MemoryScimServer, length: int, prefix: str = "chain") -> list[str]:
    """Users listed before their manager: each one's manager is the next user (the last has none)."""
    schema = ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER]
    ids = [server.add_user({"schemas": schema, "userName": f"{prefix}{n}@example.com"})["id"] for n in range(length)]
    for user_id, manager_id in itertools.pairwise(ids):
        server.users[user_id][ENTERPRISE_USER] = {"manager": {"value": manager_id}}
    return ids


def nested_groups(server: MemoryScimServer, depth: int) -> None:
    """Groups listed before the group they contain: group n holds group n+1 and one user."""
    schema = ["urn:ietf:params:scim:schemas:core:2.0:Group"]
    user = next(iter(server.users))
    inner: list[dict[str, str]] = []
    made = []
    for n in reversed(range(depth)):
        made.append(server.add_group({"schemas": schema, "displayName": f"level{n}",
                                      "members": [{"value": user, "type": "User"}, *inner]}))
        inner = [{"value": made[-1]["id"], "type": "Group"}]
    for group in reversed(made):  # the outermost group first
        server.groups[group["id"]] = server.groups.pop(group["id"])


def bulk_references(server: MemoryScimServer, having: str = "") -> int:
    """Operations received in Bulk requests whose data named another operation by bulkId (and has the
    attribute `having`, e.g. userName for users)."""
    return sum(1 for body in server.bulk_bodies for operation in body["Operations"]
               if "bulkId:" in str(operation.get("data")) and (not having or having in (operation.get("data") or {})))


async def test_new_objects_name_their_new_targets_by_bulk_id(bulk_servers: Servers) -> None:
    """A new user whose new manager, a new group whose new subgroup is created in the same Bulk
    request names it by bulkId there, instead of waiting for a later request; a rerun writes nothing."""
    s = bulk_servers
    chain_of_managers(s.source, 30)
    nested_groups(s.source, 5)
    s.destination.bulk_bodies = []
    config = s.config(concurrency=4)
    first = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert first.outcome == "ok", first.summary()
    assert first.counts["created"] == 35
    # every report, every outer group: each waits when its target's create is queued (the users come in
    # one page; the groups, in pages of 1, 1, 2, 1, are listed outermost first, so none waits on timing)
    assert bulk_references(s.destination, "userName") == 29 and bulk_references(s.destination, "displayName") == 4
    assert first.destination_requests["POST"] == 2  # one Bulk request per kind
    assert first.destination_requests.get("GET", 0) <= 5  # discovery, two listings, one object read back per kind
    await s.check()
    again = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert writes(again.destination_requests) == 0


async def test_a_referrer_whose_target_fails_in_bulk_is_written_without_it(
        bulk_servers: Servers, monkeypatch: pytest.MonkeyPatch) -> None:
    """The manager's create is refused in the Bulk request its report joined: the report is written
    without a manager, and gets it in the next cycle once the manager replicates."""
    from replicator.cycle import recorder as cycle

    monkeypatch.setattr(cycle, "failure_backoff", lambda attempts: -1.0)  # retry failures at once
    s = bulk_servers
    ids = chain_of_managers(s.source, 3)
    s.source.users[ids[2]]["title"] = "REFUSE-ME"
    s.destination.faults = Faults(refuse_values={"REFUSE-ME"})
    s.destination.bulk_bodies = []
    config = s.config(concurrency=1)
    first = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert first.counts["created"] == 2 and first.counts["failed"] == 1, first.summary()
    assert bulk_references(s.destination) >= 1
    by_name = {u["userName"]: u for u in s.destination.users.values()}
    assert ENTERPRISE_USER not in by_name["chain1@example.com"]  # its manager failed
    assert by_name["chain0@example.com"][ENTERPRISE_USER]["manager"]["value"] == by_name["chain1@example.com"]["id"]
    s.destination.faults = Faults()
    second = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert second.outcome == "ok", second.summary()
    assert second.counts["created"] == 1 and second.counts["updated"] == 1
    await s.check()


async def test_a_server_storing_bulk_ids_as_given_is_repaired(tmp_path: Path) -> None:
    """A destination that advertises Bulk but keeps `bulkId:x` values as given: the one request that
    used them is read back, its objects repaired, and later requests do without them."""
    async with servers_with(tmp_path, bulk_resolves_references=False) as s:
        chain_of_managers(s.source, 30)
        for chain in range(8):  # short chains in small requests: several could carry references at once
            chain_of_managers(s.source, 3, prefix=f"short{chain}-")
        nested_groups(s.source, 5)
        for index in range(5):  # the destination is not empty: telling what is absent waits for the state
            for server in (s.source, s.destination):
                server.add_user({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": f"other{index}"})
        s.destination.faults = Faults(latency=0.002)
        s.destination.bulk_bodies = []
        result = await replicate(s.config(concurrency=4, bulk_size=2), mode=INCREMENTAL, dry_run=False)
        assert result.outcome == "ok", result.summary()
        with_references = [body for body in s.destination.bulk_bodies if "bulkId:" in str(body)]
        assert len(with_references) == 1 and len(s.destination.bulk_bodies) > 1  # the trial, and no more
        assert result.destination_requests["PATCH"] >= 1  # the repair
        stored = [str(r) for r in [*s.destination.users.values(), *s.destination.groups.values()]]
        assert not any("bulkId:" in text for text in stored)
        await s.check()


async def test_a_bulk_request_whose_answer_is_lost_creates_no_duplicate(tmp_path: Path) -> None:
    """Bulk requests carried out whose answer is lost: the creates look before they post again, so a
    destination that lets two groups share a name still gets no duplicate."""
    async with servers_with(tmp_path, bulk_max_operations=20, unique_group_names=False) as s:
        seed(s.source, 100, 30)
        s.destination.faults = Faults(rate_reset_after_write=0.4, seed=3)
        result = await replicate(s.config(concurrency=4), mode=INCREMENTAL, dry_run=False)
        assert result.outcome == "ok", result.summary()
        assert result.counts["adopted"] > 0  # some Bulk requests were carried out although their answers were lost
        await s.check()


async def test_a_lost_answer_to_the_trial_leaves_no_bulk_id_behind(tmp_path: Path) -> None:
    """The request trying bulkId references is carried out by a server that stores them as given, and
    its answer is lost: references are not used again, the objects are adopted, and the stray
    `bulkId:` member is removed (merge mode too: such a value is nobody's)."""
    async with servers_with(tmp_path, bulk_resolves_references=False) as s:
        original = s.destination._bulk

        async def lose_the_first_answer_with_references(request: Any) -> Any:
            response = await original(request)
            if b"bulkId:" in await request.read() and not lost:
                lost.append(request)
                request.transport.abort()
            return response

        lost: list[Any] = []
        s.destination._bulk = lose_the_first_answer_with_references  # type: ignore[method-assign]
        await s.destination.stop()
        await s.destination.start()  # the routes now lead to the patched handler
        chain_of_managers(s.source, 1)  # a user for the groups to hold
        nested_groups(s.source, 3)
        result = await replicate(s.config(concurrency=2), mode=INCREMENTAL, dry_run=False)
        assert lost and result.outcome == "ok", result.summary()
        assert not any("bulkId:" in str(group) for group in s.destination.groups.values())
        await s.check()
        again = await replicate(s.config(concurrency=2), mode=INCREMENTAL, dry_run=False)
        assert writes(again.destination_requests) == 0


async def test_a_trial_referrer_whose_target_failed_is_repaired_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a server that stores `bulkId:` values as given, a referrer whose target's create failed in
    the trial keeps no `bulkId:` member: it is repaired with the form it was sent (the form recorded
    no longer names that member), and gets the real member once the target replicates."""
    from replicator.cycle import recorder as cycle

    monkeypatch.setattr(cycle, "failure_backoff", lambda attempts: -1.0)  # retry failures at once
    async with servers_with(tmp_path, bulk_resolves_references=False) as s:
        schema = ["urn:ietf:params:scim:schemas:core:2.0:Group"]
        inner = s.source.add_group({"schemas": schema, "displayName": "inner", "externalId": "REFUSE-ME"})
        outer = s.source.add_group({"schemas": schema, "displayName": "outer",
                                    "members": [{"value": inner["id"], "type": "Group"}]})
        s.source.groups = {outer["id"]: outer, inner["id"]: inner}  # the referrer is listed first
        s.destination.faults = Faults(refuse_values={"REFUSE-ME"})
        first = await replicate(s.config(concurrency=1), mode=INCREMENTAL, dry_run=False)
        assert first.counts["failed"] == 1, first.summary()
        (written,) = s.destination.groups.values()
        assert not written.get("members")  # the stray bulkId:... member was removed
        s.destination.faults = Faults()
        second = await replicate(s.config(concurrency=1), mode=INCREMENTAL, dry_run=False)
        assert second.outcome == "ok", second.summary()
        await s.check()
