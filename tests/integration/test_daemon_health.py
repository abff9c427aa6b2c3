"""What an operator polling the daemon sees: a hold of the guards on /healthz, /readyz and `healthcheck`
(healthy all the same), /livez failing once the daemon is unhealthy, and one INFO line a quiet cycle."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from replicator.cli import probe_health
from replicator.config import Config, SideConfig
from replicator.daemon import LIVENESS_PATH, Daemon
from replicator.testing import MemoryScimServer

TOKEN = "daemon-health-token"
SCHEMA = ["urn:ietf:params:scim:schemas:core:2.0:User"]


@pytest.fixture
async def servers() -> AsyncIterator[tuple[MemoryScimServer, MemoryScimServer]]:
    source, destination = MemoryScimServer(bearer_token=TOKEN), MemoryScimServer(bearer_token=TOKEN)
    await source.start()
    await destination.start()
    for i in range(10):
        source.add_user({"schemas": SCHEMA, "userName": f"user{i}@example.com"})
    yield source, destination
    await source.stop()
    await destination.stop()


def config_for(source: MemoryScimServer, destination: MemoryScimServer, tmp: Path, *, destination_token: str = TOKEN, **extra: Any) -> Config:
    return Config(source=SideConfig(url=source.base_url or "", token=TOKEN),
                  destination=SideConfig(url=destination.base_url or "", token=destination_token),
                  state=str(tmp / "state.db"), interval=3600, interval_jitter=0.0, listen="127.0.0.1:0", grace=5.0,
                  **extra)


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
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def get_text(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return await response.text()


async def test_a_held_daemon_stays_healthy_and_says_since_when_until_a_cycle_holds_nothing(
        servers, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    """8 of 10 users gone: /healthz, /livez and /readyz answer 200 and name the hold (since cycle 2, its
    counts), `healthcheck` exits 0 with one warning line naming --allow-mass-delete, every held cycle
    counts its removals again for the alerts; the first cycle that holds nothing clears it."""
    source, destination = servers
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
    metrics = await get_text(paced.url("/metrics"))
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


async def test_livez_answers_503_once_the_daemon_is_unhealthy_while_healthz_stays_200(
        servers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Refused credentials with unhealthy_after 2: /livez 200 after one failed cycle, 503 after two (its
    JSON that of /healthz), while /healthz answers 200 saying healthy false."""
    source, destination = servers
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
async def test_a_quiet_daemon_cycle_writes_one_info_line(servers, tmp_path: Path, level: str) -> None:  # type: ignore[no-untyped-def]
    """A cycle that changes nothing writes one INFO line, `cycle finished`; its `cycle started` and `cycle
    ended` are DEBUG records (written at log level debug, not at info); the first, changing cycle's
    `cycle finished` keeps its counts."""
    source, destination = servers
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
