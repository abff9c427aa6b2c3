"""Shared fixtures: a source/destination pair of real SCIM servers on 127.0.0.1."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from replicator.scim.client import ScimClient
from replicator.testing import MemoryScimServer
from tests.harness import scim2_server

SOURCE_TOKEN = "source-test-token"
DESTINATION_TOKEN = "destination-test-token"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--compact-members", action="store_true",
                     help="hold every group's members as Member structs (COMPACT_FROM = 0), not only a group's "
                          "past 8,192: code that reads members as dicts fails in any group test (.ci/run)")


@pytest.fixture(autouse=True, scope="session")
def compact_members(request: pytest.FixtureRequest) -> Iterator[None]:
    if not request.config.getoption("--compact-members"):
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        for module in ("replicator.pipeline.member", "replicator.pipeline.canonical"):
            patch.setattr(f"{module}.COMPACT_FROM", 0)
        yield


@pytest.fixture(autouse=True)
def collector_as_it_was() -> Iterator[None]:
    """A test that runs a command (`cli._run_async` tunes the garbage collector) leaves the collector as it
    found it: no later test runs with its objects frozen or its thresholds changed."""
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    yield
    if gc.get_freeze_count() != frozen:
        gc.unfreeze()
    gc.set_threshold(*thresholds)


@dataclass
class Pair:
    """Two SCIM servers and clients for them (for seeding and checking, not for the replicator)."""

    name: str
    source_url: str
    destination_url: str
    source: ScimClient
    destination: ScimClient
    state: Path
    memory: tuple[MemoryScimServer, MemoryScimServer] | None = None


@pytest.fixture(params=["scim2-server", "memory"])
def server_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def scim2_urls(server_kind: str) -> Iterator[tuple[str, str] | None]:
    if server_kind != "scim2-server":
        yield None
        return
    with scim2_server(SOURCE_TOKEN) as source, scim2_server(DESTINATION_TOKEN) as destination:
        yield source, destination


@pytest.fixture
async def pair(server_kind: str, scim2_urls: tuple[str, str] | None, tmp_path: Path) -> AsyncIterator[Pair]:
    """A source and a destination server of the parametrised kind, with checking clients."""
    memory = None
    if scim2_urls is None:
        memory = (MemoryScimServer(bearer_token=SOURCE_TOKEN), MemoryScimServer(bearer_token=DESTINATION_TOKEN))
        urls = (await memory[0].start(), await memory[1].start())
    else:
        urls = scim2_urls
    from replicator.scim.auth import StaticAuth

    source = ScimClient(urls[0], auth=StaticAuth.bearer(SOURCE_TOKEN), name="check-source")
    destination = ScimClient(urls[1], auth=StaticAuth.bearer(DESTINATION_TOKEN), name="check-destination")
    async with source, destination:
        yield Pair(server_kind, urls[0], urls[1], source, destination, tmp_path / "state.db", memory)
    if memory is not None:
        for server in memory:
            await server.stop()
