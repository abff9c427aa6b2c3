"""Operational faults through the real command line: one line on stderr naming the file, address or
setting, a documented exit code, the JSON report on stdout with `--output json`, never a traceback."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from replicator.state import open_state
from replicator.state.errors import StateUnusableError
from replicator.testing import MemoryScimServer
from tests.gated import SCHEMA, Servers, cli_env, gated_pair
from tests.harness import free_port

TOKEN = "faults-test-token"


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    async with gated_pair(TOKEN) as pair:
        yield pair


def env_for(source: MemoryScimServer, destination: MemoryScimServer, state: Path | str, **extra: str) -> dict[str, str]:
    return cli_env(source, destination, state, TOKEN, **extra)


async def cli(env: dict[str, str], *args: str, stdout: int = asyncio.subprocess.PIPE) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "replicator", *args, env=env, stdout=stdout, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode if process.returncode is not None else -1, (out or b"").decode(), err.decode()


def assert_one_line(err: str, *names: str) -> str:
    """stderr is one line, no traceback, naming each of `names`; returns the message."""
    assert "Traceback" not in err, err
    assert err.count("\n") == 1 and err.startswith("scim-replicator: "), err
    for name in names:
        assert name in err, err
    return err.strip().removeprefix("scim-replicator: ")


def assert_json_report(out: str, message: str, code: int) -> None:
    assert json.loads(out) == {"outcome": "failed", "error": message, "exit_code": code}


def unusable_states(tmp: Path) -> dict[str, tuple[Path, str]]:
    """State paths that cannot be used, with what the message must say."""
    text = tmp / "notes.txt"
    text.write_text("this is not a database\n" * 50)
    folder = tmp / "folder.db"
    folder.mkdir()
    regular = tmp / "regular-file"
    regular.write_text("x")  # (root ignores permissions: a folder under a file cannot be made by anyone)
    foreign = tmp / "shop.db"  # another application's database, given by mistake
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)")
        db.execute("INSERT INTO orders (item) VALUES ('tea')")
    return {"not SQLite": (text, "not a SQLite database"), "a directory": (folder, "is a directory"),
            "folder not creatable": (regular / "state.db", "cannot create its folder"),
            "another application's database": (foreign, "SQLite database of something else (it holds tables orders)")}


def tables_of(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]


@pytest.mark.parametrize("fault", ["not SQLite", "a directory", "folder not creatable", "another application's database"])
@pytest.mark.parametrize("mode", [["run", "--once"], ["run", "--full"], ["run"]])
async def test_an_unusable_state_file_is_one_line_and_exit_3(servers: Servers, tmp_path: Path, fault: str, mode: list[str]) -> None:
    """A state that is not SQLite, is a directory, or whose folder cannot be made: one line naming it,
    exit 3, JSON on stdout with --output json, no request to either server (one-shot runs and the daemon)."""
    source, destination = servers
    state, words = unusable_states(tmp_path)[fault]
    env = env_for(source, destination, state, SCIMREP_LISTEN=f"127.0.0.1:{free_port()}")
    code, out, err = await cli(env, *mode, "--output", "json")
    assert code == 3
    assert_json_report(out, assert_one_line(err, str(state), words), 3)
    assert not source.request_log and not destination.request_log
    if fault == "not SQLite":
        assert state.read_text() == "this is not a database\n" * 50  # left as it was
    if fault == "another application's database":
        assert tables_of(state) == ["orders"]  # none of our tables added to it


@pytest.mark.parametrize("fault", ["not SQLite", "a directory", "another application's database"])
async def test_status_on_an_unusable_state_file_is_one_line_and_exit_3(tmp_path: Path, fault: str) -> None:
    """`status` on a file that is not SQLite or on a directory: one line naming it, exit 3 (JSON too)."""
    state, words = unusable_states(tmp_path)[fault]
    code, out, err = await cli(dict(os.environ), "status", "--state", str(state))
    assert code == 3 and not out
    message = assert_one_line(err, str(state), words)
    code, out, err = await cli(dict(os.environ), "status", "--state", str(state), "--output", "json")
    assert code == 3
    assert_json_report(out, message, 3)


async def test_a_listen_port_in_use_is_one_line_and_exit_3(servers: Servers, tmp_path: Path) -> None:
    """The daemon whose `listen` port is taken says so in one line naming `listen` and the address,
    exits 3 (JSON with --output json) and contacts no server."""
    source, destination = servers
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        env = env_for(source, destination, tmp_path / "state.db", SCIMREP_LISTEN=address)
        code, out, err = await cli(env, "run", "--output", "json")
    assert code == 3
    assert_json_report(out, assert_one_line(err, "listen", address, "in use"), 3)
    assert not source.request_log and not destination.request_log


@pytest.mark.parametrize("args", [["run", "--once"], ["run", "--once", "--dry-run", "--output", "json"]],
                         ids=["small text report", "large JSON plan"])
async def test_a_reader_that_left_changes_nothing_but_the_output(servers: Servers, tmp_path: Path, args: list[str]) -> None:
    """stdout's reader is gone before the report (`| head -1`): no traceback, the run's own exit code
    (0), the work done; the JSON plan is larger than a pipe buffer, so `print` itself meets the pipe."""
    source, destination = servers
    for i in range(300):
        source.add_user({"schemas": SCHEMA, "userName": f"more{i}@example.com", "title": "x" * 200})
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader left before the first byte
    try:
        code, _, err = await cli(env_for(source, destination, tmp_path / "state.db"), *args, stdout=write_end)
    finally:
        os.close(write_end)
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err, err
    assert code == 0, err
    assert len(destination.users) == (0 if "--dry-run" in args else 305)


async def test_head_closing_the_pipe_keeps_the_exit_code(servers: Servers, tmp_path: Path) -> None:
    """`run --once --dry-run --output json | head -c1` (the shell's own pipe; a plan of about 1 MB, far
    more than the pipe holds, so that head leaves while it is written): no traceback, exit code 0."""
    source, destination = servers
    for i in range(1500):
        source.add_user({"schemas": SCHEMA, "userName": f"more{i}@example.com", "title": "x" * 500})
    env = env_for(source, destination, tmp_path / "state.db")
    command = (f'"{sys.executable}" -m replicator run --once --dry-run --output json | head -c1;'
               f' echo " ${{PIPESTATUS[0]}}"')
    process = await asyncio.create_subprocess_exec("bash", "-c", command, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert "Traceback" not in err.decode() and "BrokenPipeError" not in err.decode(), err.decode()
    assert out.decode() == "{ 0\n"


async def test_a_state_whose_reads_fail_during_the_cycle_is_one_line_and_exit_3(servers: Servers, tmp_path: Path) -> None:
    """The state breaks while the cycle runs (its table dropped underneath it): StateError, one line
    naming the state file, exit 3, JSON on stdout; no traceback."""
    source, destination = servers
    state = tmp_path / "state.db"
    destination.gate.clear()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "replicator", "run", "--once", "--output", "json",
        env=env_for(source, destination, state), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    await asyncio.wait_for(destination.arrived.wait(), timeout=30)  # the run is in its cycle
    with sqlite3.connect(state) as other:
        other.execute("DROP TABLE resources")
    destination.gate.set()
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 3, err.decode()
    message = assert_one_line(err.decode(), str(state), "no such table")
    assert_json_report(out.decode(), message, 3)


async def test_a_state_refusing_the_workers_writes_is_one_line_and_exit_3(servers: Servers, tmp_path: Path) -> None:
    """The state refuses writes (as a full disk would) when a worker notes a create: one line naming
    the file, exit 3, JSON on stdout; the run is not recorded as finished (the next one recovers)."""
    source, destination = servers
    state = tmp_path / "state.db"
    async with open_state(state):
        pass
    with sqlite3.connect(state) as other:
        other.execute("CREATE TRIGGER refuse BEFORE INSERT ON resources BEGIN SELECT RAISE(FAIL, 'disk says no'); END")
    code, out, err = await cli(env_for(source, destination, state), "run", "--once", "--output", "json")
    assert code == 3, err
    message = assert_one_line(err, str(state), "disk says no")
    assert_json_report(out, message, 3)
    assert not destination.users  # nothing was created that the state could not note first
    with sqlite3.connect(state) as other:
        assert other.execute("SELECT outcome, ended_at FROM runs").fetchall() == [(None, None)]


async def test_the_store_names_its_file_when_sqlite_fails(tmp_path: Path) -> None:
    """A store method meeting an SQLite error raises StateUnusableError naming the file and the method;
    the store is then broken for good: later calls, and the flush on exit, raise that first error."""
    state = tmp_path / "state.db"
    with pytest.raises(StateUnusableError, match=r"\(count\)$"):  # the flush on exit
        async with open_state(state) as store:
            with sqlite3.connect(state) as other:
                other.execute("DROP TABLE resources")
            with pytest.raises(StateUnusableError, match=rf"^state file {state}: no such table: resources \(count\)$"):
                await store.count("User")
            with pytest.raises(StateUnusableError, match=r"\(count\)$"):
                [row async for row in store.iter_rows("User")]
    with pytest.raises(StateUnusableError, match=r"\(iter_rows\)$"):
        async with open_state(state) as store:  # a generator method names itself too
            [row async for row in store.iter_rows("User")]


def test_a_state_error_is_found_inside_the_task_groups_that_carry_it() -> None:
    """replicate() translates a state error also when the cycle's task groups wrapped it (a worker's)."""
    from replicator.app import _state_failure

    failure = StateUnusableError("state file s.db: disk I/O error (record_success)")
    assert _state_failure(ExceptionGroup("outer", [ValueError("x"), ExceptionGroup("inner", [failure])])) is failure
    assert _state_failure(ExceptionGroup("outer", [ValueError("x")])) is None
