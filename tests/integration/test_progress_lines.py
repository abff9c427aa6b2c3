"""A one-shot run off a terminal writes its progress as JSON lines on stderr while it is in flight (a
start line, status lines every progress_interval, an end line), and never on stdout, where
`--output json` puts the report alone."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.gated import Servers, cli_env, gated_pair

TOKEN = "progress-test-token"


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    async with gated_pair(TOKEN) as pair:
        yield pair


async def next_record(stream: asyncio.StreamReader, event: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read JSON log lines until one of `event`; it and the records before it."""
    seen: list[dict[str, Any]] = []
    while True:
        line = await stream.readline()
        assert line, f"stderr ended before a {event} line: {seen}"
        record = json.loads(line)
        seen.append(record)
        if record.get("event") == event:
            return record, seen


async def test_a_one_shot_run_writes_status_lines_on_stderr_while_in_flight_and_none_on_stdout(
        servers: Servers, tmp_path: Path) -> None:
    """While the destination holds the run's calls, `run --once --output json` writes a start line and
    at least one status line on stderr; after it finishes, an end line; stdout is the JSON report only."""
    source, destination = servers
    destination.gate.clear()  # every call to the destination waits: the run stays in flight
    env = cli_env(source, destination, tmp_path / "state.db", TOKEN, SCIMREP_LOG_LEVEL="info",
                  SCIMREP_LOG_FORMAT="json", SCIMREP_PROGRESS_INTERVAL="0.2")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "replicator", "run", "--once", "--output", "json", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None
    try:
        status, before = await asyncio.wait_for(next_record(process.stderr, "progress"), timeout=30)
        assert process.returncode is None and destination.arrivals >= 1, "the status line came after the run"
        assert "start" in [r.get("event") for r in before]
        assert status["phase"] == "discovery" and "in_flight" in status and "eta_seconds" in status
    finally:
        destination.gate.set()
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, err.decode()
    report = json.loads(out)  # the whole of stdout is the report: no progress in it
    assert report["outcome"] == "ok"
    assert b'"event"' not in out
    ends = [json.loads(line) for line in err.splitlines() if b'"event": "end"' in line]
    assert len(ends) == 1 and ends[0]["outcome"] == "ok" and ends[0]["counts"].get("created") == 5
