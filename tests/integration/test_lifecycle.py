"""How runs end: signals drain one-shot runs, unfinished runs are recorded as such (and recovered from),
and a daemon that cannot reach its servers backs off and turns unhealthy."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from replicator.cli import probe_health
from replicator.config import Config, SideConfig, SyncConfig
from replicator.cycle import INCREMENTAL, run_cycle
from replicator.daemon import Daemon
from replicator.scim.client import client_for
from replicator.state import open_state
from replicator.testing import Faults, MemoryScimServer

TOKEN = "lifecycle-token"
USERS = 300
USER_SCHEMA = ["urn:ietf:params:scim:schemas:core:2.0:User"]
GROUP_SCHEMA = ["urn:ietf:params:scim:schemas:core:2.0:Group"]


@pytest.fixture
async def servers() -> AsyncIterator[tuple[MemoryScimServer, MemoryScimServer]]:
    """A source of USERS users and one group holding them all, and an empty destination."""
    source, destination = MemoryScimServer(bearer_token=TOKEN), MemoryScimServer(bearer_token=TOKEN)
    await source.start()
    await destination.start()
    for i in range(USERS):
        source.add_user({"schemas": USER_SCHEMA, "userName": f"user{i:03}@example.com"})
    source.add_group({"schemas": GROUP_SCHEMA, "displayName": "Everyone",
                      "members": [{"value": uid} for uid in source.users]})
    yield source, destination
    await source.stop()
    await destination.stop()


def environment(source: MemoryScimServer, destination: MemoryScimServer, state: Path) -> dict[str, str]:
    return {**os.environ, "SCIMREP_SOURCE_URL": source.base_url or "", "SCIMREP_SOURCE_TOKEN": TOKEN,
            "SCIMREP_DESTINATION_URL": destination.base_url or "", "SCIMREP_DESTINATION_TOKEN": TOKEN,
            "SCIMREP_STATE": str(state), "SCIMREP_CONCURRENCY": "4", "SCIMREP_MIN_CONCURRENCY": "1",
            "SCIMREP_GRACE": "30", "SCIMREP_LOG_FORMAT": "json"}


async def start(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "replicator", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await start(env, *args)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, out.decode(), err.decode()


async def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def read_stderr_until(process: asyncio.subprocess.Process, text: str, seen: list[str]) -> None:
    """Read the process's stderr line by line (kept in `seen`) until a line contains `text`."""
    assert process.stderr is not None
    while True:
        line = (await asyncio.wait_for(process.stderr.readline(), timeout=20)).decode()
        assert line, f"stderr ended without {text!r}: {''.join(seen)[-2000:]}"
        seen.append(line)
        if text in line:
            return


def unique_users(destination: MemoryScimServer) -> int:
    names = [user["userName"] for user in destination.users.values()]
    assert len(names) == len(set(names)), "duplicates on the destination"
    return len(names)


async def assert_next_run_recovers(env: dict[str, str], destination: MemoryScimServer) -> None:
    """The run after an interrupted one lists the destination (a few GETs) instead of looking up each
    remaining create (one GET each), and completes the copy without duplicates."""
    destination.faults = Faults()
    landed = len(destination.users)
    code, out, err = await cli(env, "run", "--once", "--output", "json")
    assert code == 0, err[-2000:]
    report = json.loads(out)
    assert report["outcome"] == "ok"
    assert report["destination_requests"].get("POST", 0) >= USERS - landed > 100
    assert report["destination_requests"].get("GET", 0) < 20, report["destination_requests"]
    assert unique_users(destination) == USERS


@pytest.mark.parametrize("signum, output", [(signal.SIGTERM, "text"), (signal.SIGINT, "json")],
                         ids=["sigterm-text", "sigint-json"])
async def test_a_signal_drains_a_one_shot_run_and_records_it_interrupted(
        servers, tmp_path: Path, signum: signal.Signals, output: str) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM/SIGINT during `run --once`: calls in flight finish, the report is printed, exit 130,
    `status` shows the run interrupted during users with what it wrote, and the next run recovers."""
    source, destination = servers
    state = tmp_path / "state.db"
    env = environment(source, destination, state)
    destination.faults = Faults(latency=0.03)
    process = await start(env, "run", "--once", "--output", output)
    await wait_for(lambda: len(destination.users) >= 20)  # writes have landed, others are in flight
    process.send_signal(signum)
    out_bytes, err_bytes = await asyncio.wait_for(process.communicate(), timeout=20)
    out, err = out_bytes.decode(), err_bytes.decode()
    assert process.returncode == 130, err[-2000:]
    written = len(destination.users)
    assert 20 <= written < USERS  # it stopped before the end
    assert f"interrupted by {signum.name}: calls in flight finished" in err
    if output == "json":
        report = json.loads(out)
        assert report["outcome"] == "interrupted" and report["counts"]["created"] == written
        assert "interrupted during users" in report["notes"]
    else:
        assert "incremental cycle interrupted in " in out and f"created {written}" in out
        assert "note: interrupted during users" in out

    code, text, status_err = await cli(env, "status")
    assert code == 0, status_err
    line = next(line for line in text.splitlines() if line.startswith("run 1 "))
    assert re.search(rf" incremental interrupted during users: created {written}$", line), line
    await assert_next_run_recovers(env, destination)


async def test_a_second_signal_stops_a_one_shot_run_at_once_and_it_is_still_recorded(
        servers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A second SIGINT while the first drains calls that take seconds: exit 130 at once, the run is
    recorded interrupted with what it wrote, and the next run recovers without duplicates."""
    source, destination = servers
    state = tmp_path / "state.db"
    env = environment(source, destination, state)
    destination.faults = Faults(latency=0.02)
    process = await start(env, "run", "--full")
    await wait_for(lambda: len(destination.users) >= 10)
    slow_from = len(destination.request_log)
    destination.faults.latency = 6.0  # calls started from now take 6 s: a drain would wait for them
    await wait_for(lambda: len(destination.request_log) >= slow_from + 2)  # slow calls are in flight
    seen: list[str] = []
    process.send_signal(signal.SIGINT)
    await read_stderr_until(process, "stopping on SIGINT", seen)
    second = time.monotonic()
    process.send_signal(signal.SIGINT)
    out_bytes, err_bytes = await asyncio.wait_for(process.communicate(), timeout=20)
    err = "".join(seen) + err_bytes.decode()
    assert time.monotonic() - second < 3.0  # well before the calls in flight could have answered
    assert process.returncode == 130, err[-2000:]
    assert "stopped at once" in err
    # what it had done when it stopped is reported all the same
    assert re.search(r"^full cycle interrupted in .*created \d+", out_bytes.decode(), re.M), out_bytes.decode()
    async with open_state(state) as store:
        [run] = await store.runs.last_runs(1)
        assert await store.runs.last_run_unfinished()
    assert run.outcome == "interrupted" and run.counts["phase"] == "users"
    # (calls abandoned in flight may have landed unrecorded: the next run adopts them)
    assert 0 < run.counts["counts"]["created"] <= len(destination.users)
    await assert_next_run_recovers(env, destination)


def in_process_config(source: MemoryScimServer, destination: MemoryScimServer, state: Path) -> Config:
    return Config(source=SideConfig(url=source.base_url or "", token=TOKEN),
                  destination=SideConfig(url=destination.base_url or "", token=TOKEN),
                  sync=SyncConfig(), state=str(state), concurrency=4, min_concurrency=1)


@pytest.mark.parametrize("cancellations", [1, 2], ids=["cancelled", "cancelled-again-while-recording"])
async def test_a_cancelled_cycle_is_recorded_interrupted(
        servers, tmp_path: Path, cancellations: int) -> None:  # type: ignore[no-untyped-def]
    """A cycle task cancelled mid-run records `interrupted` (phase, counts), also when a second
    cancellation hits while the record is being written; the next cycle treats it like a crash."""
    source, destination = servers
    destination.faults = Faults(latency=0.01)
    config = in_process_config(source, destination, tmp_path / "state.db")
    async with open_state(config.state) as store, \
            client_for(config.source, "source", max_connections=8) as source_client, \
            client_for(config.destination, "destination", max_connections=4) as destination_client:
        recording, proceed = asyncio.Event(), asyncio.Event()
        record = store.runs._finish_run

        async def gated_record(*args: Any) -> None:  # holds the record until the test lets it go
            recording.set()
            await proceed.wait()
            await record(*args)

        store.runs._finish_run = gated_record  # type: ignore[method-assign]
        cycle = asyncio.ensure_future(
            run_cycle(config, source_client, destination_client, store, mode=INCREMENTAL, dry_run=False))
        await wait_for(lambda: len(destination.users) >= 10)
        cycle.cancel()
        await asyncio.wait_for(recording.wait(), 10)
        if cancellations == 2:
            cycle.cancel()
        proceed.set()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(cycle, 10)
        [run] = await store.runs.last_runs(1)
        assert run.outcome == "interrupted" and run.ended_at is not None
        assert run.counts["phase"] == "users"
        # (creates cancelled in flight may have landed unrecorded: the next run lists the destination)
        assert 0 < run.counts["counts"]["created"] <= len(destination.users)
        assert "interrupted during users" in run.counts["notes"]
        assert await store.runs.last_run_unfinished()


async def test_interrupted_and_failed_runs_count_as_unfinished() -> None:
    """The next run recovers after a run that never ended, or ended interrupted or failed; not after
    ok, partial or held (dry runs do not count)."""
    async with open_state(":memory:") as store:
        assert not await store.runs.last_run_unfinished()
        for outcome, unfinished in [(None, True), ("ok", False), ("interrupted", True), ("partial", False),
                                    ("failed", True), ("held", False)]:
            run_id = await store.runs.start_run(INCREMENTAL, False)
            if outcome is not None:
                await store.runs.finish_run(run_id, outcome, {})
            assert await store.runs.last_run_unfinished() is unfinished, outcome
        await store.runs.start_run(INCREMENTAL, True)  # an unfinished dry run changes nothing
        assert not await store.runs.last_run_unfinished()


async def get_json(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def test_a_daemon_refused_credentials_backs_off_and_turns_unhealthy(
        servers, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    """Refused credentials: the waits double, `healthcheck` turns from 0 to 1 after
    `unhealthy_after` failures while /healthz stays 200; a cycle that completes resets both."""
    source, destination = servers
    destination.bearer_token = "another-token"  # the daemon's token is refused
    config = msgspec.structs.replace(
        in_process_config(source, destination, tmp_path / "state.db"),
        interval=0.3, interval_jitter=0.0, listen="127.0.0.1:0", grace=5.0, unhealthy_after=3)
    daemon = Daemon(config)
    caplog.set_level(logging.WARNING, logger="replicator.daemon")
    task = asyncio.ensure_future(daemon.run())
    await wait_for(lambda: daemon.cycles_done >= 1)
    probe_config = msgspec.structs.replace(config, listen=f"127.0.0.1:{daemon.bound[1]}")  # type: ignore[index]
    assert await asyncio.to_thread(probe_health, probe_config) == 0  # one failure: still healthy
    await wait_for(lambda: daemon.cycles_done >= 3)
    status, facts = await get_json(f"http://127.0.0.1:{daemon.bound[1]}/healthz")  # type: ignore[index]
    assert status == 200
    assert facts["healthy"] is False and facts["last_error_class"] == "AuthError"
    assert facts["last_error"].startswith("destination ") and "credentials" in facts["last_error"], facts
    assert facts["consecutive_failures"] >= 3 and facts["unreachable_cycles"] >= 3
    probe = await asyncio.create_subprocess_exec(  # the image's HEALTHCHECK command
        sys.executable, "-m", "replicator", "healthcheck", "--listen", probe_config.listen,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, probe_err = await asyncio.wait_for(probe.communicate(), 30)
    assert probe.returncode == 1 and b"unhealthy" in probe_err
    waits = [float(re.search(r"next cycle in ([0-9.]+)s after (\d+)", r.getMessage()).group(1))  # type: ignore[union-attr]
             for r in caplog.records if "next cycle in" in r.getMessage()]
    assert waits[:3] == [0.3, 0.6, 1.2]
    destination.bearer_token = TOKEN  # credentials fixed: the next cycle completes
    await wait_for(lambda: daemon.ready, timeout=30)
    assert daemon.consecutive_failures == 0 and daemon.healthy
    assert await asyncio.to_thread(probe_health, probe_config) == 0
    daemon.request_stop()
    assert await asyncio.wait_for(task, 20) == 0
