"""One run per state file: a second process on the same state exits 3 at once, naming the holder, and
contacts nobody; the daemon refuses to start twice; a lock left by a dead process does not block."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from replicator.state.lock import holder_note, locked_message
from replicator.testing import MemoryScimServer
from tests.gated import GatedServer, Servers, cli_env, gated_pair
from tests.harness import free_port

TOKEN = "lock-test-token"


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    async with gated_pair(TOKEN) as pair:
        yield pair


def env_for(source: MemoryScimServer, destination: MemoryScimServer, state: Path | str, **extra: str) -> dict[str, str]:
    return cli_env(source, destination, state, TOKEN, **extra)


async def start(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "replicator", "run", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def finish(process: asyncio.subprocess.Process, timeout: float = 30) -> tuple[int, str, str]:
    out, err = await asyncio.wait_for(process.communicate(), timeout=timeout)
    return process.returncode if process.returncode is not None else -1, out.decode(), err.decode()


async def held_in_flight(destination: GatedServer, process: asyncio.subprocess.Process) -> None:
    """Wait until `process` sent its first request to the destination, which holds it."""
    destination.gate.clear()
    waiting = asyncio.ensure_future(destination.arrived.wait())
    exited = asyncio.ensure_future(process.wait())
    await asyncio.wait_for(asyncio.wait({waiting, exited}, return_when=asyncio.FIRST_COMPLETED), timeout=30)
    exited.cancel()
    assert destination.arrived.is_set(), "the first run never reached the destination"


async def test_a_second_run_on_the_same_state_exits_3_at_once_and_contacts_nobody(servers: Servers, tmp_path: Path) -> None:
    """While a run is in flight, a second `run --once` on its state exits 3 naming the state and the
    holder's pid, without a request to either server; the first then finishes with its own counts."""
    source, destination = servers
    env = env_for(source, destination, tmp_path / "state.db")
    first = await start(env, "--once")
    await held_in_flight(destination, first)
    seen = (source.arrivals, destination.arrivals)
    for args in (["--once"], ["--full", "--output", "json"], ["--once", "--dry-run"]):
        code, out, err = await finish(await start(env, *args))  # returns although the first is held forever
        assert code == 3, err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert str(tmp_path / "state.db") in err and f"pid {first.pid}" in err and "started" in err
        if "json" in args:
            assert json.loads(out) == {"outcome": "failed", "error": err.strip().removeprefix("scim-replicator: "),
                                       "exit_code": 3}
    link = tmp_path / "link.db"  # the same state file, reached through a symbolic link
    link.symlink_to(tmp_path / "state.db")
    code, out, err = await finish(await start(env_for(source, destination, link), "--once"))
    assert code == 3 and f"pid {first.pid}" in err, err
    assert (source.arrivals, destination.arrivals) == seen  # the refused runs sent nothing
    assert first.returncode is None  # ...while the first was still in flight
    destination.gate.set()
    code, out, err = await finish(first)
    assert code == 0, err
    assert "created 5" in out and len(destination.users) == 5
    code, out, err = await finish(await start(env, "--once"))  # the lock went with the first run
    assert code == 0, err


async def test_a_lock_left_by_a_killed_run_does_not_block(servers: Servers, tmp_path: Path) -> None:
    """kill -9 of a run holding the lock leaves its lock file behind; the next run takes it and replicates."""
    source, destination = servers
    env = env_for(source, destination, tmp_path / "state.db")
    first = await start(env, "--once")
    await held_in_flight(destination, first)
    first.send_signal(signal.SIGKILL)
    await first.wait()
    assert f'"pid": {first.pid}' in (tmp_path / "state.db.lock").read_text()
    destination.gate.set()
    code, _, err = await finish(await start(env, "--once"))
    assert code == 0, err
    assert len(destination.users) == 5


async def test_the_daemon_refuses_to_start_twice(servers: Servers, tmp_path: Path) -> None:
    """A second daemon on the same state (even on another port) exits 3 naming the first one's pid,
    before it serves anything or contacts a server; the first keeps running and stops on SIGTERM."""
    source, destination = servers
    env = env_for(source, destination, tmp_path / "state.db", SCIMREP_INTERVAL="0.2")
    first = await start({**env, "SCIMREP_LISTEN": f"127.0.0.1:{free_port()}"})
    await held_in_flight(destination, first)
    seen = (source.arrivals, destination.arrivals)
    second_port = free_port()
    code, _, err = await finish(await start({**env, "SCIMREP_LISTEN": f"127.0.0.1:{second_port}"}))
    assert code == 3, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str(tmp_path / "state.db") in err and f"pid {first.pid}" in err
    assert (source.arrivals, destination.arrivals) == seen
    with pytest.raises(OSError):  # it never served its endpoint
        await asyncio.open_connection("127.0.0.1", second_port)
    assert first.returncode is None
    destination.gate.set()

    async def replicated() -> None:
        while len(destination.users) < 5:
            await asyncio.sleep(0.05)

    await asyncio.wait_for(replicated(), timeout=30)
    first.send_signal(signal.SIGTERM)
    code, _, err = await finish(first)
    assert code == 0, err


def test_the_refusal_names_the_holder_when_its_note_can_be_read() -> None:
    """The message names the state file, and the holder's pid and start when the lock file says them."""
    refusal = locked_message("s.db", holder_note(4242, 0.0))
    assert refusal.startswith("state file s.db is in use by another run (pid 4242, started ")
    assert locked_message("s.db", b"") == "state file s.db is in use by another process; one run per state file"
