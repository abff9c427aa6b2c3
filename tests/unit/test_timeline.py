"""A run's timeline: samples kept under a cap without losing a write or a 429, the series a plot draws
from them (writes a second, 429s per interval, pauses spread over the intervals they cover), why a run
cannot be drawn, the run log keeping timelines of its last runs only, and the one-line cycle summary."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from replicator.cycle import CycleResult
from replicator.report import cycle_line
from replicator.state import RunRecord, open_state
from replicator.state.runs import TIMELINES_KEPT
from replicator.timeline import Timeline, TimelineSample, pause_spans, plot_problem, series, thinned


def sample(at: float, writes: int = 0, in_flight: int = 0, throttled: int = 0, paused: float = 0.0,
           limit: int = 16) -> TimelineSample:
    return TimelineSample(at, writes, in_flight, throttled, paused, limit)


def test_series_gives_writes_a_second_429s_per_interval_and_in_flight() -> None:
    """Cumulative counters become per-interval figures: writes / interval length, 429s in the interval."""
    rows = [sample(0).row(), sample(1, writes=10, in_flight=4).row(),
            sample(3, writes=30, in_flight=8, throttled=2, limit=8).row()]
    drawn = series(rows)
    assert drawn.start == 0 and drawn.seconds == [1, 3]
    assert drawn.writes_per_second == [10.0, 10.0]
    assert drawn.in_flight == [4, 8] and drawn.limit == [16, 8]
    assert drawn.rate_limited == [0, 2]
    assert drawn.paused == [0.0, 0.0]


def test_a_pause_runs_on_into_the_intervals_it_covers() -> None:
    """2.5 s of Retry-After first seen by the sample at 2 s: paused from there, the next two intervals
    fully, the third for half of it, nothing after; the spans join into one stretch."""
    rows = [sample(t, paused=2.5 if t >= 2 else 0.0).row() for t in range(7)]
    drawn = series(rows)
    assert drawn.paused == [0.0, 0.0, 1.0, 1.0, 0.5, 0.0]
    assert pause_spans(drawn) == [(2.0, 4.5)]


def test_intervals_of_no_length_are_skipped() -> None:
    """Two samples at the same moment (a start and an end of a run of no length) make no interval."""
    assert len(series([sample(0).row(), sample(0, writes=3).row()])) == 0
    assert len(series([])) == 0


def test_a_timeline_never_holds_more_than_its_cap_and_loses_no_write_or_429() -> None:
    """Past the cap the samples are thinned and the step doubles: the last sample keeps the totals, the
    peak in flight survives in the sample that replaces it."""
    timeline, t, peaked = Timeline(cap=100, step=1.0), 0.0, False
    while t < 1000:  # a sampler samples every `step` seconds
        peak, peaked = t >= 330 and not peaked, peaked or t >= 330
        timeline.add(sample(t, writes=int(t) * 5, in_flight=50 if peak else 1, throttled=int(t) // 100))
        assert len(timeline.samples) <= 100
        t += timeline.step
    assert timeline.step == 16.0
    assert timeline.samples[0].at == 0 and timeline.samples[-1].at > 980
    drawn = series([s.row() for s in timeline.samples])
    assert sum(drawn.rate_limited) == timeline.samples[-1].throttled == 9
    assert max(drawn.in_flight) == 50
    kept = thinned([sample(0), sample(1, in_flight=9, limit=4), sample(2, in_flight=1)])
    assert (kept[-1].in_flight, kept[-1].limit) == (9, 4)


def test_thinning_keeps_the_first_and_the_last_sample() -> None:
    """Every other sample goes, never the start nor the end of the run."""
    kept = thinned([sample(t) for t in range(6)])
    assert [s.at for s in kept] == [0, 2, 4, 5]
    assert [s.at for s in thinned([sample(t) for t in range(5)])] == [0, 2, 4]


def run(**fields: object) -> RunRecord:
    values: dict[str, object] = {"id": 7, "mode": "full", "dry_run": False, "started_at": 1.0, "ended_at": 9.0,
                                 "outcome": "ok", "counts": {}}
    values.update(fields)
    return RunRecord(**values)  # type: ignore[arg-type]


def test_why_a_run_cannot_be_drawn() -> None:
    """A missing run, no finished run, a dry run, a run still going and one without samples each say so."""
    rows = [[0, 0, 0, 0, 0, 16], [1, 2, 1, 0, 0, 16]]
    assert plot_problem("s.db", 7, run(), rows) is None
    assert "has no run 12" in (plot_problem("s.db", 12, None, None) or "")
    assert "no finished run yet" in (plot_problem("s.db", None, None, None) or "")
    assert "dry run" in (plot_problem("s.db", 7, run(dry_run=True), None) or "")
    assert "has not ended" in (plot_problem("s.db", 7, run(ended_at=None), None) or "")
    assert "run 7 has no timeline" in (plot_problem("s.db", 7, run(), None) or "")


async def test_the_run_log_keeps_the_timelines_of_its_last_runs_only(tmp_path: Path) -> None:
    """A run's timeline is stored with its record; once TIMELINES_KEPT newer runs ended, it is dropped
    (the run's record stays)."""
    async with open_state(tmp_path / "s.db") as store:
        ids = []
        for _ in range(TIMELINES_KEPT + 2):
            ids.append(await store.runs.start_run("incremental", False))
            await store.runs.finish_run(ids[-1], "ok", {}, [[0, 0, 0, 0, 0, 4], [1, 1, 0, 0, 0, 4]])
        assert await store.runs.timeline(ids[0]) is None and await store.runs.timeline(ids[1]) is None
        assert await store.runs.timeline(ids[2]) == [[0, 0, 0, 0, 0, 4], [1, 1, 0, 0, 0, 4]]
        assert (await store.runs.find(ids[0])) is not None
        assert (found := await store.runs.find()) is not None and found.id == ids[-1]


def test_the_cycle_line_says_what_happened_in_plain_words() -> None:
    """Mode, outcome, duration, the four main counts even when 0, the others, the destination's flow."""
    result = CycleResult(mode="full", dry_run=False, counts=Counter(created=5, adopted=3, unchanged=40))
    result.outcome, result.seconds = "ok", 2.314
    result.destination_flow = {"retries": 1.0, "429": 1.0, "paused_seconds": 1.0}
    assert cycle_line(result) == ("full ok in 2.31s: created 5, updated 0, deleted 0, failed 0; also adopted 3, "
                                  "unchanged 40; destination flow: retries 1, 429 answers 1, paused 1.0s, "
                                  "no rate learned")
