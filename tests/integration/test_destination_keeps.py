"""A destination that keeps only some attributes: learned, reported, and not rewritten every cycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replicator.app import read_status, replicate
from replicator.config import Config, SideConfig
from replicator.cycle import FULL, INCREMENTAL
from replicator.report import status_json, status_text
from replicator.scim.urns import ENTERPRISE_USER
from replicator.testing import MemoryScimServer, Quirks
from tests.harness import scim2_server, writes

SCHEMA = ["urn:ietf:params:scim:schemas:core:2.0:User"]
LOSSY = Quirks(drops_attributes={"nickName", "phoneNumbers", ENTERPRISE_USER}, keeps_first_value_of={"emails"})


def user(index: int) -> dict[str, Any]:
    """A user with eight attributes, four of which the lossy destination loses."""
    return {"schemas": [*SCHEMA, ENTERPRISE_USER], "userName": f"user{index}", "displayName": f"User {index}",
            "title": "Engineer", "name": {"givenName": "U", "familyName": f"Ser{index}"},
            "nickName": f"nick{index}", "phoneNumbers": [{"value": f"+1555{index:04d}", "type": "work"}],
            "emails": [{"value": f"u{index}@work.example", "type": "work", "primary": True},
                       {"value": f"u{index}@home.example", "type": "home"}],
            ENTERPRISE_USER: {"department": "R&D"}}


@dataclass
class Servers:
    """A source of users, a destination with quirks, and the configuration between them."""

    source: MemoryScimServer
    destination: MemoryScimServer
    config: Config
    users: list[dict[str, Any]]


@asynccontextmanager
async def servers(tmp: Path, quirks: Quirks, users: int) -> AsyncIterator[Servers]:
    """Both servers started, the source holding `users` users (`user`); stopped on leaving."""
    source, destination = MemoryScimServer(), MemoryScimServer(quirks=quirks)
    await source.start()
    await destination.start()
    try:
        added = [source.add_user(user(index)) for index in range(users)]
        config = Config(source=SideConfig(url=source.base_url or ""),
                        destination=SideConfig(url=destination.base_url or ""), state=str(tmp / "s.db"))
        yield Servers(source, destination, config, added)
    finally:
        await source.stop()
        await destination.stop()


async def test_a_full_reconcile_of_an_unchanged_source_writes_nothing_to_a_lossy_destination(tmp_path: Path) -> None:
    """Against a destination that drops nickName, phones and the enterprise extension and keeps one email,
    a no-change --full makes no writes and names what the destination does not keep; `status` lists it."""
    async with servers(tmp_path, LOSSY, 12) as s:
        first = await replicate(s.config, mode=INCREMENTAL, dry_run=False)
        assert first.outcome == "ok" and first.counts["created"] == 12, first.summary()
        for _ in range(2):
            again = await replicate(s.config, mode=FULL, dry_run=False)
            assert again.outcome == "ok" and writes(again.destination_requests) == 0, again.summary()
        note = next(note for note in again.notes if note.startswith("the destination does not keep "))
        assert "keeps fewer values of emails (12 users, 12 differ there this cycle)" in note, note
        for path in ("nickName", "phoneNumbers", ENTERPRISE_USER):
            assert f"{path} (12 users, 12 differ there this cycle)" in note, note
        assert "title" not in note and "userName" not in note, note
        status = await read_status(s.config.state)
        assert sorted(entry["path"] for entry in status_json(status)["not_kept"]) == [
            "emails", "nickName", "phoneNumbers", ENTERPRISE_USER]
        shown = status_text(status).splitlines()
        listed = [line for line in shown if line.startswith(f"destination {s.destination.base_url}")]
        assert len(listed) == 4 and any("does not keep nickName of users (seen on 12" in line for line in listed), shown


async def test_a_source_change_in_an_attribute_not_kept_is_still_sent(tmp_path: Path) -> None:
    """After the destination was learned to drop nickName and keep one email, a source change of one
    user's nickName or emails is sent (incremental and full), and the others are not rewritten."""
    async with servers(tmp_path, LOSSY, 4) as s:
        await replicate(s.config, mode=INCREMENTAL, dry_run=False)
        s.source.users[s.users[0]["id"]]["nickName"] = "changed"
        result = await replicate(s.config, mode=INCREMENTAL, dry_run=False)
        assert result.destination_requests.get("PATCH") == 1 and result.counts["updated"] == 1, result.summary()
        s.source.users[s.users[1]["id"]]["emails"] = [{"value": "new@work.example", "type": "work", "primary": True}]
        result = await replicate(s.config, mode=FULL, dry_run=False)
        assert result.destination_requests.get("PATCH") == 1 and result.counts["updated"] == 1, result.summary()
        copy = next(u for u in s.destination.users.values() if u["userName"] == "user1")
        assert copy["emails"][0]["value"] == "new@work.example"


async def test_an_attribute_seen_kept_again_is_forgotten_and_written(tmp_path: Path) -> None:
    """A destination learned to drop nickName that is later seen keeping it (a new user's create answer
    holds it) is compared on nickName again: the next --full writes the nickNames it lacks."""
    quirks = Quirks(drops_attributes={"nickName"})
    async with servers(tmp_path, quirks, 3) as s:
        await replicate(s.config, mode=INCREMENTAL, dry_run=False)
        quirks.drops_attributes = set()
        s.source.add_user(user(3))
        result = await replicate(s.config, mode=INCREMENTAL, dry_run=False)
        assert any("keeping nickName of users again" in note for note in result.notes), result.notes
        result = await replicate(s.config, mode=FULL, dry_run=False)
        assert result.destination_requests.get("PATCH") == 3, result.summary()
        assert all(u.get("nickName") for u in s.destination.users.values())


async def test_a_create_answered_without_a_body_teaches_nothing(tmp_path: Path) -> None:
    """A destination answering creates with only a Location header (the client then echoes the body
    sent) is learned from its read-back alone: one --full rewrites and learns, later creates do not make
    it forget, and the --full after them writes nothing."""
    async with servers(tmp_path, Quirks(drops_attributes={"nickName"}, create_returns_body=False), 3) as s:
        await replicate(s.config, mode=INCREMENTAL, dry_run=False)
        learning = await replicate(s.config, mode=FULL, dry_run=False)
        assert learning.destination_requests.get("PATCH") == 3, learning.summary()
        assert any("does not keep nickName (3 users, learned now)" in note for note in learning.notes), learning.notes
        s.source.add_user(user(3))
        created = await replicate(s.config, mode=INCREMENTAL, dry_run=False)
        assert created.counts["created"] == 1 and not any("seen keeping" in note for note in created.notes), created.notes
        again = await replicate(s.config, mode=FULL, dry_run=False)
        assert writes(again.destination_requests) == 0, again.summary()


async def test_bulk_creates_teach_what_the_destination_keeps(tmp_path: Path) -> None:
    """Users created in Bulk requests by a destination dropping nickName and phones: the Bulk answer's
    resources teach it, so the first --full after the copy makes no writes (it rewrote them once)."""
    quirks = Quirks(drops_attributes={"nickName", "phoneNumbers"}, bulk_max_operations=50)
    async with servers(tmp_path, quirks, 6) as s:
        first = await replicate(s.config, mode=INCREMENTAL, dry_run=False)
        assert first.outcome == "ok" and first.counts["created"] == 6, first.summary()
        assert [path for method, path in s.destination.request_log if method == "POST"] == ["/v2/Bulk"]
        assert any("does not keep nickName (6 users, learned now), phoneNumbers" in note for note in first.notes), first.notes
        again = await replicate(s.config, mode=FULL, dry_run=False)
        assert again.outcome == "ok" and writes(again.destination_requests) == 0, again.summary()


async def test_a_dropped_sub_attribute_of_multi_valued_values_is_learned(tmp_path: Path) -> None:
    """A destination dropping `emails.type` and `phoneNumbers.type` (keeping the values): learned from
    the create answers, reported, and a --full on an unchanged source writes nothing; a source change of
    one email's type is still sent."""
    async with servers(tmp_path, Quirks(drops_attributes={"emails.type", "phoneNumbers.type"}), 4) as s:
        first = await replicate(s.config, mode=INCREMENTAL, dry_run=False)
        assert first.outcome == "ok" and first.counts["created"] == 4, first.summary()
        note = next(note for note in first.notes if note.startswith("the destination does not keep "))
        assert "emails.type (4 users, learned now)" in note and "phoneNumbers.type (4 users" in note, note
        for _ in range(2):
            again = await replicate(s.config, mode=FULL, dry_run=False)
            assert again.outcome == "ok" and writes(again.destination_requests) == 0, again.summary()
        emails = s.source.users[s.users[0]["id"]]["emails"]
        emails[1] = {**emails[1], "type": "other"}
        changed = await replicate(s.config, mode=FULL, dry_run=False)
        assert changed.destination_requests.get("PATCH") == 1 and changed.counts["updated"] == 1, changed.summary()


async def test_patch_answers_teach_what_the_destination_keeps(tmp_path: Path) -> None:
    """Users created without a nickName on a destination that drops it, then given one in the source:
    the PATCH answers (the resource, as the server holds it) teach that nickName is not kept, so the
    --full after them makes no writes (it rewrote them once)."""
    async with servers(tmp_path, Quirks(drops_attributes={"nickName"}), 3) as s:
        for source_user in s.source.users.values():
            del source_user["nickName"]
        await replicate(s.config, mode=INCREMENTAL, dry_run=False)
        for index, source_user in enumerate(s.source.users.values()):
            source_user["nickName"] = f"nick{index}"
        patched = await replicate(s.config, mode=INCREMENTAL, dry_run=False)
        assert patched.destination_requests.get("PATCH") == 3, patched.summary()
        assert any("does not keep nickName (3 users, learned now)" in note for note in patched.notes), patched.notes
        again = await replicate(s.config, mode=FULL, dry_run=False)
        assert again.outcome == "ok" and writes(again.destination_requests) == 0, again.summary()


async def test_a_destination_keeping_everything_is_learned_to_lose_nothing(tmp_path: Path) -> None:
    """scim2-server keeps every attribute it is sent (nickName, phones, both emails, the enterprise
    extension): its read-back teaches no loss, nothing is reported, and a --full writes nothing."""
    source = MemoryScimServer()
    await source.start()
    try:
        for index in range(5):
            source.add_user(user(index))
        with scim2_server() as url:
            config = Config(source=SideConfig(url=source.base_url or ""), destination=SideConfig(url=url),
                            state=str(tmp_path / "s.db"))
            first = await replicate(config, mode=INCREMENTAL, dry_run=False)
            assert first.outcome == "ok" and first.counts["created"] == 5, first.summary()
            for _ in range(2):
                again = await replicate(config, mode=FULL, dry_run=False)
                assert again.outcome == "ok" and writes(again.destination_requests) == 0, again.summary()
                assert not [note for note in again.notes if "the destination" in note], again.notes
        assert (await read_status(config.state)).keeps == []
    finally:
        await source.stop()


async def test_an_object_whose_last_write_failed_teaches_nothing(tmp_path: Path) -> None:
    """A user whose last write failed (it may have been carried out in part) is not learned from on the
    read-back of a --full: its missing nickName is repaired, not taken for a destination habit."""
    async with servers(tmp_path, Quirks(), 1) as s:
        await replicate(s.config, mode=INCREMENTAL, dry_run=False)
        copy = next(iter(s.destination.users.values()))
        del copy["nickName"]
        s.source.users[s.users[0]["id"]]["title"] = "REFUSED"
        s.destination.faults.refuse_values = {"REFUSED"}
        failed = await replicate(s.config, mode=INCREMENTAL, dry_run=False)
        assert failed.counts["failed"] == 1, failed.summary()
        s.destination.faults.refuse_values = set()
        s.source.users[s.users[0]["id"]]["title"] = "Engineer"
        repaired = await replicate(s.config, mode=FULL, dry_run=False)
        assert repaired.destination_requests.get("PATCH") == 1, repaired.summary()
        assert next(iter(s.destination.users.values()))["nickName"] == "nick0"
        assert (await read_status(s.config.state)).keeps == [], repaired.notes


async def test_one_objects_drift_refuted_by_its_repair_is_not_learned(tmp_path: Path) -> None:
    """Only one user has a nickName, and it is cleared on the destination (drift): the --full's read-back
    sees nickName lost and never kept, but the repair's PATCH answer holds it again, so the cycle does not
    learn "does not keep nickName" (it used to, until a later --full saw it kept)."""
    async with servers(tmp_path, Quirks(), 3) as s:
        for source_user in list(s.source.users.values())[1:]:
            del source_user["nickName"]
        await replicate(s.config, mode=INCREMENTAL, dry_run=False)
        drifted = next(key for key, u in s.destination.users.items() if u.get("nickName"))
        del s.destination.users[drifted]["nickName"]
        repaired = await replicate(s.config, mode=FULL, dry_run=False)
        assert repaired.outcome == "ok" and repaired.destination_requests.get("PATCH") == 1, repaired.summary()
        assert s.destination.users[drifted].get("nickName") == "nick0"
        assert not [note for note in repaired.notes if "nickName" in note], repaired.notes
        assert (await read_status(s.config.state)).keeps == []
