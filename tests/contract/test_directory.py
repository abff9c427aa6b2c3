"""The Directory contract: what a replication cycle relies on, checked over every implementation alike."""

from __future__ import annotations

import math
from collections import Counter
from contextlib import aclosing
from typing import Any

import msgspec
import pytest

from replicator.directory import Directory
from replicator.errors import ConflictError, NotFoundError
from replicator.pipeline.canonical import GROUP, USER
from replicator.scim.paging import ReadReport
from replicator.scim.urns import CORE_GROUP, CORE_USER, PATCH_OP
from replicator.scim.wire import BulkResult, ServerFeatures
from tests.contract.conftest import IMPLEMENTATIONS, Implementation

FLOW_KEYS = {"concurrency", "concurrency_cuts", "paused_seconds", "latency_p50_ms", "latency_p90_ms",
             "latency_p99_ms"}


def user(user_name: str, **attributes: Any) -> dict[str, Any]:
    """A user with an email (PingOne requires one; every SCIM server takes one)."""
    return {"schemas": [CORE_USER], "userName": user_name,
            "emails": [{"value": f"{user_name}@example.com", "primary": True}], **attributes}


def group(display_name: str) -> dict[str, Any]:
    return {"schemas": [CORE_GROUP], "displayName": display_name}


def patch_op(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def member_ids(resource: dict[str, Any]) -> set[str]:
    return {str(member["value"]) for member in resource.get("members") or []}


async def read_users(directory: Directory, page_size: int, **options: Any) -> tuple[list[Any], ReadReport]:
    report = ReadReport(kind=USER)
    items: list[Any] = []
    async with aclosing(directory.iter_pages(USER, report, page_size=page_size, **options)) as pages:
        async for page in pages:
            items.extend(page)
    return items, report


# -- discovery and capabilities -----------------------------------------------------------------------


async def test_discover_returns_the_features(directory: Directory) -> None:
    """discover answers the server's features and keeps them as `features`."""
    features = await directory.discover()
    assert isinstance(features, ServerFeatures)
    assert features == directory.features


async def test_bulk_is_advertised_where_expected(implementation: Implementation, directory: Directory) -> None:
    """Each implementation advertises Bulk exactly as its registry entry says (a lost capability fails)."""
    assert directory.features.bulk is implementation.bulk


def test_these_implementations_advertise_bulk() -> None:
    """The registry names exactly these as advertising Bulk, so the Bulk contract runs over them."""
    assert [i.name for i in IMPLEMENTATIONS if i.bulk] == ["memory-bulk", "scim2-server"]


# -- reads ----------------------------------------------------------------------------------------------


async def test_iter_pages_reads_every_object_once_across_pages(directory: Directory, unique: str) -> None:
    """A listing with pages smaller than the count yields every object once and reports itself complete."""
    created = {(await directory.create(USER, user(f"{unique}.{n}")))["id"] for n in range(7)}
    items, report = await read_users(directory, page_size=3)
    ids = [item["id"] for item in items]
    assert report.complete, report.problems
    assert len(ids) == len(set(ids))
    assert created <= set(ids)
    assert report.pages >= math.ceil(len(ids) / 3) >= 3


async def test_iter_pages_with_raw_yields_ids_and_json_bytes(directory: Directory, unique: str) -> None:
    """with_raw=True yields (id, JSON) pairs, the JSON bytes-like (bytes, or `msgspec.Raw` views into the
    page read) and decoding to the object of that id."""
    created = {(await directory.create(USER, user(f"{unique}.{n}")))["id"] for n in range(4)}
    pairs, report = await read_users(directory, page_size=2, with_raw=True)
    assert report.complete, report.problems
    decoded = {}
    for resource_id, raw in pairs:
        assert isinstance(resource_id, str) and isinstance(raw, bytes | msgspec.Raw)
        decoded[resource_id] = msgspec.json.decode(raw)
    assert created <= set(decoded)
    assert all(resource["id"] == resource_id for resource_id, resource in decoded.items())
    assert {decoded[i]["userName"] for i in created} == {f"{unique}.{n}" for n in range(4)}


async def test_iter_pages_asks_read_before_about_each_page(directory: Directory, unique: str) -> None:
    """read_before is asked about every id listed, and what it says was read before is left out."""
    created = [(await directory.create(USER, user(f"{unique}.{n}")))["id"] for n in range(5)]
    asked: list[list[str]] = []

    async def read_before(ids: list[str]) -> set[str]:
        asked.append(list(ids))
        return {created[0]} & set(ids)  # as if an earlier read had held the first one

    items, report = await read_users(directory, page_size=2, read_before=read_before)
    listed = {resource_id for ids in asked for resource_id in ids}
    assert len(asked) == report.pages >= 3
    assert set(created) <= listed
    assert {item["id"] for item in items} == listed - {created[0]}


async def test_get_reads_one_object(directory: Directory, unique: str) -> None:
    """get answers the object created under that id."""
    created = await directory.create(USER, user(f"{unique}.ann", title="Ann"))
    found = await directory.get(USER, created["id"])
    assert (found["id"], found["userName"], found["title"]) == (created["id"], f"{unique}.ann", "Ann")


async def test_get_of_a_missing_id_raises_not_found(directory: Directory, unique: str) -> None:
    """get of an id the directory never held raises NotFoundError."""
    with pytest.raises(NotFoundError):
        await directory.get(USER, f"{unique}-missing")


async def test_find_by_user_name_finds_exactly_that_user(directory: Directory, unique: str) -> None:
    """find with `userName eq "..."` (the value's case as stored) answers that user and no other."""
    wanted = await directory.create(USER, user(f"{unique}.Ann"))
    for other in (f"{unique}.Ann2", f"{unique}.Anna", f"{unique}.Bob"):
        await directory.create(USER, user(other))
    found = await directory.find(USER, f'userName eq "{unique}.Ann"')
    assert [resource["id"] for resource in found] == [wanted["id"]]


# -- writes ---------------------------------------------------------------------------------------------


async def test_create_answers_the_object_with_an_id(directory: Directory, unique: str) -> None:
    """create answers the new object, carrying the id the directory gave it."""
    created = await directory.create(USER, user(f"{unique}.new"))
    assert isinstance(created["id"], str) and created["id"]
    assert created["userName"] == f"{unique}.new"


async def test_a_second_create_of_a_user_name_raises_conflict(directory: Directory, unique: str) -> None:
    """Creating a user whose userName is taken raises ConflictError."""
    await directory.create(USER, user(f"{unique}.twice"))
    with pytest.raises(ConflictError):
        await directory.create(USER, user(f"{unique}.twice"))


async def test_patch_replaces_an_attribute(directory: Directory, unique: str) -> None:
    """A PatchOp replacing an attribute is visible on the next get."""
    created = await directory.create(USER, user(f"{unique}.pat", title="Before"))
    await directory.patch(USER, created["id"], patch_op({"op": "replace", "path": "title", "value": "After"}))
    assert (await directory.get(USER, created["id"]))["title"] == "After"


async def test_patch_adds_then_removes_group_members(directory: Directory, unique: str) -> None:
    """Members added by PatchOp are listed by get; one removed by `members[value eq "ID"]` is gone."""
    ann, bob = [(await directory.create(USER, user(f"{unique}.{n}")))["id"] for n in ("ann", "bob")]
    team = (await directory.create(GROUP, group(f"{unique} team")))["id"]
    await directory.patch(GROUP, team, patch_op({"op": "add", "path": "members",
                                                 "value": [{"value": ann}, {"value": bob}]}))
    assert member_ids(await directory.get(GROUP, team)) == {ann, bob}
    await directory.patch(GROUP, team, patch_op({"op": "remove", "path": f'members[value eq "{ann}"]'}))
    assert member_ids(await directory.get(GROUP, team)) == {bob}


async def test_replace_puts_the_whole_object(directory: Directory, unique: str) -> None:
    """replace (PUT) of the whole object is visible on the next get; what it answers is that object or None."""
    created = await directory.create(USER, user(f"{unique}.put", title="Before"))
    answered = await directory.replace(USER, created["id"], user(f"{unique}.put", title="After"))
    assert answered is None or (answered["id"], answered["title"]) == (created["id"], "After")
    assert (await directory.get(USER, created["id"]))["title"] == "After"


async def test_delete_then_get_raises_not_found(directory: Directory, unique: str) -> None:
    """After delete, get of that id raises NotFoundError."""
    created = await directory.create(USER, user(f"{unique}.gone"))
    await directory.delete(USER, created["id"])
    with pytest.raises(NotFoundError):
        await directory.get(USER, created["id"])


async def test_delete_of_a_missing_id_raises_not_found(directory: Directory, unique: str) -> None:
    """delete of an id the directory does not hold raises NotFoundError."""
    with pytest.raises(NotFoundError):
        await directory.delete(USER, f"{unique}-missing")


async def test_bulk_creates_patches_and_deletes(bulk_directory: Directory, unique: str) -> None:
    """One Bulk request creates, patches and deletes; one result per operation, the create's naming its id."""
    directory = bulk_directory
    kept = (await directory.create(USER, user(f"{unique}.kept", title="Before")))["id"]
    doomed = (await directory.create(USER, user(f"{unique}.doomed")))["id"]
    results = await directory.bulk([
        {"method": "POST", "path": "/Users", "bulkId": "u1", "data": user(f"{unique}.bulk")},
        {"method": "PATCH", "path": f"/Users/{kept}",
         "data": patch_op({"op": "replace", "path": "title", "value": "After"})},
        {"method": "DELETE", "path": f"/Users/{doomed}"},
    ])
    assert len(results) == 3
    assert all(isinstance(result, BulkResult) and 200 <= result.status < 300 for result in results), results
    created_id = results[0].resource_id if results[0] is not None else None
    assert created_id is not None
    assert (await directory.get(USER, created_id))["userName"] == f"{unique}.bulk"
    assert (await directory.get(USER, kept))["title"] == "After"
    with pytest.raises(NotFoundError):
        await directory.get(USER, doomed)


# -- accounting -----------------------------------------------------------------------------------------


async def test_requests_are_counted_by_method(directory: Directory, unique: str) -> None:
    """Each call adds to the request count of its method: a create POSTs, a get GETs, a delete DELETEs,
    and a patch or a replace writes (by whichever method the implementation's API uses)."""
    async def grown(call: Any) -> Counter[str]:
        before = Counter(directory.requests)
        await call
        return Counter(directory.requests) - before

    created: dict[str, Any] = {}

    async def create() -> None:
        created.update(await directory.create(USER, user(f"{unique}.count")))

    assert (await grown(create()))["POST"] >= 1
    assert (await grown(directory.get(USER, created["id"])))["GET"] >= 1
    patched = await grown(directory.patch(USER, created["id"], patch_op({"op": "replace", "path": "title", "value": "X"})))
    assert sum(n for method, n in patched.items() if method != "GET") >= 1, patched
    replaced = await grown(directory.replace(USER, created["id"], user(f"{unique}.count", title="Y")))
    assert sum(n for method, n in replaced.items() if method != "GET") >= 1, replaced
    assert (await grown(directory.delete(USER, created["id"])))["DELETE"] >= 1


async def test_flow_reports_the_documented_figures(directory: Directory, unique: str) -> None:
    """flow() holds the concurrency, pause and latency figures as floats once calls were made."""
    await directory.create(USER, user(f"{unique}.flow"))
    flow = directory.flow()
    assert set(flow) >= FLOW_KEYS
    assert all(isinstance(value, float) for value in flow.values())
    assert flow["concurrency"] >= 1 and flow["paused_seconds"] == 0.0
