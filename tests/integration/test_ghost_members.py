"""Groups whose source names member ids it has no user for (deleted users a lax source keeps, or an
id that never existed) lose, on the destination, the users deleted in a later cycle.

Such a group records no source digest (it is planned again each cycle); its desired form is then the
same as the one we last wrote, so the plan must still read that form when it leaves out users that
leave this cycle, or it plans against nothing and, in merge mode, removes no member (ghost members).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from replicator.app import replicate
from replicator.cycle import INCREMENTAL
from tests.harness import MemoryPair, memory_servers

TOKEN = "ghost-members-token"


class Pair(MemoryPair):
    """A source and a destination in-memory server, and a state file."""

    async def cycle(self, outcome: str = "ok") -> None:
        result = await replicate(self.config, mode=INCREMENTAL, dry_run=False)
        assert result.outcome == outcome, result.summary()

    def staff(self) -> tuple[set[str], set[str]]:
        """The userNames of the destination's Staff members, and the member ids naming no object."""
        dst = self.destination
        group = next(g for g in dst.groups.values() if g["displayName"] == "Staff")
        values = [m["value"] for m in group.get("members", [])]
        names = {dst.users[v]["userName"] for v in values if v in dst.users}
        return names, {v for v in values if v not in dst.users and v not in dst.groups}

    def delete_on_source(self, user: str) -> None:
        """The source drops the user but its groups keep naming it (a lax source)."""
        del self.source.users[next(i for i, u in self.source.users.items() if u["userName"] == user)]


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    async with memory_servers(TOKEN) as (source, destination):
        for name in ("ann", "bob", "cyd", "dan"):
            source.add_user({"userName": name})
        ids = {u["userName"]: i for i, u in source.users.items()}
        source.add_group({"displayName": "Staff", "members": [{"value": ids[n]} for n in ("ann", "bob", "cyd", "dan")]})
        out = Pair(source, destination, tmp_path, TOKEN)
        await out.cycle()
        yield out


def source_staff(pair: Pair) -> dict[str, Any]:
    return next(g for g in pair.source.groups.values() if g["displayName"] == "Staff")


async def test_a_lax_source_deleting_users_twice_leaves_no_ghost_members(pair: Pair) -> None:
    """cyd is deleted (Staff still names it), then bob: Staff loses both on the destination."""
    pair.delete_on_source("cyd")
    await pair.cycle()
    assert pair.staff() == ({"ann", "bob", "dan"}, set())
    pair.delete_on_source("bob")
    await pair.cycle("partial")  # it names cyd, a reference it drops
    assert pair.staff() == ({"ann", "dan"}, set())


async def test_a_group_with_a_dropped_reference_loses_users_deleted_later(pair: Pair) -> None:
    """Staff names an id the source has no object for; then bob is deleted: Staff loses bob."""
    source_staff(pair)["members"].append({"value": "nonexistent-id"})
    await pair.cycle("partial")
    assert pair.staff() == ({"ann", "bob", "cyd", "dan"}, set())
    pair.delete_on_source("bob")
    await pair.cycle("partial")
    assert pair.staff() == ({"ann", "cyd", "dan"}, set())
