"""`scim-replicator demo`'s flags: --users/--groups below the story's minimum are refused (exit 2, one
line naming the flag and the minimum), so are they with --pingone (its tutorial has its own cast), and --keep leaves both servers up after the story, reachable
with the printed URLs and tokens (with --pingone: the printed configuration file), until SIGINT or
SIGTERM stops them cleanly (exit 0)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import pytest

from replicator.demo import DESTINATION_TOKEN, MIN_GROUPS, MIN_USERS, SOURCE_TOKEN
from tests.integration.test_cli import cli


@pytest.mark.parametrize(("flag", "minimum"), [("--users", MIN_USERS), ("--groups", MIN_GROUPS)])
async def test_a_count_below_the_story_minimum_is_refused(flag: str, minimum: int) -> None:
    """--users 7 or --groups 1 exits 2 with one line naming the flag and its minimum, and runs no story."""
    code, out, err = await cli("demo", flag, str(minimum - 1))
    assert code == 2 and out == ""
    assert err == (f"scim-replicator: error: argument {flag}: expected at least {minimum}, got {minimum - 1}; "
                   "see scim-replicator demo --help\n")


@pytest.mark.parametrize("flags", [("--users", "30"), ("--groups", "3", "--users", "9", "--groups", "4")])
async def test_pingone_refuses_the_sizes_it_cannot_take(flags: tuple[str, ...]) -> None:
    """`demo --pingone --users 30` exits 2 with one line naming the flags given (the tutorial has its own
    six users and one group), instead of playing it and ignoring them."""
    code, out, err = await cli("demo", "--pingone", *flags)
    named = "--users" if len(flags) == 2 else "--groups or --users"
    assert code == 2 and out == ""
    assert err == (f"scim-replicator: error: demo --pingone takes no {named}: it plays PingOne's tutorial on its own "
                   "six users and one group (--users and --groups size the SCIM demo); see scim-replicator demo "
                   "--help\n")


async def test_the_minimum_itself_runs_the_story() -> None:
    """The smallest accepted directory (--users 8 --groups 2) plays the story to an equal copy."""
    code, out, err = await cli("demo", "--users", str(MIN_USERS), "--groups", str(MIN_GROUPS))
    assert code == 0, out[-2000:] + err[-2000:]
    assert out.strip().splitlines()[-1].startswith("destination equals source")


async def _kept_lines(process: asyncio.subprocess.Process) -> dict[str, str]:
    """Read the demo's stdout past the story up to the command it suggests; return the lines of the kept
    servers by their first word (source, destination, state, try)."""
    assert process.stdout is not None
    found: dict[str, str] = {}
    kept = False
    while "try," not in found:
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=60)).decode()
        assert line, "the demo ended before keeping its servers"
        kept = kept or line.startswith("== the servers keep running")
        if kept and line.strip():
            found[line.split(" ", 1)[0]] = line.strip()
    return found


@contextlib.asynccontextmanager
async def _demo(*flags: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """`scim-replicator demo FLAGS` as a process, killed at the end if it still runs."""
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "replicator", "demo", *flags,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _stopped_by(process: asyncio.subprocess.Process, sig: signal.Signals) -> str:
    """Send `sig` to a demo that keeps its servers (still serving when it comes): it exits 0; its last line."""
    assert process.returncode is None
    process.send_signal(sig)
    out_bytes, err_bytes = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, err_bytes.decode()[-2000:]
    return out_bytes.decode().strip().splitlines()[-1]


async def _users(url: str, token: str) -> tuple[int, int]:
    async with aiohttp.ClientSession() as session, \
            session.get(url + "/Users", headers={"Authorization": f"Bearer {token}"}) as response:
        body = await response.json(content_type=None)
        return response.status, body.get("totalResults", -1)


async def _refused(url: str) -> bool:
    parts = urlsplit(url)
    try:
        _, writer = await asyncio.open_connection(parts.hostname, parts.port)
    except OSError:
        return True
    writer.close()
    return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_keep_serves_until_a_signal_then_stops_cleanly(sig: signal.Signals) -> None:
    """With --keep both servers answer the printed tokens after the story, a replicator run on them
    with the printed settings writes nothing, and SIGINT/SIGTERM then closes both and exits 0."""
    async with _demo("--keep", "--users", "10", "--groups", "3") as process:
        kept = await _kept_lines(process)
        source_url, source_token = kept["source"].split()[1], kept["source"].split()[-1]
        destination_url, destination_token = kept["destination"].split()[1], kept["destination"].split()[-1]
        assert (source_token, destination_token) == (SOURCE_TOKEN, DESTINATION_TOKEN)
        assert await _users(source_url, source_token) == (200, 9)  # the story deleted one user
        assert await _users(destination_url, destination_token) == (200, 9)
        state = kept["state"].split()[1]
        env = {"SCIMREP_SOURCE_URL": source_url, "SCIMREP_SOURCE_TOKEN": source_token, "SCIMREP_STATE": state,
               "SCIMREP_DESTINATION_URL": destination_url, "SCIMREP_DESTINATION_TOKEN": destination_token}
        code, out, err = await cli("run", "--once", env=env)
        assert code == 0 and "destination {\"GET\"" in out, out + err  # reads only: the copy is equal
        assert await _stopped_by(process, sig) == f"stopped by {sig.name}: both servers closed"
    assert await _refused(source_url) and await _refused(destination_url)
    assert not os.path.exists(state)  # the demo's temporary state went with it


async def test_keep_with_pingone_serves_both_environments_until_a_signal() -> None:
    """`demo --pingone --keep` keeps the emulator up after the tutorial: `run --once --config` with the
    printed file (mode 0600: it holds the client secrets, which are not printed) reaches both
    environments and writes nothing; SIGTERM closes them, removes the folder and exits 0."""
    async with _demo("--pingone", "--keep") as process:
        kept = await _kept_lines(process)
        config_file, platform = kept["config"].split()[1], kept["source"].split()[-1]
        assert os.stat(config_file).st_mode & 0o777 == 0o600
        with open(config_file, encoding="utf-8") as handle:
            secrets = re.findall(r'^client_secret = "([^"]+)"$', handle.read(), re.M)
        assert len(secrets) == 2 and not any(secret in line for secret in secrets for line in kept.values())
        code, out, err = await cli("run", "--once", "--config", config_file)
        assert code == 0 and "incremental cycle ok in " in out, out + err
        assert 'destination {"GET": ' in out and "unchanged 6" in out, out  # reads only: the scope is replicated
        assert await _stopped_by(process, signal.SIGTERM) == "stopped by SIGTERM: both environments closed"
    assert await _refused(platform) and not os.path.exists(config_file)
