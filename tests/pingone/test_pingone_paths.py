"""Read paths chosen each cycle from what the environment answers (SCIM /Groups there or not, SCIM
startIndex paging advancing or not), named in the cycle's notes, with the same replica either way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from replicator.app import replicate
from replicator.config import Config, SyncConfig
from replicator.cycle import INCREMENTAL
from replicator.pingone.directory import PingOneDirectory
from replicator.pingone.paths import choose_paths, page_advanced
from replicator.pipeline.canonical import GROUP
from replicator.scim.paging import ReadReport
from replicator.testing.pingone import PingOneSwitches, serve_pingone
from tests.pingone.test_pingone_replication import Pair, picture, seed, side, writes

LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


def listing(*ids: str, total: int = 2) -> dict[str, object]:
    return {"schemas": [LIST], "totalResults": total, "Resources": [{"id": i} for i in ids]}


@pytest.mark.parametrize(("first", "second", "advances"), [
    (listing("a"), listing("b"), True),
    (listing("a"), listing("a"), False),  # startIndex ignored: the same first user again
    (listing("a", total=1), listing("b", total=1), False),  # one user: nothing proves paging
    (listing("a"), {"detail": "not found"}, False),
    (listing("a"), listing("b", "c"), False),  # count ignored
    (None, None, False),
])
def test_paging_advances_only_when_a_second_page_brings_another_user(first: object, second: object,
                                                                    advances: bool) -> None:
    """The probe's verdict on SCIM startIndex paging is yes only for a different second user."""
    assert page_advanced(first, second) is advances


def test_scim_is_used_only_where_it_can_be_read_whole() -> None:
    """Users by SCIM when paging advances; group members by SCIM /Groups only when it is there and pages."""
    assert choose_paths(scim_groups=True, scim_paging=False).groups_by_scim is False
    assert choose_paths(scim_groups=False, scim_paging=True).groups_by_scim is False
    both = choose_paths(scim_groups=True, scim_paging=True)
    assert both.users_by_scim and both.groups_by_scim
    assert "no SCIM /Groups" in choose_paths(scim_groups=False, scim_paging=False).words()


@pytest.mark.parametrize("scim_groups", [False, True], ids=["no-scim-groups", "scim-groups"])
@pytest.mark.parametrize("advances", [False, True], ids=["index-ignored", "index-advances"])
async def test_the_replica_is_the_same_whichever_paths_the_source_offers(
        scim_groups: bool, advances: bool, tmp_path: Path) -> None:
    """Under every answer of the emulator's switches the source is read through the paths its probe
    allows (SCIM /Users past 200 only when paging advances; SCIM /Groups only when served and paging
    advances), the notes say which, the destination equals the source, and a second cycle writes nothing."""
    switches = PingOneSwitches(scim_groups=scim_groups, scim_start_index_advances=advances)
    async with serve_pingone(switches=switches) as emulator:
        source, destination = emulator.add_environment("src-env"), emulator.add_environment("dst-env")
        for env in (source, destination):
            env.add_population("Employees")
            env.add_population("Contractors")
        pair = Pair(emulator, source, destination, Config(
            source=side(emulator, source), destination=side(emulator, destination), state=str(tmp_path / "s.db"),
            sync=SyncConfig(max_delete_percent=100.0)))
        seed(source)
        result = await replicate(pair.config, mode=INCREMENTAL, dry_run=False)
        assert result.outcome == "ok", (result.summary(), result.failures[:3])
        assert picture(destination) == picture(source)
        note = next(n for n in result.notes if n.startswith("source: read paths:"))
        by_scim_groups = scim_groups and advances
        assert ("users through SCIM /Users" in note) is advances, note
        assert ("through SCIM /Groups" in note) is by_scim_groups, note
        scim_user_reads = sum(1 for m, p, _ in source.request_log if m == "GET" and p.endswith("/v2/Users"))
        assert (scim_user_reads > 2) is advances  # the probe asks twice; a read of 230 users twice more
        nesting_reads = sum(1 for m, p, _ in source.request_log if p.endswith("/memberOfGroups"))
        assert (nesting_reads == 0) is by_scim_groups
        before = writes(destination)
        again = await replicate(pair.config, mode=INCREMENTAL, dry_run=False)
        assert again.outcome == "ok" and writes(destination) == before, again.summary()


class MissingOneGroup:
    """A SCIM client whose /Groups pages leave out the first group (as a SCIM API that hides some)."""

    def __init__(self, scim: Any) -> None:
        self.scim = scim

    async def iter_pages(self, kind: str, report: ReadReport, **options: Any) -> AsyncIterator[list[Any]]:
        async for page in self.scim.iter_pages(kind, report, **options):
            yield page[1:] if kind == GROUP else page


async def test_a_scim_groups_read_missing_a_listed_group_is_incomplete() -> None:
    """When SCIM /Groups lacks a group the Platform API lists, the group read cannot prove it saw every
    member: it is incomplete (so no removals follow from it)."""
    switches = PingOneSwitches(scim_groups=True, scim_start_index_advances=True)
    async with serve_pingone(switches=switches) as emulator:
        source = emulator.add_environment("src-env")
        for name in ("Employees", "Contractors"):
            source.add_population(name)
        seed(source, users=12)
        async with PingOneDirectory(side(emulator, source), name="source", max_connections=4) as directory:
            await directory.discover()
            assert directory.reader.paths.groups_by_scim
            directory.reader.scim = MissingOneGroup(directory.scim)  # type: ignore[assignment]  # a stand-in
            report = ReadReport(kind="groups")
            forms = [form async for page in directory.iter_pages(GROUP, report) for form in page]
    assert forms and not report.complete
    assert any("lacks 1 group" in problem for problem in report.problems), report.problems
