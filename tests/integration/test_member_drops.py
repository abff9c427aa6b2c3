"""Groups naming users deleted in the same cycle: the requests each group gets, counted.

Removals run after the writes, but the users' are judged (and their absence from the source proven,
404 by id) right after the users' read, before any group is planned. A group the source takes a
deleted user out of loses it in its own PATCH; so does a group written this cycle whose source still
names it (some sources keep deleted users as members). Only a group not written this cycle gets the
PATCH that takes it out after its DELETE, and the destination (this one, like many) keeps no deleted
user among a group's members either way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from replicator.app import replicate
from replicator.cycle import INCREMENTAL
from replicator.testing import MemoryScimServer
from tests.harness import MemoryPair, memory_servers

TOKEN = "member-drops-token"


class Pair(MemoryPair):
    """A source and a destination in-memory server, and a state file."""

    def __init__(self, source: MemoryScimServer, destination: MemoryScimServer, tmp: Path) -> None:
        super().__init__(source, destination, tmp, TOKEN)
        self.deleted: dict[str, str] = {}  # userName -> the destination id it had, of users deleted

    def ids(self, server: MemoryScimServer) -> dict[str, str]:
        """userName / displayName -> id on that server."""
        users = {u["userName"]: i for i, u in server.users.items()}
        return {**users, **{g["displayName"]: i for i, g in server.groups.items()}}

    async def cycle(self, outcome: str = "ok") -> Counter[tuple[str, str]]:
        """One incremental cycle, checked to end `outcome`; the destination's writes to each object
        ((method, name))."""
        before = len(self.destination.request_log)
        result = await replicate(self.config, mode=INCREMENTAL, dry_run=False)
        assert result.outcome == outcome, result.summary()
        names = {i: name for name, i in self.ids(self.destination).items()} | {
            i: name for name, i in self.deleted.items()}
        out: Counter[tuple[str, str]] = Counter()
        for method, path in self.destination.request_log[before:]:
            last = path.rstrip("/").rsplit("/", 1)[-1]
            if method in ("PATCH", "PUT", "DELETE", "POST"):
                out[(method, names.get(last, last))] += 1
        return out

    def members(self, group: str) -> set[str]:
        """The userNames of a destination group's members."""
        names = {i: u["userName"] for i, u in self.destination.users.items()}
        held = self.destination.groups[self.ids(self.destination)[group]].get("members", [])
        return {names.get(m["value"], m["value"]) for m in held}


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    async with memory_servers(TOKEN) as (source, destination):
        for name in ("ann", "bob", "cyd", "dan"):
            source.add_user({"userName": name})
        ids = {u["userName"]: i for i, u in source.users.items()}
        source.add_group({"displayName": "Staff", "members": [{"value": ids[n]} for n in ("ann", "bob", "cyd")]})
        source.add_group({"displayName": "Leads", "members": [{"value": ids[n]} for n in ("ann", "cyd")]})
        out = Pair(source, destination, tmp_path)
        await out.cycle()
        yield out


def source_group(pair: Pair, name: str) -> dict[str, Any]:
    return pair.source.groups[pair.ids(pair.source)[name]]


def delete_on_source(pair: Pair, user: str) -> None:
    """The source drops the user (as the test's, not the replicator's, doing: no request logged)."""
    pair.deleted[user] = pair.ids(pair.destination)[user]
    del pair.source.users[pair.ids(pair.source)[user]]


async def test_a_user_leaving_its_groups_with_its_deletion_costs_each_group_one_patch(pair: Pair) -> None:
    """The source deletes cyd and takes it out of Staff (which also gains dan) and Leads: each group
    gets one PATCH, cyd one DELETE, nothing else; the next cycle writes nothing."""
    ids = pair.ids(pair.source)
    delete_on_source(pair, "cyd")
    source_group(pair, "Staff")["members"] = [{"value": ids[n]} for n in ("ann", "bob", "dan")]
    source_group(pair, "Leads")["members"] = [{"value": ids["ann"]}]
    requests = await pair.cycle()
    assert requests == Counter({("PATCH", "Staff"): 1, ("PATCH", "Leads"): 1, ("DELETE", "cyd"): 1}), requests
    assert pair.members("Staff") == {"ann", "bob", "dan"} and pair.members("Leads") == {"ann"}
    assert await pair.cycle() == Counter()


async def test_a_group_written_while_naming_a_deleted_user_leaves_it_out_in_one_patch(pair: Pair) -> None:
    """The source deletes cyd but its groups still name it; Staff also gains dan. Staff's one PATCH
    adds dan and takes cyd out (its absence was proven before groups were planned); Leads, unchanged
    in the source, gets the PATCH that takes cyd out after its DELETE; as the dry-run plans them. The
    destination keeps no cyd; the next cycle writes nothing (it names the references it drops)."""
    ids = pair.ids(pair.source)
    delete_on_source(pair, "cyd")
    source_group(pair, "Staff")["members"].append({"value": ids["dan"]})
    plan = await replicate(pair.config, mode=INCREMENTAL, dry_run=True)
    assert sorted((step.action, step.label) for step in plan.changes) == [
        ("delete", "cyd"), ("patch", "Leads"), ("patch", "Staff")]
    asked = ("GET", f"/v2/Users/{ids['cyd']}")
    before = pair.source.request_log.count(asked)
    requests = await pair.cycle()
    assert requests == Counter({("PATCH", "Staff"): 1, ("PATCH", "Leads"): 1, ("DELETE", "cyd"): 1}), requests
    assert pair.source.request_log.count(asked) == before + 1  # its 404, asked once (before the groups)
    assert pair.members("Staff") == {"ann", "bob", "dan"} and pair.members("Leads") == {"ann"}
    assert await pair.cycle(outcome="partial") == Counter()
