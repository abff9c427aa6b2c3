"""Creates never guess: a destination that can neither be listed completely nor searched gets no create
whose absence nothing shows (it could duplicate an object already there); --assume-empty-destination
is the explicit way out, for one run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import msgspec
import pytest
from aiohttp import web

from replicator.app import replicate
from replicator.config import Config, SideConfig, SyncConfig
from replicator.cycle import INCREMENTAL
from replicator.testing import MemoryScimServer, Quirks, ScimProblem
from replicator.testing.protocol import ResourceKind

SCHEMA = ["urn:ietf:params:scim:schemas:core:2.0:User"]
NAMES = ["ann", "bob", "cat"]


def unlistable(server: MemoryScimServer, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every listing of `server` fails (500); returns the log of list requests."""
    asked: list[str] = []

    def refuse(query: Mapping[str, str], kind: ResourceKind) -> web.Response:
        asked.append(kind.name)
        raise ScimProblem(500, "listing is down")

    monkeypatch.setattr(server, "_list", refuse)
    return asked


async def pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **sync: bool) -> tuple[MemoryScimServer, MemoryScimServer, Config, list[str]]:
    source, destination = MemoryScimServer(), MemoryScimServer(quirks=Quirks(filter_supported=False))
    await source.start()
    await destination.start()
    for name in NAMES:
        source.add_user({"schemas": SCHEMA, "userName": name, "title": "from the source"})
        destination.add_user({"schemas": SCHEMA, "userName": name})  # already there
    asked = unlistable(destination, monkeypatch)
    config = Config(source=SideConfig(url=source.base_url or ""), destination=SideConfig(url=destination.base_url or "", retry_attempts=1),
                    state=str(tmp_path / "s.db"), sync=msgspec.structs.replace(SyncConfig(groups=False), **sync))
    return source, destination, config, asked


async def test_a_create_nothing_proves_absent_is_held_not_posted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No search, no complete listing: not one POST; each object is a recorded failure that names the
    way out, the outcome is partial (not ok), and the destination is listed again once, not per object."""
    source, destination, config, asked = await pair(tmp_path, monkeypatch)
    try:
        result = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert result.destination_requests.get("POST", 0) == 0, result.destination_requests
        assert result.outcome == "partial" and result.counts["failed"] == len(NAMES), result.summary()
        assert all("--assume-empty-destination" in reason and "not created" in reason
                   for _, _, reason in result.failures), result.failures
        assert sorted(u["userName"] for u in destination.users.values()) == NAMES  # no duplicate, nothing lost
        assert asked == ["User", "User"]  # the first run's listing, and one more try to find objects
    finally:
        await source.stop()
        await destination.stop()


async def test_assume_empty_destination_lets_the_creates_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With sync.assume_empty_destination the creates are sent: the operator's explicit word replaces
    the proof (here the server's 409s show the objects were there, and, the listing being down, they
    stay failures rather than guesses)."""
    source, destination, config, _ = await pair(tmp_path, monkeypatch, assume_empty_destination=True)
    try:
        result = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert result.destination_requests.get("POST", 0) == len(NAMES), result.destination_requests
        assert all("answered 409" in reason for _, _, reason in result.failures), result.failures
        assert sorted(u["userName"] for u in destination.users.values()) == NAMES
    finally:
        await source.stop()
        await destination.stop()
