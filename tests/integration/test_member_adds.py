"""A new group's members beyond the member chunk (issue 18): the PATCH adds go out side by side, not one
round trip after another, and a chunk the destination refuses among them still becomes a recorded
failure of the group's membership while the others are written."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from replicator.app import replicate
from replicator.cycle import FULL, INCREMENTAL
from replicator.testing import MemoryScimServer, Quirks
from tests.integration.test_partial_groups import GROUP, USER, config_for, members_by_name, started
from tests.integration.test_partial_groups import source as source  # the fixture: a memory source server

_GATE_TIMEOUT = 5.0  # bounds a failing run only: a passing one opens the gate on the PATCHes' arrival


def hold_patches_until(destination: MemoryScimServer, together: int) -> dict[str, int]:
    """Make the destination hold each PATCH until `together` of them are in flight at once (or the gate
    times out); returns the most seen in flight together."""
    seen = {"in_flight": 0, "most": 0}
    gate = asyncio.Event()
    around = destination._around_handler

    async def holding(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
        if request.method != "PATCH":
            return await around(request, handler)
        seen["in_flight"] += 1
        seen["most"] = max(seen["most"], seen["in_flight"])
        if seen["in_flight"] >= together:
            gate.set()
        try:
            await asyncio.wait_for(gate.wait(), _GATE_TIMEOUT)
        except TimeoutError:
            pass  # one at a time: let it through (the test then fails on `most`)
        finally:
            seen["in_flight"] -= 1
        return await around(request, handler)

    destination._around_handler = holding  # type: ignore[method-assign]  # (a test's probe on the server)
    return seen


async def test_member_adds_of_a_new_group_go_out_together(source: MemoryScimServer, tmp_path: Path) -> None:
    """A new group of 9 members at a member chunk of 2: the POST carries 2, and the 4 PATCH adds of the
    rest are in flight at the same time; the group ends whole, and a --full writes nothing."""
    destination = await started(Quirks())
    seen = hold_patches_until(destination, together=4)
    try:
        ids = [source.add_user({"schemas": USER, "userName": f"u{i}"})["id"] for i in range(9)]
        source.add_group({"schemas": GROUP, "displayName": "team", "members": [{"value": i} for i in ids]})
        config = config_for(source, destination, tmp_path, member_chunk=2)
        result = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert result.outcome == "ok" and result.counts["created"] == 10, result.summary()
        assert result.destination_requests.get("PATCH", 0) == 4, result.summary()
        assert seen["most"] == 4
        assert members_by_name(destination) == {"team": [f"u{i}" for i in range(9)]}
        again = await replicate(config, mode=FULL, dry_run=False)
        assert sum(again.destination_requests.get(m, 0) for m in ("POST", "PATCH", "PUT", "DELETE")) == 0
    finally:
        await destination.stop()


async def test_refused_chunks_among_concurrent_adds_are_recorded_failures(
        source: MemoryScimServer, tmp_path: Path) -> None:
    """Groups as members refused (400 `members.N.type`) in two of the PATCH adds sent together: the
    users of every chunk are written, the two refused groups are one recorded failure of the group
    (outcome partial), and nothing is created twice by a --full."""
    destination = await started(Quirks(refuses_group_members=True))
    try:
        users = [source.add_user({"schemas": USER, "userName": f"u{i}"})["id"] for i in range(5)]
        inner = [source.add_group({"schemas": GROUP, "displayName": f"inner{i}", "members": [{"value": users[0]}]})["id"]
                 for i in range(2)]
        members = [{"value": users[0], "type": "User"}, {"value": users[1], "type": "User"},
                   {"value": inner[0], "type": "Group"}, {"value": users[2], "type": "User"},
                   {"value": users[3], "type": "User"}, {"value": inner[1], "type": "Group"},
                   {"value": users[4], "type": "User"}]
        source.add_group({"schemas": GROUP, "displayName": "outer", "members": members})
        config = config_for(source, destination, tmp_path, member_chunk=2)
        result = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert result.outcome == "partial", result.summary()
        assert result.counts["created"] == 8 and result.counts["failed"] == 1, result.summary()
        [(kind, label, reason)] = result.failures
        assert (kind, label) == ("Group", "outer") and "2 member(s) not written" in reason, reason
        assert members_by_name(destination)["outer"] == [f"u{i}" for i in range(5)]
        again = await replicate(config, mode=FULL, dry_run=False)
        assert again.outcome == "partial" and again.destination_requests.get("POST", 0) == 0, again.summary()
        assert members_by_name(destination)["outer"] == [f"u{i}" for i in range(5)]
    finally:
        await destination.stop()
