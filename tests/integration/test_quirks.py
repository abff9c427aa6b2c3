"""Servers that bend the protocol in ways real ones do: no filters, bodiless creates, odd list spellings."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from replicator.app import replicate
from replicator.config import Config, SideConfig
from replicator.cycle import FULL, INCREMENTAL
from replicator.pipeline.canonical import project
from replicator.scim.wire import decode_list as _decode_list
from replicator.testing import MemoryScimServer, Quirks
from tests.harness import writes

SCHEMA = ["urn:ietf:params:scim:schemas:core:2.0:User"]
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"


def config_for(source: MemoryScimServer, destination: MemoryScimServer, tmp: Path) -> Config:
    return Config(source=SideConfig(url=source.base_url or ""), destination=SideConfig(url=destination.base_url or ""),
                  state=str(tmp / "s.db"))


async def test_destination_without_filters_adopts_through_a_listing(tmp_path: Path) -> None:
    """A destination that refuses filters: a 409 on create is resolved by listing it once, not by failing."""
    source, destination = MemoryScimServer(), MemoryScimServer(quirks=Quirks(filter_supported=False))
    await source.start()
    await destination.start()
    source.add_user({"schemas": SCHEMA, "userName": "first"})
    config = config_for(source, destination, tmp_path)
    await replicate(config, mode=INCREMENTAL, dry_run=False)  # the state is no longer empty
    source.add_user({"schemas": SCHEMA, "userName": "exists", "title": "from the source"})
    destination.add_user({"schemas": SCHEMA, "userName": "exists"})
    result = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "ok", result.summary()
    assert result.counts["adopted"] == 1 and len(destination.users) == 2
    assert next(u for u in destination.users.values() if u["userName"] == "exists")["title"] == "from the source"
    await source.stop()
    await destination.stop()


async def test_create_answered_with_only_a_location_header(tmp_path: Path) -> None:
    """201 with an empty body and a Location header still gives the new object's id."""
    source, destination = MemoryScimServer(), MemoryScimServer(quirks=Quirks(create_returns_body=False))
    await source.start()
    await destination.start()
    for i in range(3):
        source.add_user({"schemas": SCHEMA, "userName": f"u{i}"})
    config = config_for(source, destination, tmp_path)
    result = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "ok" and result.counts["created"] == 3
    again = await replicate(config, mode=FULL, dry_run=False)
    assert writes(again.destination_requests) == 0, again.summary()
    await source.stop()
    await destination.stop()


async def test_a_changed_name_part_keeps_the_others_on_a_server_replacing_complex_attributes_whole(
        tmp_path: Path) -> None:
    """Some servers replace `name` whole on `replace name {givenName}` (RFC 7644 3.5.2.3 says merge): a
    changed givenName and manager still leave familyName, formatted and the manager's other parts."""
    source, destination = MemoryScimServer(), MemoryScimServer(quirks=Quirks(replace_complex_whole=True))
    await source.start()
    await destination.start()
    boss = source.add_user({"schemas": SCHEMA, "userName": "boss"})
    other = source.add_user({"schemas": SCHEMA, "userName": "other"})
    user = source.add_user({"schemas": [*SCHEMA, ENTERPRISE], "userName": "ann",
                            "name": {"givenName": "Ann", "familyName": "Lee", "formatted": "Ann Lee"},
                            ENTERPRISE: {"department": "R&D", "manager": {"value": boss["id"]}}})
    config = config_for(source, destination, tmp_path)
    await replicate(config, mode=INCREMENTAL, dry_run=False)
    source.users[user["id"]]["name"]["givenName"] = "Anna"
    source.users[user["id"]][ENTERPRISE]["manager"] = {"value": other["id"]}
    result = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert result.counts["updated"] == 1, result.summary()
    copy = next(u for u in destination.users.values() if u["userName"] == "ann")
    assert copy["name"] == {"givenName": "Anna", "familyName": "Lee", "formatted": "Ann Lee"}
    other_copy = next(u for u in destination.users.values() if u["userName"] == "other")
    assert copy[ENTERPRISE]["department"] == "R&D" and copy[ENTERPRISE]["manager"]["value"] == other_copy["id"]
    again = await replicate(config, mode=FULL, dry_run=False)
    assert writes(again.destination_requests) == 0, again.summary()
    await source.stop()
    await destination.stop()


async def test_members_a_server_left_out_of_a_created_group_are_added(tmp_path: Path) -> None:
    """A server that ignores `members` in a group POST and answers `members: []` (django-scim2) gets
    them by PATCH add, small groups and groups beyond member_chunk alike; a --full then writes nothing."""
    source, destination = MemoryScimServer(), MemoryScimServer(quirks=Quirks(create_ignores_members=True))
    await source.start()
    await destination.start()
    ids = [source.add_user({"schemas": SCHEMA, "userName": f"u{i}"})["id"] for i in range(12)]
    source.add_group({"schemas": [GROUP_SCHEMA], "displayName": "small", "members": [{"value": i} for i in ids[:3]]})
    source.add_group({"schemas": [GROUP_SCHEMA], "displayName": "large", "members": [{"value": i} for i in ids]})
    config = config_for(source, destination, tmp_path)
    config = msgspec.structs.replace(config, sync=msgspec.structs.replace(config.sync, member_chunk=5))
    result = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "ok" and result.counts["created"] == 14, result.summary()
    sizes = {g["displayName"]: len(g.get("members", [])) for g in destination.groups.values()}
    assert sizes == {"small": 3, "large": 12}
    again = await replicate(config, mode=FULL, dry_run=False)
    assert writes(again.destination_requests) == 0, again.summary()
    await source.stop()
    await destination.stop()


async def test_a_conflict_that_the_search_cannot_explain_is_looked_up_in_a_listing(tmp_path: Path) -> None:
    """A destination whose filters compare userName case-exactly (SCIMMY) answers 409 to a new user
    whose userName an existing one holds in another case, and its search finds nothing: the object is
    found in a listing (keys compared without case) and adopted, instead of failing every cycle."""
    source, destination = MemoryScimServer(), MemoryScimServer(quirks=Quirks(case_exact_filters=True))
    await source.start()
    await destination.start()
    source.add_user({"schemas": SCHEMA, "userName": "first"})
    config = config_for(source, destination, tmp_path)
    await replicate(config, mode=INCREMENTAL, dry_run=False)  # the state is no longer empty: no listing
    source.add_user({"schemas": SCHEMA, "userName": "late.comer@example.com", "title": "from the source"})
    destination.add_user({"schemas": SCHEMA, "userName": "LATE.COMER@EXAMPLE.COM"})
    result = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "ok" and result.counts["adopted"] == 1, result.summary()
    assert len(destination.users) == 2
    assert {u.get("title") for u in destination.users.values()} == {None, "from the source"}
    await source.stop()
    await destination.stop()


async def _replace_scenario(tmp_path: Path, destination: MemoryScimServer) -> None:
    """A group renamed and a member dropped in the source, a title changed; on the destination, a member
    and a nickName that others added: replacing objects (PUT) must keep what we do not manage."""
    source = MemoryScimServer()
    await source.start()
    await destination.start()
    ids = [source.add_user({"schemas": SCHEMA, "userName": f"u{i}", "title": "old"})["id"] for i in range(3)]
    group = source.add_group({"schemas": [GROUP_SCHEMA], "displayName": "team", "members": [{"value": i} for i in ids[:2]]})
    config = config_for(source, destination, tmp_path)
    await replicate(config, mode=INCREMENTAL, dry_run=False)
    copies = {u["userName"]: u for u in destination.users.values()}
    copies["u0"]["nickName"] = "set on the destination"
    (copy,) = destination.groups.values()
    copy["members"].append({"value": copies["u2"]["id"]})  # a member someone added there
    source.users[ids[0]]["title"] = "new"
    source.groups[group["id"]]["displayName"] = "team renamed"
    source.groups[group["id"]]["members"] = [{"value": ids[0]}]
    result = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "ok" and result.counts["updated"] == 2, result.summary()
    user = destination.users[copies["u0"]["id"]]  # (a PUT stores a new object)
    assert user["title"] == "new" and user["nickName"] == "set on the destination"
    copy = destination.groups[copy["id"]]
    assert copy["displayName"] == "team renamed"
    assert {m["value"] for m in copy["members"]} == {copies["u0"]["id"], copies["u2"]["id"]}
    again = await replicate(config, mode=FULL, dry_run=False)
    assert writes(again.destination_requests) == 0, again.summary()
    await source.stop()
    await destination.stop()


async def test_a_destination_without_patch_gets_the_live_object_with_our_changes(tmp_path: Path) -> None:
    """Without PATCH, an update is a PUT of the object as the destination holds it with our operations
    applied: a PUT of the source form alone would wipe the nickName and the member others added."""
    await _replace_scenario(tmp_path, MemoryScimServer(quirks=Quirks(patch_supported=False)))


@pytest.mark.parametrize("refusals", [{"displayName": (501, None), "members[": (501, None)},
                                      {"members[": (400, "invalidFilter")}, {"title": (400, "invalidPath")}])
async def test_a_patch_the_destination_does_not_take_falls_back_to_put(
        tmp_path: Path, refusals: dict[str, tuple[int, str | None]]) -> None:
    """A server that advertises PATCH but answers 501 to some forms of it (django-scim2: a rename by
    `replace displayName`, a removal by `members[value eq ...]`), or 400 invalidFilter / invalidPath,
    gets the change by PUT instead."""
    await _replace_scenario(tmp_path, MemoryScimServer(quirks=Quirks(patch_refusals=refusals)))


async def test_member_changes_a_put_ignored_are_patched_or_reported(tmp_path: Path) -> None:
    """django-scim2 answers 501 to a rename and to a member removal by PATCH, and its PUT ignores members:
    after the PUT, members its answer lacks are added by PATCH, and a member it kept though we removed it
    fails the object (recorded, retried later) instead of being reported as replicated."""
    source = MemoryScimServer()
    destination = MemoryScimServer(quirks=Quirks(patch_refusals={"displayName": (501, None), "members[": (501, None)},
                                                 put_ignores_members=True))
    await source.start()
    await destination.start()
    ids = [source.add_user({"schemas": SCHEMA, "userName": f"u{i}"})["id"] for i in range(3)]
    group = source.add_group({"schemas": [GROUP_SCHEMA], "displayName": "team", "members": [{"value": ids[0]}]})
    config = config_for(source, destination, tmp_path)
    await replicate(config, mode=INCREMENTAL, dry_run=False)
    source.groups[group["id"]]["displayName"] = "team renamed"
    source.groups[group["id"]]["members"] = [{"value": ids[0]}, {"value": ids[1]}]  # an addition with the rename
    renamed = await replicate(config, mode=INCREMENTAL, dry_run=False)
    copies = {u["userName"]: u["id"] for u in destination.users.values()}
    (copy,) = destination.groups.values()
    assert renamed.outcome == "ok", renamed.summary()
    assert copy["displayName"] == "team renamed" and {m["value"] for m in copy["members"]} == {copies["u0"], copies["u1"]}
    source.groups[group["id"]]["members"] = [{"value": ids[1]}]  # a removal it cannot make
    removed = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert removed.outcome == "partial" and "kept 1 member" in removed.failures[0][2], removed.summary()
    await source.stop()
    await destination.stop()


async def test_a_put_keeps_the_members_a_read_left_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A destination without PATCH whose GET of a group leaves `members` out: the PUT built from that
    read must still carry every member we want, not only the one being added."""
    from replicator.scim.client import ScimClient

    source, destination = MemoryScimServer(), MemoryScimServer(quirks=Quirks(patch_supported=False))
    await source.start()
    await destination.start()
    ids = [source.add_user({"schemas": SCHEMA, "userName": f"u{i}"})["id"] for i in range(5)]
    group = source.add_group({"schemas": [GROUP_SCHEMA], "displayName": "team", "members": [{"value": i} for i in ids[:4]]})
    config = config_for(source, destination, tmp_path)
    await replicate(config, mode=INCREMENTAL, dry_run=False)
    get = ScimClient.get

    async def without_members(self: ScimClient, kind: str, resource_id: str) -> dict[str, object]:
        return {k: v for k, v in (await get(self, kind, resource_id)).items() if k != "members"}

    monkeypatch.setattr(ScimClient, "get", without_members)
    source.groups[group["id"]]["members"].append({"value": ids[4]})
    result = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "ok" and result.counts["updated"] == 1, result.summary()
    (copy,) = destination.groups.values()
    assert len(copy["members"]) == 5
    await source.stop()
    await destination.stop()


def test_list_responses_with_other_spellings_are_read() -> None:
    """`resources`/`TotalResults` spellings and a string totalResults are understood."""
    page = _decode_list(b'{"schemas":[],"resources":[{"id":"a"},{"id":"b"}],"TotalResults":"2"}')
    assert len(page.Resources) == 2 and page.totalResults == 2


def test_live_attribute_names_in_another_case_are_not_drift() -> None:
    """A destination answering `username` and `Emails[].Value` matches our `userName` and `emails[].value`."""
    live = {"username": "a", "Emails": [{"Value": "a@x", "Primary": False}]}
    desired = {"userName": "a", "emails": [{"value": "a@x"}]}
    assert project(live, desired) == desired


async def test_group_listing_without_members_is_not_read_as_empty(tmp_path: Path) -> None:
    """A source that leaves `members` out of group listings: each such group is read alone, members kept."""
    source, destination = MemoryScimServer(quirks=Quirks(list_omits_members=True)), MemoryScimServer()
    await source.start()
    await destination.start()
    ids = [source.add_user({"schemas": SCHEMA, "userName": f"m{i}"})["id"] for i in range(3)]
    source.add_group({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "team",
                      "members": [{"value": i} for i in ids]})
    config = config_for(source, destination, tmp_path)
    await replicate(config, mode=INCREMENTAL, dry_run=False)
    group = next(iter(destination.groups.values()))
    assert len(group["members"]) == 3
    again = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert writes(again.destination_requests) == 0
    await source.stop()
    await destination.stop()


async def test_numeric_ids_are_handled_as_strings(tmp_path: Path) -> None:
    """A source numbering its resources (ids as JSON numbers) replicates like any other."""
    from replicator.scim.wire import decode_list as _decode_list

    page = _decode_list(b'{"Resources":[{"id":42,"userName":"n"}],"totalResults":1}')
    assert len(page.Resources) == 1
    source, destination = MemoryScimServer(), MemoryScimServer()
    await source.start()
    await destination.start()
    stored = source.add_user({"schemas": SCHEMA, "userName": "numbered"})
    source.users[stored["id"]]["id"] = 7  # the server now answers with a number
    result = await replicate(config_for(source, destination, tmp_path), mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "ok" and len(destination.users) == 1, result.summary()
    await source.stop()
    await destination.stop()
