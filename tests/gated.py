"""A pair of in-memory SCIM servers that can hold a run in flight, for the process-level tests (lock, faults)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from replicator.testing import MemoryScimServer

SCHEMA = ["urn:ietf:params:scim:schemas:core:2.0:User"]


class GatedServer(MemoryScimServer):
    """A memory server that counts each request as it arrives and holds it until `gate` is open:
    a run waiting on it stays in flight for as long as the test wants, and makes no other request."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = asyncio.Event()
        self.gate.set()
        self.arrived = asyncio.Event()
        self.arrivals = 0

    async def _around_handler(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.arrivals += 1
        self.arrived.set()
        await self.gate.wait()
        return await super()._around_handler(request, handler)


Servers = tuple[GatedServer, GatedServer]


@contextlib.asynccontextmanager
async def gated_pair(token: str) -> AsyncIterator[Servers]:
    """Source (five users) and destination, both open; the destination's gate is opened before they stop."""
    source, destination = GatedServer(bearer_token=token), GatedServer(bearer_token=token)
    await source.start()
    await destination.start()
    for i in range(5):
        source.add_user({"schemas": SCHEMA, "userName": f"user{i}@example.com"})
    try:
        yield source, destination
    finally:
        destination.gate.set()
        await source.stop()
        await destination.stop()


def cli_env(source: MemoryScimServer, destination: MemoryScimServer, state: Path | str, token: str,
            **extra: str) -> dict[str, str]:
    """The environment of a `python -m replicator` subprocess against this pair."""
    return {**os.environ, "SCIMREP_SOURCE_URL": source.base_url or "", "SCIMREP_SOURCE_TOKEN": token,
            "SCIMREP_DESTINATION_URL": destination.base_url or "", "SCIMREP_DESTINATION_TOKEN": token,
            "SCIMREP_STATE": str(state), "SCIMREP_LOG_LEVEL": "error", **extra}
