"""Logs and metrics an operator can use: one INFO line per cycle, library loggers kept quiet, the
destination's flow in the text report, request metrics that move while a cycle runs."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from replicator.config import Config, SideConfig
from replicator.cycle import CycleResult
from replicator.daemon import Daemon
from replicator.logs import logger_levels
from replicator.report import report_text
from replicator.testing import Faults, MemoryScimServer
from tests.gated import gated_pair

TOKEN = "logs-token"
USER_SCHEMA = ["urn:ietf:params:scim:schemas:core:2.0:User"]
GROUP_SCHEMA = ["urn:ietf:params:scim:schemas:core:2.0:Group"]
USERS, GROUPS = 40, 3


def fill(server: MemoryScimServer) -> None:
    """The same users and groups on either side: a first run adopts every one of them."""
    ids = [server.add_user({"schemas": USER_SCHEMA, "userName": f"user{i}@example.com"})["id"] for i in range(USERS)]
    for g in range(GROUPS):
        server.add_group({"schemas": GROUP_SCHEMA, "displayName": f"group{g}",
                          "members": [{"value": uid} for uid in ids[g::GROUPS]]})


@pytest.fixture
async def filled() -> AsyncIterator[tuple[str, str]]:
    source, destination = MemoryScimServer(bearer_token=TOKEN), MemoryScimServer(bearer_token=TOKEN)
    urls = (await source.start(), await destination.start())
    fill(source)
    fill(destination)
    yield urls
    await source.stop()
    await destination.stop()


async def first_run(urls: tuple[str, str], state: Path, level: str, **env: str) -> tuple[int, str, list[dict]]:  # type: ignore[type-arg]
    """A `run --full` with JSON logs at `level` and a new state: (exit code, report, log entries)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "replicator", "run", "--full", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "SCIMREP_SOURCE_URL": urls[0], "SCIMREP_SOURCE_TOKEN": TOKEN,
             "SCIMREP_DESTINATION_URL": urls[1], "SCIMREP_DESTINATION_TOKEN": TOKEN, "SCIMREP_STATE": str(state),
             "SCIMREP_LOG_LEVEL": level, "SCIMREP_LOG_FORMAT": "json", **env})
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, out.decode(), [json.loads(line) for line in err.decode().splitlines()]


async def test_an_adopting_first_run_logs_one_line_at_info(filled, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A first run that adopts every object of a filled destination writes one summary line at INFO (besides
    the progress start and end lines), no line per object."""
    code, report, entries = await first_run(filled, tmp_path / "state.db", "info")
    assert code == 0, report
    assert f"adopted {USERS + GROUPS}" in report
    progress = [e for e in entries if e["logger"] == "replicator.progress"]
    assert [e["event"] for e in progress] == ["start", "end"], progress
    summary = [e for e in entries if e["logger"] != "replicator.progress"]
    assert [e["level"] for e in summary] == ["info"], summary[:5]
    # what happened, in plain words on the line itself
    assert summary[0]["msg"].startswith("cycle finished: full ok in "), summary[0]["msg"]
    assert f"s: created 0, updated 0, deleted 0, failed 0; also adopted {USERS + GROUPS}; destination flow: " \
        in summary[0]["msg"]
    assert summary[0]["counts"] == {"adopted": USERS + GROUPS}
    assert "destination flow: retries 0, 429 answers 0, paused 0.0s, no rate learned" in report, report


async def test_debug_opens_our_loggers_and_not_the_libraries(filled, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`log_level = debug` shows the per-object lines but no aiosqlite line; the library variable opens those too."""
    code, _, entries = await first_run(filled, tmp_path / "ours.db", "debug")
    assert code == 0
    assert {e["logger"].split(".")[0] for e in entries} == {"replicator"}, {e["logger"] for e in entries}
    adopted = [e for e in entries if e["msg"].startswith("adopted existing")]
    assert len(adopted) == USERS + GROUPS and {e["level"] for e in adopted} == {"debug"}
    code, _, entries = await first_run(filled, tmp_path / "all.db", "debug", SCIM_REPLICATOR_LIBRARY_LOG_LEVEL="debug")
    assert code == 0
    assert any(e["logger"] == "aiosqlite" for e in entries)


def test_library_loggers_stay_at_warning_unless_asked() -> None:
    """The root (every library) stays at WARNING for debug and info, follows `error`, and takes the level asked for it."""
    assert logger_levels("debug") == {"": logging.WARNING, "replicator": logging.DEBUG, "state": logging.DEBUG}
    assert logger_levels("info")[""] == logging.WARNING
    assert logger_levels("error") == {"": logging.ERROR, "replicator": logging.ERROR, "state": logging.ERROR}
    assert logger_levels("info", "debug") == {"": logging.DEBUG, "replicator": logging.INFO, "state": logging.INFO}


def test_the_text_report_shows_the_destination_flow() -> None:
    """Retries, 429 answers, pauses, the learned rate and concurrency cuts are on the report's flow line."""
    result = CycleResult(mode="full", dry_run=False, destination_flow={
        "retries": 7.0, "429": 5.0, "paused_seconds": 2.25, "learned_rate": 48.5, "concurrency": 4.0,
        "concurrency_cuts": 2.0, "latency_p50_ms": 3.1, "latency_p90_ms": 8.0, "latency_p99_ms": 12.5})
    assert report_text(result).splitlines()[-1] == (
        "destination flow: retries 7, 429 answers 5, paused 2.2s, learned rate 48.5 requests/s, "
        "concurrency 4 (cut 2 times), latency p50/p90/p99 3.1/8/12.5 ms")
    given_up = CycleResult(mode="full", dry_run=False, destination_flow={"rate_learning_dropped": 1.0, "503": 2.0})
    assert report_text(given_up).splitlines()[-1] == (
        "destination flow: retries 0, 429 answers 0, 503 answers 2, paused 0.0s, rate learning given up")


def by_side(text: str, family: str) -> dict[str, float]:
    """A counter family's total for each side (all its other labels summed) from a Prometheus exposition."""
    totals: dict[str, float] = {}
    for f in text_string_to_metric_families(text):
        for s in f.samples if f.name == family else ():
            if not s.name.endswith("_created"):
                totals[s.labels["side"]] = totals.get(s.labels["side"], 0.0) + s.value
    return totals


async def test_request_metrics_move_while_a_cycle_is_held_and_are_counted_once(tmp_path: Path) -> None:
    """A scrape while the destination holds the first cycle shows the source's requests, its 429 and retry;
    after the cycle the totals equal the requests the source received (nothing counted twice)."""
    async with gated_pair(TOKEN) as (source, destination):
        source.faults = Faults(script=[429], retry_after="0")  # the source's first request: one 429, one retry
        destination.gate.clear()
        config = Config(source=SideConfig(url=source.base_url or "", token=TOKEN),
                        destination=SideConfig(url=destination.base_url or "", token=TOKEN),
                        state=str(tmp_path / "state.db"), interval=3600, interval_jitter=0.0, listen="127.0.0.1:0")
        daemon = Daemon(config)
        sleeping = asyncio.Event()
        real_sleep = daemon._sleep

        async def sleep_after_first_cycle(seconds: float) -> None:
            sleeping.set()
            await real_sleep(seconds)

        daemon._sleep = sleep_after_first_cycle  # type: ignore[method-assign]
        task = asyncio.create_task(daemon.run())
        await asyncio.wait_for(destination.arrived.wait(), 15)  # the cycle is held at its first destination request
        assert daemon.bound is not None
        url = f"http://127.0.0.1:{daemon.bound[1]}/metrics"
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as response:
                during = await response.text()
            assert daemon.cycles_done == 0 and not sleeping.is_set()  # the scrape was during the cycle
            requests = by_side(during, "scimrep_requests")
            assert requests["source"] == source.arrivals >= 2, requests
            assert requests["destination"] >= 1  # sent, held by the gate
            assert by_side(during, "scimrep_rate_limited")["source"] == 1
            assert by_side(during, "scimrep_retries")["source"] == 1
            destination.gate.set()
            await asyncio.wait_for(sleeping.wait(), 15)
            async with session.get(url) as response:
                after = await response.text()
        requests = by_side(after, "scimrep_requests")
        assert requests == {"source": source.arrivals, "destination": destination.arrivals}, requests
        assert by_side(after, "scimrep_rate_limited")["source"] == 1
        assert by_side(after, "scimrep_retries")["source"] == 1
        daemon.request_stop()
        assert await asyncio.wait_for(task, 10) == 0
