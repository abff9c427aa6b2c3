"""Test helpers: start scim2-server processes, seed directories over HTTP, compare source and destination."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from replicator.config import Config, SideConfig, SyncConfig
from replicator.pipeline.canonical import GROUP, USER
from replicator.scim.client import ScimClient
from replicator.scim.paging import ReadReport
from replicator.snapshot import differences, snapshot
from replicator.testing import MemoryScimServer
from replicator.testing.seeding import NestedGroup, seed_directory_over_http


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def scim2_server(token: str | None = None) -> Iterator[str]:
    """A scim2-server process on a free loopback port; yields its base URL."""
    port = free_port()
    exe = Path(sys.executable).with_name("scim2-server")
    command = [str(exe), "--hostname", "127.0.0.1", "--port", str(port)]
    if token:
        command += ["--bearer-token", token]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONWARNINGS": "ignore"})
    url = f"http://127.0.0.1:{port}/v2"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                request = urllib.request.Request(url + "/ServiceProviderConfig")
                if token:
                    request.add_header("Authorization", f"Bearer {token}")
                with urllib.request.urlopen(request, timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("scim2-server did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def make_config(source: str, destination: str, state: Path, *, source_token: str | None = None,
                destination_token: str | None = None, concurrency: int = 8, **sync: Any) -> Config:
    return Config(
        source=SideConfig(url=source, token=source_token),
        destination=SideConfig(url=destination, token=destination_token),
        sync=SyncConfig(**sync),
        state=str(state),
        concurrency=concurrency,
    )


class MemoryPair:
    """Two in-memory SCIM servers (both asking for `token`) and the replicator's config between them,
    its state file in `tmp`."""

    def __init__(self, source: MemoryScimServer, destination: MemoryScimServer, tmp: Path, token: str) -> None:
        self.source, self.destination = source, destination
        self.config = make_config(source.base_url or "", destination.base_url or "", tmp / "state.db",
                                  source_token=token, destination_token=token)


@contextlib.asynccontextmanager
async def memory_servers(token: str) -> AsyncIterator[tuple[MemoryScimServer, MemoryScimServer]]:
    """A started (source, destination) pair of in-memory SCIM servers, stopped on the way out."""
    source, destination = MemoryScimServer(bearer_token=token), MemoryScimServer(bearer_token=token)
    await source.start()
    await destination.start()
    try:
        yield source, destination
    finally:
        await source.stop()
        await destination.stop()


async def read_all(client: ScimClient, kind: str) -> list[dict[str, Any]]:
    report = ReadReport(kind=kind)
    out: list[dict[str, Any]] = []
    async for page in client.iter_pages(kind, report, page_size=200):
        out.extend(page)
    assert report.complete, report.problems
    return out


async def directory(client: ScimClient) -> dict[str, dict[str, Any]]:
    return snapshot(await read_all(client, USER), await read_all(client, GROUP))


async def assert_replicated(source: ScimClient, destination: ScimClient) -> None:
    """The destination holds exactly the source's users and groups (ids translated)."""
    diff = differences(await directory(source), await directory(destination))
    assert not diff, "\n".join(diff[:20])


async def count_duplicates(client: ScimClient) -> int:
    users = await read_all(client, USER)
    groups = await read_all(client, GROUP)
    names = [u["userName"].casefold() for u in users] + ["g:" + g["displayName"] for g in groups]
    return len(names) - len(set(names))


async def seed(client: ScimClient, users: int, groups: int, *, seed: int = 7) -> dict[str, list[str]]:
    """Create sample users (with managers) and groups (one with everyone, one empty, one nested) over HTTP."""
    return await seed_directory_over_http(client, users, groups, seed=seed, nested=NestedGroup("Leadership", users=2))


def patch_body(operations: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations}


def writes(counts: dict[str, int]) -> int:
    return sum(n for method, n in counts.items() if method in ("POST", "PUT", "PATCH", "DELETE"))
