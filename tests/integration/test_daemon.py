"""The daemon: cycles on an interval, readiness, metrics, JSON logs and graceful shutdown on signals."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from replicator.config import Config, SideConfig
from replicator.daemon import Daemon
from replicator.testing import Faults, MemoryScimServer
from tests.harness import free_port

TOKEN = "daemon-token"
SCHEMA = ["urn:ietf:params:scim:schemas:core:2.0:User"]


@pytest.fixture
async def pair() -> AsyncIterator[tuple[MemoryScimServer, MemoryScimServer]]:
    source, destination = MemoryScimServer(bearer_token=TOKEN), MemoryScimServer(bearer_token=TOKEN)
    await source.start()
    await destination.start()
    for i in range(10):
        source.add_user({"schemas": SCHEMA, "userName": f"user{i}@example.com"})
    yield source, destination
    await source.stop()
    await destination.stop()


def config_for(source: MemoryScimServer, destination: MemoryScimServer, tmp: Path, **extra: object) -> Config:
    return Config(
        source=SideConfig(url=source.base_url or "", token=TOKEN),
        destination=SideConfig(url=destination.base_url or "", token=extra.pop("destination_token", TOKEN)),  # type: ignore[arg-type]
        state=str(tmp / "state.db"), interval=0.2, interval_jitter=0.0, listen="127.0.0.1:0", grace=5.0,
        **extra,  # type: ignore[arg-type]
    )


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def wait_for(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_daemon_replicates_on_interval_and_serves_metrics(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Ready after the first (full) cycle; later source changes arrive by incremental cycles; metrics count them."""
    source, destination = pair
    daemon = Daemon(config_for(source, destination, tmp_path))
    task = asyncio.create_task(daemon.run())
    await wait_for(lambda: asyncio.sleep(0, daemon.bound is not None))
    base = f"http://127.0.0.1:{daemon.bound[1]}"  # type: ignore[index]
    assert (await get(base + "/healthz"))[0] == 200

    async def ready() -> bool:
        return (await get(base + "/readyz"))[0] == 200

    await wait_for(ready)
    assert len(destination.users) == 10
    source.add_user({"schemas": SCHEMA, "userName": "late@example.com"})

    async def arrived() -> bool:
        return any(u["userName"] == "late@example.com" for u in destination.users.values())

    await wait_for(arrived)

    async def counted() -> bool:  # metrics are recorded when the cycle returns, a moment after its writes
        return 'operation="created"} 11.0' in (await get(base + "/metrics"))[1]

    await wait_for(counted)
    status, text = await get(base + "/metrics")
    assert status == 200
    assert 'scimrep_cycles_total{mode="full",outcome="ok"} 1.0' in text
    assert 'scimrep_cycles_total{mode="incremental",outcome="ok"}' in text
    assert 'scimrep_operations_total{operation="created"} 11.0' in text
    assert 'scimrep_request_duration_seconds_count{side="destination"}' in text
    assert "scimrep_last_success_timestamp_seconds" in text and "scimrep_concurrency_current" in text
    daemon.request_stop()
    assert await asyncio.wait_for(task, 10) == 0


async def test_readiness_follows_destination_health(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Refused credentials keep /readyz at 503 while /healthz stays 200; the cycle failure is counted."""
    source, destination = pair
    daemon = Daemon(config_for(source, destination, tmp_path, destination_token="wrong"))
    task = asyncio.create_task(daemon.run())

    async def failed_once() -> bool:
        return daemon.cycles_done >= 1

    await wait_for(failed_once)
    base = f"http://127.0.0.1:{daemon.bound[1]}"  # type: ignore[index]
    assert (await get(base + "/readyz"))[0] == 503
    assert (await get(base + "/healthz"))[0] == 200
    assert 'scimrep_cycles_total{mode="full",outcome="failed"}' in (await get(base + "/metrics"))[1]
    daemon.request_stop()
    assert await asyncio.wait_for(task, 10) == 0


async def _start_cli(source: MemoryScimServer, destination: MemoryScimServer, tmp: Path, port: int):  # type: ignore[no-untyped-def]
    env = {**os.environ, "SCIMREP_SOURCE_URL": source.base_url or "", "SCIMREP_SOURCE_TOKEN": TOKEN,
           "SCIMREP_DESTINATION_URL": destination.base_url or "", "SCIMREP_DESTINATION_TOKEN": TOKEN,
           "SCIMREP_STATE": str(tmp / "state.db"), "SCIMREP_LISTEN": f"127.0.0.1:{port}",
           "SCIMREP_INTERVAL": "0.5", "SCIMREP_GRACE": "10", "SCIMREP_CONCURRENCY": "4"}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "replicator", "run", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def test_sigterm_drains_and_exits_zero_with_json_logs(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM mid-cycle: calls in flight finish, the state is flushed, exit 0; logs are JSON lines."""
    source, destination = pair
    for i in range(300):
        source.add_user({"schemas": SCHEMA, "userName": f"bulk{i}@example.com"})
    destination.faults = Faults(latency=0.02)
    port = free_port()
    process = await _start_cli(source, destination, tmp_path, port)

    async def busy() -> bool:
        return len(destination.users) >= 20

    await wait_for(busy)
    process.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(process.communicate(), timeout=15)
    assert process.returncode == 0, err.decode()[-2000:]
    assert len(destination.users) < 310  # it stopped before the end
    lines = [json.loads(line) for line in err.decode().splitlines() if line.strip()]
    assert any("stopping" in entry["msg"] for entry in lines)
    assert all({"ts", "level", "msg"} <= set(entry) for entry in lines)
    # a new start on the same state finishes the job without duplicates
    destination.faults = Faults()
    process = await _start_cli(source, destination, tmp_path, port)

    async def done() -> bool:
        return len(destination.users) == 310

    await wait_for(done, timeout=30)
    process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(process.communicate(), timeout=15)
    assert process.returncode == 0
    assert len({u["userName"] for u in destination.users.values()}) == 310


async def test_second_signal_stops_at_once(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A second SIGTERM during the drain exits 130 without waiting for the grace period."""
    source, destination = pair
    for i in range(300):
        source.add_user({"schemas": SCHEMA, "userName": f"slow{i}@example.com"})
    destination.faults = Faults(latency=0.5)
    process = await _start_cli(source, destination, tmp_path, free_port())

    async def busy() -> bool:
        return len(destination.request_log) >= 6

    await wait_for(busy)
    process.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(process.communicate(), timeout=5)
    assert process.returncode == 130


async def test_healthcheck_command_probes_the_daemon(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`scim-replicator healthcheck` (the image's HEALTHCHECK) exits 0 against a live daemon, 1 without one."""
    source, destination = pair
    daemon = Daemon(config_for(source, destination, tmp_path))
    task = asyncio.create_task(daemon.run())
    await wait_for(lambda: asyncio.sleep(0, daemon.bound is not None))

    async def probe(port: int) -> int:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "replicator", "healthcheck",
            env={**os.environ, "SCIMREP_LISTEN": f"0.0.0.0:{port}"},
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        return await process.wait()

    assert await probe(daemon.bound[1]) == 0  # type: ignore[index]
    assert await probe(free_port()) == 1
    daemon.request_stop()
    assert await asyncio.wait_for(task, 10) == 0
