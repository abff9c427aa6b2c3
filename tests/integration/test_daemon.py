"""The daemon: cycles on an interval, readiness, metrics, JSON logs and graceful shutdown on signals; what
an operator polling it sees: a hold of the guards on /healthz, /readyz and `healthcheck` (healthy all the
same), /livez failing once it is unhealthy, and one INFO line a quiet cycle."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

import replicator.daemon as daemon_module
from replicator.app import approve_removals
from replicator.cli import probe_health
from replicator.config import Config, SideConfig
from replicator.daemon import LIVENESS_PATH, Daemon
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


def unpaired(exposition: str) -> str:
    """/metrics without the `pair` label every sample carries (tests/unit/test_deploy_kit.py checks it)."""
    return re.sub(r'pair="[^"]*",?', "", exposition).replace(",}", "}")


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
        return 'operation="created"} 11.0' in unpaired((await get(base + "/metrics"))[1])

    await wait_for(counted)
    status, text = await get(base + "/metrics")
    text = unpaired(text)
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
    assert 'scimrep_cycles_total{mode="full",outcome="failed"}' in unpaired((await get(base + "/metrics"))[1])
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


class Paced:
    """Runs a daemon one cycle at a time: `cycle()` waits until a cycle is done (the loop waits for the
    next), `next()` ends that wait."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self._done: asyncio.Queue[int] = asyncio.Queue()
        self._go: asyncio.Queue[None] = asyncio.Queue()
        daemon._sleep = self._sleep  # type: ignore[method-assign]
        self.task = asyncio.create_task(daemon.run())

    async def _sleep(self, seconds: float) -> None:
        self._done.put_nowait(self.daemon.cycles_done)
        await self._go.get()

    async def cycle(self) -> int:
        return await asyncio.wait_for(self._done.get(), 30)

    async def next(self) -> int:
        self._go.put_nowait(None)
        return await self.cycle()

    async def stop(self) -> int:
        self.daemon.request_stop()
        self._go.put_nowait(None)
        return await asyncio.wait_for(self.task, 10)

    def url(self, path: str) -> str:
        assert self.daemon.bound is not None
        return f"http://127.0.0.1:{self.daemon.bound[1]}{path}"


async def get_json(url: str) -> tuple[int, dict[str, Any]]:
    status, text = await get(url)
    return status, json.loads(text)


async def test_a_held_daemon_stays_healthy_and_says_since_when_until_a_cycle_holds_nothing(
        pair, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    """8 of 10 users gone: /healthz, /livez and /readyz answer 200 and name the hold (since cycle 2, its
    counts), `healthcheck` exits 0 with one warning line naming --allow-mass-delete, every held cycle
    counts its removals again for the alerts; the first cycle that holds nothing clears it."""
    source, destination = pair
    paced = Paced(Daemon(config_for(source, destination, tmp_path)))
    assert await paced.cycle() == 1 and len(destination.users) == 10
    assert (await get_json(paced.url("/healthz")))[1]["held"] is None
    gone = {user_id: source.users.pop(user_id) for user_id in list(source.users)[:8]}
    assert await paced.next() == 2
    for path in ("/healthz", LIVENESS_PATH, "/readyz"):
        status, facts = await get_json(paced.url(path))
        assert status == 200, path
        held = facts["held"]
        assert held is not None and held["since_cycle"] == 2 and held["held_cycles"] == 1, (path, facts)
        assert held["removals_held"] == 8 and held["member_removals_held"] == 0, (path, facts)
        assert held["reason"] == "the guards hold 8 removals and 0 member removals" and held["since"].endswith("Z")
    assert (await get_json(paced.url("/healthz")))[1]["healthy"] is True
    probe_config = msgspec.structs.replace(paced.daemon.config, listen=paced.url("").removeprefix("http://"))
    capsys.readouterr()
    assert await asyncio.to_thread(probe_health, probe_config) == 0
    [warning] = capsys.readouterr().err.splitlines()
    assert warning.startswith("scim-replicator: healthcheck: warning: healthy, but held since cycle 2 (")
    assert "the guards hold 8 removals" in warning and "--allow-mass-delete" in warning, warning
    assert await paced.next() == 3
    held = (await get_json(paced.url("/healthz")))[1]["held"]
    assert held["since_cycle"] == 2 and held["held_cycles"] == 2 and held["removals_held"] == 8
    metrics = unpaired((await get(paced.url("/metrics")))[1])
    assert 'scimrep_operations_total{operation="removals_held"} 16.0' in metrics  # the alerts see each held cycle
    assert 'scimrep_cycles_total{mode="incremental",outcome="held"} 2.0' in metrics
    assert len(destination.users) == 10  # nothing was removed
    source.users.update(gone)  # the source has them back: nothing to remove, nothing held
    assert await paced.next() == 4
    assert (await get_json(paced.url("/healthz")))[1]["held"] is None
    assert (await get_json(paced.url("/readyz")))[1]["held"] is None
    capsys.readouterr()
    assert await asyncio.to_thread(probe_health, probe_config) == 0
    assert capsys.readouterr().err == ""
    assert await paced.stop() == 0


async def test_a_held_daemon_carries_out_an_approval_without_stopping(
        pair, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    """8 of 10 users gone: the daemon holds, and `healthcheck` names `approve`; `approve` while the daemon
    runs on (it holds the state's lock) lets its next cycle delete the 8, which ends the hold."""
    source, destination = pair
    paced = Paced(Daemon(config_for(source, destination, tmp_path)))
    assert await paced.cycle() == 1
    for user_id in list(source.users)[:8]:
        del source.users[user_id]
    assert await paced.next() == 2
    assert (await get_json(paced.url("/healthz")))[1]["held"]["removals_held"] == 8
    probe_config = msgspec.structs.replace(paced.daemon.config, listen=paced.url("").removeprefix("http://"))
    capsys.readouterr()
    assert await asyncio.to_thread(probe_health, probe_config) == 0
    assert "approve them with `scim-replicator approve`" in capsys.readouterr().err
    approval, _ = await approve_removals(paced.daemon.config.state, None, None, 60)
    assert approval is not None and (approval.up_to, approval.members_up_to) == (8, 0) and len(destination.users) == 10
    assert await paced.next() == 3
    assert len(destination.users) == 2
    assert (await get_json(paced.url("/healthz")))[1]["held"] is None
    assert await paced.stop() == 0


async def test_livez_answers_503_once_the_daemon_is_unhealthy_while_healthz_stays_200(
        pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Refused credentials with unhealthy_after 2: /livez 200 after one failed cycle, 503 after two (its
    JSON that of /healthz), while /healthz answers 200 saying healthy false."""
    source, destination = pair
    paced = Paced(Daemon(config_for(source, destination, tmp_path, destination_token="wrong", unhealthy_after=2)))
    assert await paced.cycle() == 1
    status, facts = await get_json(paced.url(LIVENESS_PATH))
    assert status == 200 and facts["healthy"] is True and facts["unreachable_cycles"] == 1
    assert await paced.next() == 2
    status, facts = await get_json(paced.url(LIVENESS_PATH))
    assert status == 503 and facts["healthy"] is False and facts["last_error_class"] == "AuthError", facts
    status, health = await get_json(paced.url("/healthz"))
    assert status == 200 and health == facts
    assert await paced.stop() == 0


class Records(logging.Handler):
    """Keeps the records that reach it (level NOTSET: it writes whatever the loggers let through)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("level", ["info", "debug"])
async def test_a_quiet_daemon_cycle_writes_one_info_line(pair, tmp_path: Path, level: str) -> None:  # type: ignore[no-untyped-def]
    """A cycle that changes nothing writes one INFO line, `cycle finished`; its `cycle started` and `cycle
    ended` are DEBUG records (written at log level debug, not at info); the first, changing cycle's
    `cycle finished` keeps its counts."""
    source, destination = pair
    handler = Records()
    own = logging.getLogger("replicator")
    before = own.level
    own.addHandler(handler)
    own.setLevel(level.upper())
    try:
        paced = Paced(Daemon(config_for(source, destination, tmp_path)))
        assert await paced.cycle() == 1
        first = [r.getMessage() for r in handler.records if r.levelno >= logging.INFO]
        assert any(m.startswith("cycle finished: full ok in ") and "created 10" in m for m in first), first
        handler.records.clear()
        assert await paced.next() == 2
        quiet = list(handler.records)
        assert await paced.stop() == 0
    finally:
        own.removeHandler(handler)
        own.setLevel(before)
    info = [r.getMessage() for r in quiet if r.levelno >= logging.INFO]
    assert len(info) == 1 and info[0].startswith("cycle finished: incremental ok in "), info
    assert "unchanged 10" in info[0]
    debug = [r.getMessage().split(":")[0] for r in quiet if r.levelno == logging.DEBUG and r.name == "replicator.progress"]
    assert debug == (["cycle started", "cycle ended"] if level == "debug" else [])
    assert all(r.levelname == "DEBUG" for r in quiet if r.levelno == logging.DEBUG)


async def test_each_cycle_ends_with_a_full_collection_before_the_daemon_sleeps(  # type: ignore[no-untyped-def]
        pair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a cycle made into reference cycles is freed before the next cycle, not whenever the tuned
    collector's rarer collections get to it (`collect_between_cycles`)."""
    source, destination = pair
    collected: list[int] = []
    monkeypatch.setattr(daemon_module, "collect_between_cycles", lambda: collected.append(daemon.cycles_done))
    daemon = Daemon(config_for(source, destination, tmp_path))
    paced = Paced(daemon)
    assert await paced.cycle() == 1
    assert collected == [1]
    assert await paced.next() == 2
    assert collected == [1, 2]
    await paced.stop()
