"""A source group without an id, met while reading the groups that define `scope.user_groups`: it is
skipped and named in a note, the scope read counts as incomplete (no user is removed), and the rest of
the cycle proceeds; it does not crash the cycle with a KeyError."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from replicator.app import replicate
from replicator.config import Config, ScopeConfig
from replicator.cycle import INCREMENTAL
from replicator.pipeline.canonical import GROUP
from replicator.scim.client import ScimClient
from replicator.testing import MemoryScimServer
from tests.conftest import DESTINATION_TOKEN, SOURCE_TOKEN
from tests.harness import make_config

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"


async def staff_pair(tmp_path: Path) -> tuple[MemoryScimServer, MemoryScimServer, dict[str, dict[str, Any]], Config]:
    """Started source and destination servers; the source holds ann and bob in the group Staff, which the
    configuration's `scope.user_groups` names (the objects by name: ann, bob, Staff)."""
    source, destination = MemoryScimServer(bearer_token=SOURCE_TOKEN), MemoryScimServer(bearer_token=DESTINATION_TOKEN)
    await source.start()
    await destination.start()
    ann = source.add_user({"schemas": [USER_SCHEMA], "userName": "ann"})
    bob = source.add_user({"schemas": [USER_SCHEMA], "userName": "bob"})
    staff = source.add_group({"schemas": [GROUP_SCHEMA], "displayName": "Staff",
                              "members": [{"value": ann["id"]}, {"value": bob["id"]}]})
    config = make_config(source.base_url or "", destination.base_url or "", tmp_path / "s.db",
                         source_token=SOURCE_TOKEN, destination_token=DESTINATION_TOKEN)
    config = msgspec.structs.replace(config, scope=ScopeConfig(user_groups=["Staff"]))
    return source, destination, {"ann": ann, "bob": bob, "Staff": staff}, config


async def test_a_scope_group_without_an_id_is_skipped_with_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    """After a first copy, bob leaves the scoping group, and the source's group listing for the scope
    yields one group without an id (a directory that does not drop such resources itself): the cycle
    goes on (ann's change is written), ends partial with a note naming the skipped group, and bob is not
    removed (the scope read is incomplete)."""
    source, destination, named, config = await staff_pair(tmp_path)
    ann, bob, staff = named["ann"], named["bob"], named["Staff"]
    original = ScimClient.iter_pages

    async def with_a_group_without_id(self: ScimClient, kind: str, *args: Any, **kwargs: Any
                                      ) -> AsyncGenerator[list[Any], None]:
        scope_read = self.name == "source" and kind == GROUP and not kwargs.get("with_raw")
        async for page in original(self, kind, *args, **kwargs):
            yield [*page, {"displayName": "Nameless", "members": [{"value": bob["id"]}]}] if scope_read else page

    try:
        first = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert first.outcome == "ok", first.summary()
        source.groups[staff["id"]]["members"] = [{"value": ann["id"]}]
        source.users[ann["id"]]["title"] = "Engineer"
        monkeypatch.setattr(ScimClient, "iter_pages", with_a_group_without_id)
        result = await replicate(config, mode=INCREMENTAL, dry_run=False)
    finally:
        await source.stop()
        await destination.stop()
    assert result.outcome == "partial", result.summary()
    assert ("source groups read for scope.user_groups: 1 without an id skipped ('Nameless'): no user is removed "
            "this cycle") in result.notes, result.notes
    held = {u["userName"]: u for u in destination.users.values()}
    assert sorted(held) == ["ann", "bob"] and held["ann"].get("title") == "Engineer"


async def test_a_failed_scope_read_says_what_failed(tmp_path: Path) -> None:
    """The groups read for `scope.user_groups` fails (a 500 on its page): the users' read problems say
    how it failed (the page and the server's answer), not only that it could not be read completely;
    no user is removed."""
    from replicator.testing.faults import Faults

    source, destination, named, config = await staff_pair(tmp_path)
    ann, staff = named["ann"], named["Staff"]
    config = msgspec.structs.replace(config, source=msgspec.structs.replace(config.source, retry_attempts=1))
    try:
        first = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert first.outcome == "ok", first.summary()
        source.groups[staff["id"]]["members"] = [{"value": ann["id"]}]
        failing = source._list_requests[GROUP] + 1  # the next Groups list request: the scope read's first page
        source.faults = Faults(fail_list_page=failing)
        result = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert source._list_requests[GROUP] >= failing  # the fault was reached
    finally:
        await source.stop()
        await destination.stop()
    assert result.outcome == "partial", result.summary()
    problems = result.reads["source User"].problems
    (scope,) = [p for p in problems if "define the scope" in p]
    assert "page 1" in scope and "injected fault" in scope, problems
    assert sorted(u["userName"] for u in destination.users.values()) == ["ann", "bob"]
