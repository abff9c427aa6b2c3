"""How a group's members are held while planned (issue 18): the reference targets a group is translated with
are keyed by the members' own value strings, not by copies of them read back from the state; its raw
bytes leave the page once it is decoded; its members are decoded to their canonical form, and handed
over to its translated form."""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web

import replicator.cycle.planner as planner
import replicator.cycle.read as read
import replicator.scim.client as client
from replicator.app import replicate
from replicator.cycle import INCREMENTAL
from replicator.pipeline.canonical import GROUP
from replicator.pipeline.references import TAKEN
from replicator.scim.client import ScimClient
from replicator.scim.paging import ReadReport
from replicator.scim.transport import HttpTransport
from replicator.testing import MemoryScimServer
from replicator.testing.protocol import GROUP_SCHEMA, LIST_RESPONSE_SCHEMA
from replicator.testing.sample_data import sample_group
from tests.conftest import DESTINATION_TOKEN, SOURCE_TOKEN
from tests.harness import make_config


async def copy_a_group_of_five(tmp_path: Path, **settings: Any) -> None:
    """A first copy of five users and a group of them all, which the destination then holds whole."""
    source = MemoryScimServer(bearer_token=SOURCE_TOKEN)
    destination = MemoryScimServer(bearer_token=DESTINATION_TOKEN)
    urls = await source.start(), await destination.start()
    try:
        ids = [source.add_user({"userName": f"u{i}"})["id"] for i in range(5)]
        source.add_group(sample_group("All", ids))
        config = make_config(urls[0], urls[1], tmp_path / "s.db", source_token=SOURCE_TOKEN,
                             destination_token=DESTINATION_TOKEN, **settings)
        result = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert result.outcome == "ok", result.summary()
        assert [len(g.get("members", [])) for g in destination.groups.values()] == [5]
    finally:
        await source.stop()
        await destination.stop()


async def test_group_targets_share_the_members_strings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each member's source id in the targets a group is translated with is the member's own string object."""
    shared: list[bool] = []
    original = planner.translate

    def translate(canonical: dict[str, Any], kind: str, users: Any, groups: Any, **options: Any) -> Any:
        if kind == GROUP:
            keys = {key: key for key in users}
            shared.extend(keys[m["value"]] is m["value"] for m in canonical["members"])
        return original(canonical, kind, users, groups, **options)

    monkeypatch.setattr(planner, "translate", translate)
    await copy_a_group_of_five(tmp_path)
    assert len(shared) == 5 and all(shared), shared


async def test_a_read_group_gives_its_members_up_to_its_translation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The group the reader planned held its decoded members as its canonical ones (no second set), and
    handed them over to its translated form (no canonical and translated members held side by side)."""
    seen: list[tuple[list[Any], list[Any]]] = []
    canonical_forms: list[dict[str, Any]] = []
    original_canonicalise, original_translate = read.canonicalise, planner.translate

    def canonicalise(resource: dict[str, Any], kind: str) -> dict[str, Any]:
        out = original_canonicalise(resource, kind)
        if kind == GROUP:
            seen.append((list(resource["members"]), list(out["members"])))
        return out

    def translate(canonical: dict[str, Any], kind: str, *targets: Any, **options: Any) -> Any:
        out = original_translate(canonical, kind, *targets, **options)
        if kind == GROUP:
            canonical_forms.append(canonical)
        return out

    monkeypatch.setattr(read, "canonicalise", canonicalise)
    monkeypatch.setattr(planner, "translate", translate)
    await copy_a_group_of_five(tmp_path)
    [(decoded, canonical)] = seen
    assert len(canonical) == 5 and all(any(member is kept for kept in decoded) for member in canonical)
    assert all(set(member) == {"value", "type"} for member in decoded)
    assert [form["members"] is TAKEN for form in canonical_forms] == [True]


async def test_member_adds_do_not_read_the_groups_they_are_answered_with(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new group's members beyond the first chunk go as PATCH adds, each answered (by this server) with
    the whole group so far: none of those answers is kept or decoded (a group of everyone's would be
    megabytes each, many in flight), and the group holds every member."""
    answers: list[tuple[str, int, bool]] = []
    decoded: list[str] = []
    original_exchange, original_expect = HttpTransport._exchange, client.expect_resource

    async def exchange(self: HttpTransport, method: str, url: Any, *args: Any) -> Any:
        status, payload, *rest = await original_exchange(self, method, url, *args)
        answers.append((method, len(payload), args[-1] if len(args) > 3 else True))
        return (status, payload, *rest)

    def expect_resource(payload: bytes, where: str) -> dict[str, Any]:
        decoded.append(where.split()[0])
        return original_expect(payload, where)

    monkeypatch.setattr(HttpTransport, "_exchange", exchange)
    monkeypatch.setattr(client, "expect_resource", expect_resource)
    await copy_a_group_of_five(tmp_path, member_chunk=2)
    patches = [answer for answer in answers if answer[0] == "PATCH"]
    assert len(patches) == 2 and all(size == 0 and not kept for _, size, kept in patches), patches
    assert "PATCH" not in decoded and "POST" in decoded


async def test_a_member_change_does_not_read_the_group_it_is_answered_with(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATCH changing a group's members only is answered (by this server) with the whole group, which
    nothing learns from: it is not decoded; a PATCH of a user's attribute still is (what the destination
    keeps is learned from it)."""
    decoded: list[str] = []
    original_expect = client.expect_resource

    def expect_resource(payload: bytes, where: str) -> dict[str, Any]:
        decoded.append(where)
        return original_expect(payload, where)

    source = MemoryScimServer(bearer_token=SOURCE_TOKEN)
    destination = MemoryScimServer(bearer_token=DESTINATION_TOKEN)
    urls = await source.start(), await destination.start()
    try:
        ids = [source.add_user({"userName": f"u{i}"})["id"] for i in range(5)]
        group = source.add_group(sample_group("All", ids[:4]))
        config = make_config(urls[0], urls[1], tmp_path / "s.db", source_token=SOURCE_TOKEN,
                             destination_token=DESTINATION_TOKEN)
        assert (await replicate(config, mode=INCREMENTAL, dry_run=False)).outcome == "ok"
        source.groups[group["id"]]["members"].append({"value": ids[4], "type": "User"})
        source.users[ids[0]]["title"] = "Engineer"
        monkeypatch.setattr(client, "expect_resource", expect_resource)
        result = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert result.outcome == "ok" and result.counts["updated"] == 2, result.summary()
        assert [len(g["members"]) for g in destination.groups.values()] == [5]
    finally:
        await source.stop()
        await destination.stop()
    patches = [where for where in decoded if where.startswith("PATCH")]
    assert len(patches) == 1 and "/Users/" in patches[0], decoded


async def test_a_changed_objects_bytes_leave_the_page_once_decoded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When a group is canonicalised, the page it was read in no longer holds its raw bytes (a group of
    everyone is megabytes of JSON), and the group is still written with all its members."""
    pages: list[list[tuple[str, bytes]]] = []
    group_bytes: list[bytes] = []
    held_at_canonicalise: list[int] = []
    references_at_canonicalise: list[int] = []
    original_plan, original_canonicalise = read.SourceReader._plan_page, read.canonicalise

    async def plan_page(self: Any, kind: str, page: list[tuple[str, bytes]], held: Any) -> Any:
        pages.append(page)
        group_bytes.extend(raw for _, raw in page if kind == GROUP)
        return await original_plan(self, kind, page, held)

    def canonicalise(resource: dict[str, Any], kind: str) -> dict[str, Any]:
        if kind == GROUP:
            held_at_canonicalise.append(sum(len(raw) for _, raw in pages[-1]))
            references_at_canonicalise.append(sys.getrefcount(group_bytes[-1]))  # (ours, and the call's)
        return original_canonicalise(resource, kind)

    monkeypatch.setattr(read.SourceReader, "_plan_page", plan_page)
    monkeypatch.setattr(read, "canonicalise", canonicalise)
    await copy_a_group_of_five(tmp_path)
    assert held_at_canonicalise == [0], held_at_canonicalise
    assert references_at_canonicalise == [2], references_at_canonicalise  # no other holder of the bytes


async def test_a_big_group_is_looked_up_and_translated_a_chunk_at_a_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A group of more members than the planner's chunk is translated a chunk at a time (never its whole
    member list at once, each chunk's source members let go), and the destination holds it whole."""
    translated: list[int] = []
    original = planner.translate

    def translate(canonical: dict[str, Any], kind: str, *targets: Any, **options: Any) -> Any:
        if kind == GROUP:
            translated.append(len(canonical["members"]))
        return original(canonical, kind, *targets, **options)

    monkeypatch.setattr(planner, "_MEMBER_CHUNK", 2)
    monkeypatch.setattr(planner, "translate", translate)
    await copy_a_group_of_five(tmp_path)
    assert sorted(translated) == [1, 2, 2], translated


async def test_a_page_of_one_big_group_is_held_once_while_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """A page holding a group of everyone (tens of megabytes at a million members) is read into one buffer,
    not as chunks joined, and its resource is handed on as a view into that buffer, not a copy: reading it
    takes well under twice its size at any moment, and what it yields is the group as sent."""
    members = [{"value": f"{i:08d}-5d1c-4f5e-9a0b-c0ffee", "type": "User", "display": f"user {i}"} for i in range(60_000)]
    group = {"schemas": [GROUP_SCHEMA], "id": "g1", "displayName": "Everyone", "members": members}
    body = msgspec.json.encode({"schemas": [LIST_RESPONSE_SCHEMA], "totalResults": 1, "startIndex": 1, "itemsPerPage": 1,
                                "Resources": [group]})
    assert len(body) > 4_000_000

    async def groups(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/scim+json")

    app = web.Application()
    app.router.add_get("/Groups", groups)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        async with ScimClient(f"http://127.0.0.1:{runner.addresses[0][1]}") as scim:
            tracemalloc.start()
            try:
                pages = [page async for page in scim.iter_pages(GROUP, ReadReport(GROUP), with_raw=True)]
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    finally:
        await runner.cleanup()
    [[(group_id, raw)]] = pages
    assert group_id == "g1" and msgspec.json.decode(raw) == group
    assert peak < 1.5 * len(body), (peak, len(body))
