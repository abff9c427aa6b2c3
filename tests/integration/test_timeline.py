"""A run records its timeline in the state (a 429 the destination answered shows as a 429 and a pause),
`status --plot` draws it as a PNG (or says in one line why it cannot: no such run, no matplotlib), and
`status` names failed objects by their userName, with their source ids on request."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from replicator.app import replicate
from replicator.cli import main
from replicator.config import Config, SideConfig
from replicator.cycle import INCREMENTAL
from replicator.state import open_state
from replicator.testing import Faults, MemoryScimServer
from replicator.testing.seeding import seed_directory
from replicator.timeline import series

TOKEN = "timeline-token"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
async def servers() -> AsyncIterator[tuple[MemoryScimServer, MemoryScimServer]]:
    source, destination = MemoryScimServer(bearer_token=TOKEN), MemoryScimServer(bearer_token=TOKEN)
    await source.start()
    await destination.start()
    seed_directory(source, 12, 2)
    yield source, destination
    await source.stop()
    await destination.stop()


def config_for(source: MemoryScimServer, destination: MemoryScimServer, state: Path) -> Config:
    return Config(source=SideConfig(url=source.base_url or "", token=TOKEN),
                  destination=SideConfig(url=destination.base_url or "", token=TOKEN),
                  state=str(state), concurrency=4)


async def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The command line in a thread of its own (it runs its own event loop): (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


async def test_a_run_records_its_timeline_with_the_429_it_met_and_status_draws_it(
        servers: tuple[MemoryScimServer, MemoryScimServer], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A destination that answers one 429 (Retry-After 1): the run's stored timeline ends with the 429 and
    the pause counted, its series has the 429 in one interval and every write, and `status --plot`
    writes a PNG."""
    source, destination = servers
    destination.faults = Faults(script=[429], retry_after="1")
    state = tmp_path / "s.db"
    result = await replicate(config_for(source, destination, state), mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "ok" and result.destination_flow.get("429") == 1.0, result.summary()
    async with open_state(state) as store:
        run = await store.runs.find()
        assert run is not None
        rows = await store.runs.timeline(run.id)
    assert rows is not None and len(rows) >= 2 and rows[0][0] == 0
    assert rows[-1][1] == sum(n for method, n in result.destination_requests.items() if method != "GET")
    assert rows[-1][3] == 1 and rows[-1][4] >= 1.0  # the 429, and its Retry-After's second
    drawn = series(rows)
    assert sum(drawn.rate_limited) == 1
    assert sum(drawn.writes_per_second[i] * (drawn.seconds[i] - ([drawn.start, *drawn.seconds])[i])
               for i in range(len(drawn))) == pytest.approx(rows[-1][1])

    picture = tmp_path / "run.png"
    code, out, err = await cli(capsys, "status", "--state", str(state), "--plot", str(picture))
    assert code == 0, err
    assert picture.read_bytes().startswith(PNG_SIGNATURE) and f"written to {picture}" in out
    code, out, err = await cli(capsys, "status", "--state", str(state), "--plot", str(picture), "--run", "99")
    assert code == 2 and "has no run 99" in err and len(err.splitlines()) == 1
    code, out, err = await cli(capsys, "status", "--state", str(state), "--run", "1")
    assert code == 2 and "--run N goes with --plot" in err


async def test_without_matplotlib_the_plot_names_the_extra_to_install(
        servers: tuple[MemoryScimServer, MemoryScimServer], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With matplotlib not importable, `status --plot` exits 5 with one line naming the plot extra."""
    source, destination = servers
    state = tmp_path / "s.db"
    await replicate(config_for(source, destination, state), mode=INCREMENTAL, dry_run=False)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib...` raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    code, _, err = await cli(capsys, "status", "--state", str(state), "--plot", str(tmp_path / "run.png"))
    assert code == 5 and "pip install 'scim-replicator[plot]'" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run.png").exists()


async def test_status_names_a_failed_object_by_its_user_name(
        servers: tuple[MemoryScimServer, MemoryScimServer], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A user the destination refuses is listed by `status` under its userName (its source id only with
    --show-ids), and JSON carries both."""
    source, destination = servers
    bad = source.add_user({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "Refused.One@example.com",
                           "title": "REFUSE-ME"})
    destination.faults = Faults(refuse_values={"REFUSE-ME"})
    state = tmp_path / "s.db"
    result = await replicate(config_for(source, destination, state), mode=INCREMENTAL, dry_run=False)
    assert result.counts["failed"] == 1, result.summary()
    code, out, err = await cli(capsys, "status", "--state", str(state))
    assert code == 0, err
    assert "failed User Refused.One@example.com (attempts 1): " in out and bad["id"] not in out, out
    code, out, err = await cli(capsys, "status", "--state", str(state), "--show-ids")
    assert f"failed User Refused.One@example.com [source {bad['id']}] (attempts 1): " in out, out
    code, out, err = await cli(capsys, "status", "--state", str(state), "--output", "json")
    failure = json.loads(out)["failures"][0]
    assert (failure["label"], failure["source_id"]) == ("Refused.One@example.com", bad["id"])
