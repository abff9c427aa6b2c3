"""A cycle's progress, watched from outside it: samples of a live CycleResult and its directories, and
the pure formatting of the live display's rows and of the status log records."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from replicator.config import Config
from replicator.cycle import CycleResult
from replicator.pipeline.outcome import Outcome
from replicator.progress import (
    ReadCount,
    Sample,
    duration_text,
    eta_seconds,
    phase_lines,
    status_fields,
    status_message,
    take_sample,
    ticks,
    watch_progress,
    writes_per_second,
)
from replicator.scim.paging import ReadReport
from replicator.settings_help import settings_table


@dataclass
class FakeLimit:
    in_flight: int = 0


@dataclass
class FakeSide:
    requests: Mapping[str, int] = field(default_factory=dict)
    limit: FakeLimit = field(default_factory=FakeLimit)
    throttled: float = 0.0

    def flow(self) -> dict[str, float]:
        return {"concurrency": 16.0, **({"429": self.throttled} if self.throttled else {})}


def running_result() -> CycleResult:
    result = CycleResult(mode="full", dry_run=False, counts=Counter(created=30, unchanged=60, failed=2, deleted=1))
    result.reads["destination User"] = ReadReport(kind="destination User", total_results=50, seen=50, finished=True)
    result.reads["source User"] = ReadReport(kind="source User", total_results=200, seen=120)
    result.phase = "users"
    return result


def test_a_sample_reads_the_cycle_result_and_the_destination() -> None:
    """The source reads' totalResults make the total, the objects decided the done count (removals
    not counted), the destination's write requests the writes; 429s count on both sides."""
    source = FakeSide(requests={"GET": 9}, throttled=1)
    destination = FakeSide(requests={"GET": 40, "POST": 30, "PATCH": 4, "DELETE": 1}, limit=FakeLimit(7), throttled=3)
    sample = take_sample(running_result(), [source, destination], at=12.5)
    assert sample.phase == "users"
    assert sample.total == 200
    assert sample.done == 92  # created 30 + unchanged 60 + failed 2; deleted is no source object
    assert sample.writes == 35
    assert sample.in_flight == 7
    assert sample.throttled == 4
    assert ReadCount("source User", 120, 200, False) in sample.reads


def test_the_total_is_unknown_while_a_source_read_did_not_announce_one() -> None:
    """A source read without totalResults makes the total unknown (no ETA), not a smaller number."""
    result = running_result()
    result.reads["source Group"] = ReadReport(kind="source Group", seen=3)
    assert take_sample(result, [FakeSide(), FakeSide()], at=1).total is None
    assert take_sample(CycleResult(mode="full", dry_run=False), [], at=0).total is None  # nothing read yet


def test_writes_per_second_and_eta_are_measured_between_two_samples() -> None:
    """Rate and ETA come from the difference between the previous sample and this one."""
    before = Sample(at=10, phase="users", done=100, total=1000, writes=50)
    now = Sample(at=20, phase="users", done=200, total=1000, writes=150)
    assert writes_per_second(before, now) == 10
    assert eta_seconds(before, now) == 80  # 800 left at 10 objects a second
    assert writes_per_second(None, now) is None and eta_seconds(None, now) is None
    assert eta_seconds(before, Sample(at=20, phase="users", done=100, total=1000)) is None  # no pace
    assert eta_seconds(before, Sample(at=20, phase="users", done=200, total=None)) is None  # no total


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (44.6, "45s"), (320, "5m20s"), (7500, "2h05m")])
def test_durations_read_as_a_person_writes_them(seconds: float, text: str) -> None:
    """45s, 5m20s, 2h05m."""
    assert duration_text(seconds) == text


def test_the_live_rows_show_each_phase() -> None:
    """read: seen/total per read (finished ones ticked); plan: objects done/total and how they ended;
    write: writes, writes/s, in flight, 429s, ETA."""
    before = Sample(at=0, phase="users", done=0, total=200)
    now = take_sample(running_result(), [FakeSide(), FakeSide(requests={"POST": 30}, limit=FakeLimit(5))], at=10)
    rows = dict(phase_lines(before, now))
    assert list(rows) == ["read", "plan", "write"]
    assert rows["read"] == "destination User 50/50 ✓ · source User 120/200"
    assert rows["plan"] == "92/200 objects (created 30, unchanged 60, failed 2)"
    assert rows["write"] == "30 writes · 3.0/s · 5 in flight · 0 × 429 · ETA 12s"
    first = dict(phase_lines(None, Sample(at=0, phase="discovery")))
    assert first == {"read": "not started", "plan": "0 objects", "write": "0 writes · -/s · 0 in flight · 0 × 429"}


def test_a_status_record_is_json_with_every_figure() -> None:
    """A `cycle progress` record's fields: phase, elapsed, reads, done/total, writes and their rate,
    in flight, 429s, ETA, counts; its message says the same in one line."""
    before = Sample(at=0, phase="users", done=0, total=200)
    now = take_sample(running_result(), [FakeSide(), FakeSide(requests={"POST": 30})], at=10)
    fields = json.loads(json.dumps(status_fields(before, now)))
    assert fields["phase"] == "users" and fields["elapsed_seconds"] == 10
    assert fields["reads"]["source User"] == {"seen": 120, "total": 200, "finished": False}
    assert (fields["done"], fields["total"], fields["writes"], fields["writes_per_second"]) == (92, 200, 30, 3.0)
    assert (fields["in_flight"], fields["rate_limited"], fields["eta_seconds"]) == (0, 0, 12)
    assert status_message(before, now).startswith("cycle progress: users, read destination User 50/50")


def test_ticks_sample_every_second_at_most_and_zero_turns_progress_off() -> None:
    """The live display redraws every second; status lines come every interval (sampled at least
    every second, so the end of a cycle is seen at once); 0 or less: no progress output."""
    assert ticks(0, live=False) is None and ticks(0, live=True) is None and ticks(-1, live=False) is None
    assert ticks(30, live=True) == (1.0, 1.0)
    assert ticks(30, live=False) == (1.0, 30)
    assert ticks(0.2, live=False) == (0.2, 0.2)


def test_progress_interval_is_a_setting_of_30_seconds() -> None:
    """progress_interval defaults to 30 seconds and has its row in the settings table."""
    assert Config().progress_interval == 30
    assert "| `progress_interval` | `SCIMREP_PROGRESS_INTERVAL` | `30` |" in settings_table()


class _Records(logging.Handler):
    """Keeps the progress records; `progressed` is set at the first `cycle progress` one."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.progressed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if getattr(record, "fields", {}).get("event") == "progress":
            self.progressed.set()


async def test_the_watch_logs_start_status_and_end_while_the_cycle_runs() -> None:
    """Off a terminal: a start record, a status record while the block still runs, and an end record
    with the cycle's outcome; none of them when progress_interval is 0."""
    records = _Records()
    logger = logging.getLogger("replicator.progress")
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    try:
        result = running_result()
        async with watch_progress(0.01, [result], [FakeSide(), FakeSide()], mode="full", dry_run=False, live=False):
            await asyncio.wait_for(records.progressed.wait(), timeout=10)
            result.outcome = Outcome.PARTIAL  # the cycle ends as the runner says
        events = [getattr(record, "fields", {}).get("event") for record in records.records]
        assert events[0] == "start" and "progress" in events and events[-1] == "end"
        assert getattr(records.records[-1], "fields", {})["outcome"] == Outcome.PARTIAL
        records.records.clear()
        async with watch_progress(0, [result], [], mode="full", dry_run=False, live=False):
            await asyncio.sleep(0)
        assert records.records == []
    finally:
        logger.removeHandler(records)
        logger.setLevel(logging.NOTSET)
