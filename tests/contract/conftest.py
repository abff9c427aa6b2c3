"""The Directory implementations the contract suite runs over: one `Implementation` each in IMPLEMENTATIONS.

A new implementation adds one entry: a name, an `open(request)` that yields a ready (opened, not yet
discovered) `Directory` and cleans up after it, and whether it advertises SCIM Bulk. The suite seeds and
inspects objects through the Directory itself, so an entry needs no back door into its server. Entries may
share one server between tests (scim2-server does): tests name their objects uniquely (`unique`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import pytest

from replicator.config import SideConfig, pingone_urls
from replicator.directory import Directory
from replicator.pingone.directory import PingOneDirectory
from replicator.scim.auth import StaticAuth
from replicator.scim.client import ScimClient
from replicator.testing import MemoryScimServer, Quirks
from replicator.testing.pingone import serve_pingone
from tests.harness import scim2_server

TOKEN = "contract-test-token"


@dataclass(frozen=True)
class Implementation:
    """One way to get a Directory; `bulk`: whether it advertises SCIM Bulk (`features.bulk`)."""

    name: str
    open: Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[Directory]]
    bulk: bool


@asynccontextmanager
async def _memory_client(quirks: Quirks | None = None) -> AsyncIterator[Directory]:
    """ScimClient against a fresh in-memory SCIM server (replicator.testing)."""
    server = MemoryScimServer(bearer_token=TOKEN, quirks=quirks)
    url = await server.start()
    try:
        async with ScimClient(url, auth=StaticAuth.bearer(TOKEN), name="memory") as client:
            yield client
    finally:
        await server.stop()


def memory(request: pytest.FixtureRequest) -> AbstractAsyncContextManager[Directory]:
    return _memory_client()


def memory_with_bulk(request: pytest.FixtureRequest) -> AbstractAsyncContextManager[Directory]:
    return _memory_client(Quirks(bulk_max_operations=50))


@asynccontextmanager
async def _scim2_client(url: str) -> AsyncIterator[Directory]:
    async with ScimClient(url, auth=StaticAuth.bearer(TOKEN), name="scim2-server") as client:
        yield client


def scim2(request: pytest.FixtureRequest) -> AbstractAsyncContextManager[Directory]:
    """ScimClient against the one scim2-server process of the session (started when first asked for)."""
    return _scim2_client(str(request.getfixturevalue("scim2_url")))


@asynccontextmanager
async def _pingone_directory() -> AsyncIterator[Directory]:
    """PingOneDirectory against a fresh environment of the PingOne emulator (its Platform API)."""
    async with serve_pingone() as emulator:
        env = emulator.add_environment()
        cfg = pingone_urls(SideConfig(kind="pingone", pingone_environment=env.id, client_id=env.client_id,
                                      client_secret=env.client_secret, api_url=emulator.api_url,
                                      auth_url=emulator.auth_url, scim_url=emulator.scim_url))
        async with PingOneDirectory(cfg, name="pingone", max_connections=8) as directory:
            yield directory


def pingone(request: pytest.FixtureRequest) -> AbstractAsyncContextManager[Directory]:
    return _pingone_directory()


IMPLEMENTATIONS = [
    Implementation("memory", memory, bulk=False),
    Implementation("memory-bulk", memory_with_bulk, bulk=True),
    Implementation("scim2-server", scim2, bulk=True),
    Implementation("pingone", pingone, bulk=False),
]
BULK_IMPLEMENTATIONS = [implementation for implementation in IMPLEMENTATIONS if implementation.bulk]


@pytest.fixture(scope="session")
def scim2_url() -> Iterator[str]:
    with scim2_server(TOKEN) as url:
        yield url


@pytest.fixture(params=IMPLEMENTATIONS, ids=lambda implementation: implementation.name)
def implementation(request: pytest.FixtureRequest) -> Implementation:
    return request.param  # type: ignore[no-any-return]  # pytest types params as Any


@pytest.fixture(params=BULK_IMPLEMENTATIONS, ids=lambda implementation: implementation.name)
def bulk_implementation(request: pytest.FixtureRequest) -> Implementation:
    return request.param  # type: ignore[no-any-return]  # pytest types params as Any


async def _discovered(implementation: Implementation, request: pytest.FixtureRequest) -> AsyncIterator[Directory]:
    async with implementation.open(request) as directory:
        await directory.discover()  # as a cycle does before anything else
        yield directory


@pytest.fixture
async def directory(implementation: Implementation, request: pytest.FixtureRequest) -> AsyncIterator[Directory]:
    """A Directory of each implementation, discovered."""
    async for opened in _discovered(implementation, request):
        yield opened


@pytest.fixture
async def bulk_directory(bulk_implementation: Implementation,
                         request: pytest.FixtureRequest) -> AsyncIterator[Directory]:
    """A Directory of each implementation that advertises Bulk, discovered."""
    async for opened in _discovered(bulk_implementation, request):
        yield opened


@pytest.fixture
def unique() -> str:
    """A prefix no other test's objects carry (for implementations whose server the tests share)."""
    return f"c{uuid.uuid4().hex[:10]}"
