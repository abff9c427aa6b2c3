"""Temporary rename names never left behind: a swap whose final rename is refused for another attribute
still gives the object its name (the rest fails and is retried), and a state lost while an object holds a
temporary name adopts that object again instead of creating a copy beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from replicator.app import replicate
from replicator.cycle import FULL, INCREMENTAL
from replicator.pipeline.renames import is_temporary_name
from replicator.testing import MemoryScimServer
from replicator.testing.protocol import ScimProblem, error_response
from tests.conftest import DESTINATION_TOKEN, SOURCE_TOKEN
from tests.integration.test_renames import replicated_pair


class RefusesTitles(MemoryScimServer):
    """A destination that refuses (400 invalidValue) a PATCH writing `title`, once it has checked that the
    name the PATCH gives is free (a taken one is answered 409 first, as servers checking uniqueness do)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.refusing = True

    async def _around_handler(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.refusing and request.method == "PATCH":
            operations = json.loads(await request.read()).get("Operations", [])
            if any(operation.get("path") == "title" for operation in operations) and not self._name_taken(
                    request.match_info.get("id", ""), operations):
                return error_response(ScimProblem(400, "title: not a value this server takes", "invalidValue"))
        return await super()._around_handler(request, handler)

    def _name_taken(self, dest_id: str, operations: list[dict[str, Any]]) -> bool:
        names = {str(operation.get("value")).casefold() for operation in operations if operation.get("path") == "userName"}
        return any(user["userName"].casefold() in names for uid, user in self.users.items() if uid != dest_id)


@pytest.mark.parametrize("titled", ["moved-aside", "other"])
async def test_a_swap_whose_rename_is_refused_for_another_attribute_leaves_no_temporary_name(tmp_path: Path,
                                                                                         titled: str) -> None:
    """ann and bob swap names while one of them (the one moved to a temporary name, or the other) gets a
    title the destination refuses: both still end with their new names (the refused rename is written
    with the name alone), that one fails for the title, and once the title is taken the swap is whole."""
    source = MemoryScimServer(bearer_token=SOURCE_TOKEN)
    destination = RefusesTitles(bearer_token=DESTINATION_TOKEN)
    urls = await source.start(), await destination.start()
    try:
        ann, bob, settings = await replicated_pair(source, urls, tmp_path)
        ids = {user["userName"]: user["id"] for user in destination.users.values()}
        source.users[ann]["userName"], source.users[bob]["userName"] = "bob", "ann"
        moved_aside = min(ann, bob)  # (the plan breaks the loop at the smallest source id)
        given_title = moved_aside if titled == "moved-aside" else max(ann, bob)
        source.users[given_title]["title"] = "Boss"
        result = await replicate(settings, mode=INCREMENTAL, dry_run=False)
        names = {user["id"]: user["userName"] for user in destination.users.values()}
        assert not any(is_temporary_name(name) for name in names.values()), names
        assert names == {ids["ann"]: "bob", ids["bob"]: "ann"}
        assert result.outcome == "partial" and result.counts["failed"] == 1, (result.summary(), result.failures)
        assert "title" in str(result.failures), result.failures
        destination.refusing = False
        after = await replicate(settings, mode=FULL, dry_run=False)  # (an incremental one waits for the retry delay)
        assert after.outcome == "ok", (after.summary(), after.failures)
        titled_id = ids["ann"] if given_title == ann else ids["bob"]
        assert destination.users[titled_id]["title"] == "Boss" and after.counts["created"] == 0
    finally:
        await source.stop()
        await destination.stop()
