"""Temporary rename names never left behind: a swap whose rename is refused for another attribute still
gives the objects their names (the rest fails and is retried), a swap whose last name is taken meanwhile
keeps the temporary name (and fails) until it is free, and a state lost while an object holds a temporary
name adopts that object instead of creating a copy beside it (or fails the object when that is not clear)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from replicator.app import replicate
from replicator.cycle import FULL, INCREMENTAL
from replicator.pipeline.renames import is_temporary_name, temporary_name
from replicator.testing import MemoryScimServer, Quirks
from replicator.testing.protocol import ScimProblem, error_response
from tests.conftest import DESTINATION_TOKEN, SOURCE_TOKEN
from tests.harness import make_config
from tests.integration.test_renames import USER, replicated_pair


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


def lost_state_pair(quirks: Quirks | None = None) -> tuple[MemoryScimServer, MemoryScimServer]:
    """A source and a destination, not started (seeded first)."""
    return MemoryScimServer(bearer_token=SOURCE_TOKEN), MemoryScimServer(bearer_token=DESTINATION_TOKEN,
                                                                          quirks=quirks or Quirks())


async def run_lost(source: MemoryScimServer, destination: MemoryScimServer, tmp: Path) -> Any:
    """One cycle between the two servers (started here, stopped after) with a state that has never seen
    them (a lost state)."""
    urls = await source.start(), await destination.start()
    try:
        return await replicate(make_config(urls[0], urls[1], tmp / "fresh.db", source_token=SOURCE_TOKEN,
                                           destination_token=DESTINATION_TOKEN), mode=INCREMENTAL, dry_run=False)
    finally:
        await source.stop()
        await destination.stop()


# a swap ann<->bob with the state lost after its first step (ann's object moved aside), after its second
# (bob's object took "ann"), and after its first with the swap undone in the source since: (the source's
# names of ann and bob, the name bob's object holds, the names each object ends with)
LOST_SWAPS = {
    "after-the-temporary-name": (("bob", "ann"), "bob", ("ann", "bob")),
    "after-the-second-rename": (("bob", "ann"), "ann", ("bob", "ann")),
    "swap-undone-in-the-source": (("ann", "bob"), "bob", ("ann", "bob")),
}


@pytest.mark.parametrize("bulk", [False, True], ids=["single", "bulk"])
@pytest.mark.parametrize("case", list(LOST_SWAPS))
async def test_a_state_lost_in_the_middle_of_a_swap_adopts_the_object_under_its_temporary_name(
        tmp_path: Path, case: str, bulk: bool) -> None:
    """A fresh state meets a destination where a swap of ann and bob stopped half way (ann's object under
    `renaming-<tag of ann>-ann`): the first cycle adopts both objects and gives them the source's names,
    creating nothing beside them (each destination object keeps its id)."""
    (ann_name, bob_name), held_by_bob_object, (ann_object_ends, bob_object_ends) = LOST_SWAPS[case]
    source, destination = lost_state_pair(Quirks(bulk_max_operations=10) if bulk else None)
    ann = source.add_user({"schemas": USER, "userName": ann_name})["id"]
    source.add_user({"schemas": USER, "userName": bob_name})
    ann_object = destination.add_user({"schemas": USER, "userName": temporary_name("ann", ann)})["id"]
    bob_object = destination.add_user({"schemas": USER, "userName": held_by_bob_object})["id"]
    result = await run_lost(source, destination, tmp_path)
    assert result.outcome == "ok", (result.summary(), result.failures)
    assert result.counts["created"] == 0 and result.counts["adopted"] == 2, result.summary()
    assert {user["id"]: user["userName"] for user in destination.users.values()} == \
        {ann_object: ann_object_ends, bob_object: bob_object_ends}


async def test_two_objects_under_temporary_names_of_one_name_fail_the_object_instead_of_a_guess(tmp_path: Path) -> None:
    """Two destination objects both left under a temporary name of "ann" by lost swaps: the new source
    object ann is neither adopted nor created; it fails naming both (and the destination is unchanged)."""
    source, destination = lost_state_pair()
    source.add_user({"schemas": USER, "userName": "ann"})
    left = {destination.add_user({"schemas": USER, "userName": temporary_name("ann", owner)})["userName"]
            for owner in ("gone-1", "gone-2")}
    result = await run_lost(source, destination, tmp_path)
    assert result.counts["failed"] == 1 and result.counts["created"] == 0 and result.counts["adopted"] == 0
    assert all(name in str(result.failures) for name in left), result.failures
    assert {user["userName"] for user in destination.users.values()} == left


class OutsiderTakesTheName(MemoryScimServer):
    """A destination where someone else creates a user `taken` the moment a PATCH gives a user the name
    `trigger` (a race: the name a swap frees is taken before the swap's last rename)."""

    def __init__(self, trigger: str, taken: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.trigger, self.taken, self.outsider = trigger, taken, ""

    async def _around_handler(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read() if request.method == "PATCH" else b""
        response = await super()._around_handler(request, handler)
        if not self.outsider and response.status < 300 and f'"value":"{self.trigger}"'.encode() in body:
            self.outsider = self.add_user({"schemas": USER, "userName": self.taken})["id"]
        return response


async def test_a_swap_whose_last_name_is_taken_meanwhile_keeps_the_temporary_name_and_fails(tmp_path: Path) -> None:
    """ann and bob swap names, and an outside user takes the name the object moved aside wants before its
    last rename: that object keeps its temporary name (there is no name it could rightly take) and fails
    naming the taken name; once the outsider is gone the next run finishes the swap."""
    source = MemoryScimServer(bearer_token=SOURCE_TOKEN)
    ann = source.add_user({"schemas": USER, "userName": "ann"})["id"]
    bob = source.add_user({"schemas": USER, "userName": "bob"})["id"]
    moved_aside, other = sorted([ann, bob])  # (the plan breaks the loop at the smallest source id)
    names = {ann: "ann", bob: "bob"}
    destination = OutsiderTakesTheName(names[moved_aside], names[other], bearer_token=DESTINATION_TOKEN)
    urls = await source.start(), await destination.start()
    try:
        settings = make_config(*urls, tmp_path / "s.db", source_token=SOURCE_TOKEN, destination_token=DESTINATION_TOKEN)
        await replicate(settings, mode=INCREMENTAL, dry_run=False)
        ids = {user["userName"]: user["id"] for user in destination.users.values()}
        source.users[ann]["userName"], source.users[bob]["userName"] = "bob", "ann"
        result = await replicate(settings, mode=INCREMENTAL, dry_run=False)
        assert destination.outsider, "the outsider never took the name"
        aside_name = destination.users[ids[names[moved_aside]]]["userName"]
        assert is_temporary_name(aside_name), aside_name
        assert result.counts["failed"] == 1 and "409" in str(result.failures), result.failures
        del destination.users[destination.outsider]
        after = await replicate(settings, mode=FULL, dry_run=False)
        assert after.outcome == "ok", (after.summary(), after.failures)
        assert {user["id"]: user["userName"] for user in destination.users.values()} == \
            {ids["ann"]: "bob", ids["bob"]: "ann"}
    finally:
        await source.stop()
        await destination.stop()


@pytest.mark.parametrize("bulk", [False, True])
@pytest.mark.parametrize("alice_first", [True, False])
async def test_a_source_object_named_like_a_temporary_name_keeps_its_object(
        tmp_path: Path, alice_first: bool, bulk: bool) -> None:
    """A source user whose own userName has a temporary name's shape (`renaming-0123abcd-alice`) is no
    leftover: with a lost state, `alice` does not take its destination object (which would then have two
    owners); each user ends with an object of its own, whichever is read first."""
    source, destination = lost_state_pair(Quirks(bulk_max_operations=10) if bulk else None)
    names = ["alice", "renaming-0123abcd-alice"]
    for name in names if alice_first else reversed(names):
        source.add_user({"schemas": USER, "userName": name})
    real = destination.add_user({"schemas": USER, "userName": "renaming-0123abcd-alice", "title": "its own"})["id"]
    result = await run_lost(source, destination, tmp_path)
    assert result.outcome == "ok", (result.summary(), result.failures)
    assert (result.counts["adopted"], result.counts["created"]) == (1, 1), result.summary()
    names_now = sorted(user["userName"] for user in destination.users.values())
    assert names_now == ["alice", "renaming-0123abcd-alice"], names_now
    assert destination.users[real]["userName"] == "renaming-0123abcd-alice"
    assert destination.users[real]["title"] == "its own"


async def test_a_leftover_claim_a_source_cannot_check_fails_the_object_instead_of_a_guess(tmp_path: Path) -> None:
    """When the source cannot be searched for an object named as the leftover, the claim is neither made
    nor dropped for a copy beside it: the object fails, naming the leftover, and nothing is written."""
    source = MemoryScimServer(bearer_token=SOURCE_TOKEN, quirks=Quirks(filter_supported=False))
    destination = MemoryScimServer(bearer_token=DESTINATION_TOKEN)
    source.add_user({"schemas": USER, "userName": "alice"})
    destination.add_user({"schemas": USER, "userName": "renaming-0123abcd-alice"})
    result = await run_lost(source, destination, tmp_path)
    assert result.counts["failed"] == 1 and "renaming-0123abcd-alice" in str(result.failures), result.failures
    assert sorted(user["userName"] for user in destination.users.values()) == ["renaming-0123abcd-alice"]
