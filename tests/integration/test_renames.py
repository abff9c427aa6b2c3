"""Renames that need each other's names (issue 16, case 7): swapped and rotated userNames converge in one
cycle by PATCH alone (a temporary name breaks the cycle), on the in-memory server and on scim2-server,
and a run killed in the middle of a swap (one object under its temporary name) is finished by
the next cycle."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from replicator.app import replicate
from replicator.config import Config
from replicator.cycle import INCREMENTAL
from replicator.pipeline.renames import is_temporary_name
from replicator.testing import MemoryScimServer, Quirks
from tests.conftest import DESTINATION_TOKEN, SOURCE_TOKEN, Pair
from tests.harness import assert_replicated, make_config, read_all

USER = ["urn:ietf:params:scim:schemas:core:2.0:User"]


def config(pair: Pair) -> Any:
    return make_config(pair.source_url, pair.destination_url, pair.state, source_token=SOURCE_TOKEN,
                       destination_token=DESTINATION_TOKEN)


async def users(pair: Pair, names: list[str]) -> list[str]:
    return [str((await pair.source.create("User", {"schemas": USER, "userName": name}))["id"]) for name in names]


async def rename(pair: Pair, source_id: str, name: str) -> None:
    await pair.source.replace("User", source_id, {"schemas": USER, "userName": name})


async def destination_names(pair: Pair) -> set[str]:
    return {user["userName"] for user in await read_all(pair.destination, "User")}


async def test_swapped_user_names_converge_in_one_cycle(pair: Pair) -> None:
    """ann and bob swap userNames: one cycle writes both by PATCH (no delete, no create), exit ok."""
    ann, bob = await users(pair, ["ann", "bob"])
    await replicate(config(pair), mode=INCREMENTAL, dry_run=False)
    await rename(pair, ann, "tmp-held")
    await rename(pair, bob, "ann")
    await rename(pair, ann, "bob")
    result = await replicate(config(pair), mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "ok", (result.summary(), result.failures)
    assert result.counts["updated"] == 2 and result.counts["created"] == 0 and result.counts["deleted"] == 0
    assert result.destination_requests.get("DELETE", 0) == 0  # (a POST may be a Bulk request carrying PATCHes)
    await assert_replicated(pair.source, pair.destination)
    again = await replicate(config(pair), mode=INCREMENTAL, dry_run=False)
    assert again.outcome == "ok" and again.destination_requests.get("PATCH", 0) == 0, again.summary()


async def test_rotated_user_names_converge_in_one_cycle(pair: Pair) -> None:
    """a -> b -> c -> a, beside a chain d -> e (e free once renamed): one cycle, by PATCH alone."""
    ids = await users(pair, ["a", "b", "c", "d", "e"])
    await replicate(config(pair), mode=INCREMENTAL, dry_run=False)
    for index, name in enumerate(["held-a", "held-b", "held-c", "held-d", "held-e"]):
        await rename(pair, ids[index], name)
    for index, name in enumerate(["b", "c", "a", "e", "f"]):
        await rename(pair, ids[index], name)
    result = await replicate(config(pair), mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "ok", (result.summary(), result.failures)
    assert result.counts["updated"] == 5 and result.counts["created"] == 0 and result.counts["deleted"] == 0
    assert await destination_names(pair) == {"a", "b", "c", "e", "f"}
    await assert_replicated(pair.source, pair.destination)


async def replicated_pair(source: MemoryScimServer, urls: tuple[str, str], tmp: Path) -> tuple[str, str, Config]:
    """Users ann and bob in `source`, replicated once; (their source ids, the settings)."""
    ann = source.add_user({"schemas": USER, "userName": "ann"})["id"]
    bob = source.add_user({"schemas": USER, "userName": "bob"})["id"]
    settings = make_config(urls[0], urls[1], tmp / "s.db", source_token=SOURCE_TOKEN, destination_token=DESTINATION_TOKEN)
    await replicate(settings, mode=INCREMENTAL, dry_run=False)
    return ann, bob, settings


async def test_a_swap_converges_on_a_server_answering_400_uniqueness(tmp_path: Path) -> None:
    """A destination answering a taken name with 400 scimType `uniqueness` (not 409): the swap converges too."""
    source = MemoryScimServer(bearer_token=SOURCE_TOKEN)
    destination = MemoryScimServer(bearer_token=DESTINATION_TOKEN, quirks=Quirks(patch_uniqueness_status=400))
    urls = await source.start(), await destination.start()
    try:
        ann, bob, settings = await replicated_pair(source, urls, tmp_path)
        source.users[ann]["userName"], source.users[bob]["userName"] = "bob", "ann"
        result = await replicate(settings, mode=INCREMENTAL, dry_run=False)
        assert result.outcome == "ok", (result.summary(), result.failures)
        assert sorted(user["userName"] for user in destination.users.values()) == ["ann", "bob"]
        assert result.counts["updated"] == 2 and result.counts["created"] == 0
    finally:
        await source.stop()
        await destination.stop()


class DiesAfterTheTemporaryName(MemoryScimServer):
    """A destination that carries out the first PATCH giving a temporary name, then never answers: the
    run is killed there (as by a crash right after the destination applied it)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.applied = asyncio.Event()

    async def _around_handler(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.applied.is_set():
            await asyncio.Event().wait()  # the run is gone: nothing answers
        body = await request.read() if request.method == "PATCH" else b""
        response = await super()._around_handler(request, handler)
        if b'"value":"renaming-' in body:
            self.applied.set()
            await asyncio.Event().wait()
        return response


async def swap_killed_when(source: MemoryScimServer, ann: str, bob: str, settings: Config,
                           event: asyncio.Event) -> None:
    """Swap ann's and bob's userNames on the source and run a cycle, killed when `event` is set (the
    destination's doing); fails if the cycle ended first."""
    source.users[ann]["userName"], source.users[bob]["userName"] = "bob", "ann"
    run = asyncio.ensure_future(replicate(settings, mode=INCREMENTAL, dry_run=False))
    seen = asyncio.ensure_future(event.wait())
    await asyncio.wait([run, seen], return_when=asyncio.FIRST_COMPLETED)
    assert seen.done(), "the run reached no temporary name"
    run.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await run


@contextlib.asynccontextmanager
async def swap_killed(destination: MemoryScimServer, tmp: Path,
                      killed_when: asyncio.Event) -> AsyncIterator[tuple[MemoryScimServer, str, str, Config, dict[str, str]]]:
    """A source with ann and bob replicated once to `destination`, then their swap run and killed when
    `killed_when` is set; (the source, ann's and bob's source ids, the settings, destination ids by the
    names before the swap). Both servers stop on exit."""
    source = MemoryScimServer(bearer_token=SOURCE_TOKEN)
    urls = await source.start(), await destination.start()
    try:
        ann, bob, settings = await replicated_pair(source, urls, tmp)
        ids = {user["userName"]: user["id"] for user in destination.users.values()}
        await swap_killed_when(source, ann, bob, settings, killed_when)
        yield source, ann, bob, settings, ids
    finally:
        await source.stop()
        await destination.stop()


@pytest.mark.parametrize("undone", [False, True], ids=["swap-kept", "swap-undone-in-source"])
async def test_a_crash_after_the_temporary_name_is_finished_by_the_next_cycle(tmp_path: Path, undone: bool) -> None:
    """A run killed right after the destination gave one object of a swap its temporary name: the next
    run finishes the swap (each object keeps its destination id), or puts both names back when the
    source undid the swap meanwhile, and no temporary name is left."""
    destination = DiesAfterTheTemporaryName(bearer_token=DESTINATION_TOKEN)
    async with swap_killed(destination, tmp_path, destination.applied) as (source, ann, bob, settings, ids):
        names = {user["userName"] for user in destination.users.values()}
        assert any(is_temporary_name(name) for name in names), names
        destination.applied = asyncio.Event()
        destination.applied.set = lambda: None  # type: ignore[method-assign]  # the next run is not killed
        if undone:
            source.users[ann]["userName"], source.users[bob]["userName"] = "ann", "bob"
        after = await replicate(settings, mode=INCREMENTAL, dry_run=False)
        assert after.outcome == "ok", (after.summary(), after.failures)
        expected = {ids["ann"]: "ann", ids["bob"]: "bob"} if undone else {ids["ann"]: "bob", ids["bob"]: "ann"}
        assert {user["id"]: user["userName"] for user in destination.users.values()} == expected
        assert after.counts["created"] == 0


class DiesBeforeTheTemporaryName(MemoryScimServer):
    """A destination that never carries out (nor answers) the PATCH giving a temporary name: the run is
    killed there, with the temporary name recorded in the state but not held by the destination."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reached = asyncio.Event()
        self.dying = True

    async def _around_handler(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read() if request.method == "PATCH" else b""
        if self.dying and b'"value":"renaming-' in body:
            self.reached.set()
            await asyncio.Event().wait()  # never applied, never answered
        return await super()._around_handler(request, handler)


async def test_a_temporary_name_recorded_but_never_applied_does_not_stop_the_swap(tmp_path: Path) -> None:
    """A run killed while the PATCH to a temporary name is in flight and never applied (the state says the
    temporary name, the destination the old one): the next run sees the swap from the names the
    destination holds, and finishes it in one cycle, with no temporary name left."""
    destination = DiesBeforeTheTemporaryName(bearer_token=DESTINATION_TOKEN)
    async with swap_killed(destination, tmp_path, destination.reached) as (_, _, _, settings, ids):
        assert {user["userName"] for user in destination.users.values()} == {"ann", "bob"}  # not applied
        destination.dying = False
        after = await replicate(settings, mode=INCREMENTAL, dry_run=False)
        assert after.outcome == "ok", (after.summary(), after.failures)
        assert {user["id"]: user["userName"] for user in destination.users.values()} == \
            {ids["ann"]: "bob", ids["bob"]: "ann"}
