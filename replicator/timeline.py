"""A run's timeline: what the destination's calls did, second by second, kept with the run's record.

`TimelineSampler` is started and stopped with a cycle (the live recorder does both, so only runs that
are recorded have one): a task that reads the destination's live figures every `SAMPLE_SECONDS` (write
requests sent so far, calls in flight and the adaptive limit on them, 429 answers so far, seconds
paused by Retry-After so far) and
nothing per object, with a first sample at the start and a last one at the end. `Timeline` keeps at
most `MAX_SAMPLES`: beyond that it keeps every other sample and samples half as often, so a run of any
length stores a few thousand numbers. The counters are cumulative, so thinning loses no write and no
429; a kept sample's `in_flight` is the highest of those it replaces, its `limit` the lowest.

`series` turns stored samples into what `status --plot` draws (replicator/timeline_plot.py): per
interval, writes a second, calls in flight and their limit, 429 answers, and the share of it spent
paused. Pure, as
are `plot_problem` (why a run cannot be drawn) and `plot_title`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from replicator.state.records import RunRecord
from replicator.state.runs import TIMELINES_KEPT

SAMPLE_SECONDS = 1.0
MAX_SAMPLES = 3600
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


class SampledSide(Protocol):
    """What the sampler reads of a directory (a `replicator.directory.Directory`)."""

    @property
    def requests(self) -> Mapping[str, int]: ...

    def flow(self) -> dict[str, float]: ...


def writes_sent(side: SampledSide) -> int:
    """The write requests (POST, PUT, PATCH, DELETE) a directory was sent so far."""
    return sum(n for method, n in side.requests.items() if method in WRITE_METHODS)


def in_flight(side: object) -> int:
    """A directory's calls in flight now: its adaptive limit's count (a directory without one, such as
    a test double, has none)."""
    return int(getattr(getattr(side, "limit", None), "in_flight", 0))


@dataclass(frozen=True, slots=True)
class TimelineSample:
    """The destination's figures at `at` seconds since the run began: cumulative but `in_flight`."""

    at: float
    writes: int  # write requests sent so far
    in_flight: int  # calls in flight (after thinning: the highest of the samples it stands for)
    throttled: int  # 429 answers so far
    paused: float  # seconds of Retry-After pauses announced so far
    limit: int  # calls allowed in flight (the adaptive concurrency; after thinning: the lowest)

    def row(self) -> list[float]:
        """As stored: [at, writes, in_flight, throttled, paused, limit]."""
        return [round(self.at, 3), self.writes, self.in_flight, self.throttled, round(self.paused, 3), self.limit]

    @classmethod
    def from_row(cls, row: Sequence[float]) -> TimelineSample:
        at, writes, flying, throttled, paused, limit = row
        return cls(float(at), int(writes), int(flying), int(throttled), float(paused), int(limit))


def sample_of(side: SampledSide, at: float) -> TimelineSample:
    """A sample of a directory's figures now (reads only)."""
    flow = side.flow()
    return TimelineSample(at=at, writes=writes_sent(side), in_flight=in_flight(side),
                          throttled=int(flow.get("429", 0.0)), paused=float(flow.get("paused_seconds", 0.0)),
                          limit=int(flow.get("concurrency", 0.0)))


def thinned(samples: Sequence[TimelineSample]) -> list[TimelineSample]:
    """Every other sample, the first kept: each kept one carries the highest `in_flight` and the lowest
    `limit` of itself and the one dropped before it (the cumulative figures need no merging)."""
    out = list(samples[:1])
    for index in range(2, len(samples), 2):
        kept = samples[index]
        dropped = samples[index - 1]
        out.append(TimelineSample(kept.at, kept.writes, max(kept.in_flight, dropped.in_flight), kept.throttled,
                                  kept.paused, min(kept.limit, dropped.limit)))
    if len(samples) > 1 and len(samples) % 2 == 0:
        out.append(samples[-1])  # the last sample stays: the end of the run
    return out


@dataclass
class Timeline:
    """The samples of one run, at most `cap`; `step`: the seconds between samples now."""

    cap: int = MAX_SAMPLES
    step: float = SAMPLE_SECONDS
    samples: list[TimelineSample] = field(default_factory=list)

    def add(self, sample: TimelineSample) -> None:
        self.samples.append(sample)
        if len(self.samples) > self.cap:
            self.samples = thinned(self.samples)
            self.step *= 2


class TimelineSampler:
    """Samples a directory (the destination) while a cycle runs: `start()` at its beginning, `stop()`
    at its end returns the samples as stored rows."""

    def __init__(self, side: SampledSide, *, step: float = SAMPLE_SECONDS, cap: int = MAX_SAMPLES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.side, self.clock = side, clock
        self.timeline = Timeline(cap=cap, step=step)
        self._began = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._began = self.clock()
        self._take()
        self._task = asyncio.create_task(self._keep_sampling())

    def stop(self) -> list[list[float]]:
        """The last sample and all of them. Not a coroutine: it runs in the `finally` of a cycle being
        cancelled, where an await could be cancelled before the run is recorded."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
            self._take()
        return [sample.row() for sample in self.timeline.samples]

    def _take(self) -> None:
        self.timeline.add(sample_of(self.side, self.clock() - self._began))

    async def _keep_sampling(self) -> None:
        while True:
            await asyncio.sleep(self.timeline.step)
            self._take()


@dataclass(frozen=True)
class Series:
    """What a timeline plot draws, one value per interval between two samples (`seconds`: the
    interval's end, since the run began; `start`: the first interval's start)."""

    start: float
    seconds: list[float]
    writes_per_second: list[float]
    in_flight: list[int]
    limit: list[int]  # calls allowed in flight (the adaptive concurrency) at the interval's end
    rate_limited: list[int]  # 429 answers in the interval
    paused: list[float]  # share of the interval spent paused (0..1)

    def __len__(self) -> int:
        return len(self.seconds)


def series(rows: Sequence[Sequence[float]]) -> Series:
    """The per-interval series of stored samples (rows as `TimelineSample.row` writes them). A pause is
    counted from the sample that first shows it (which says only that it was announced since the
    previous one, not when: it is drawn up to one interval late) and runs on into the next intervals
    until its seconds are spent; intervals of no length are skipped."""
    samples = [TimelineSample.from_row(row) for row in rows]
    out: dict[str, list[Any]] = {name: [] for name in ("seconds", "writes_per_second", "in_flight", "limit",
                                                        "rate_limited", "paused")}
    pending_pause = 0.0
    for previous, current in itertools.pairwise(samples):
        length = current.at - previous.at
        if length <= 0:
            continue
        paused_here = min(pending_pause, length)
        pending_pause += max(current.paused - previous.paused, 0.0) - paused_here
        out["seconds"].append(current.at)
        out["writes_per_second"].append(max(current.writes - previous.writes, 0) / length)
        out["in_flight"].append(current.in_flight)
        out["limit"].append(current.limit)
        out["rate_limited"].append(max(current.throttled - previous.throttled, 0))
        out["paused"].append(paused_here / length)
    return Series(start=samples[0].at if samples else 0.0, **out)


def pause_spans(drawn: Series) -> list[tuple[float, float]]:
    """(start, end) of each stretch of time paused, neighbouring paused intervals joined: the paused
    share of an interval is drawn at its start."""
    spans: list[tuple[float, float]] = []
    start = drawn.start
    for end, share in zip(drawn.seconds, drawn.paused, strict=True):
        if share > 0:
            paused_end = start + share * (end - start)
            if spans and abs(spans[-1][1] - start) < 1e-9:
                spans[-1] = (spans[-1][0], paused_end)
            else:
                spans.append((start, paused_end))
        start = end
    return spans


def plot_problem(state: str, asked: int | None, run: RunRecord | None, rows: Sequence[Any] | None) -> str | None:
    """Why the run asked for (`asked`: its id, None: the last one that ended) cannot be drawn; None
    when it can."""
    if run is None:
        return (f"state {state} has no run {asked} (`status` lists the last runs)" if asked is not None
                else f"state {state} records no finished run yet: nothing to plot")
    if run.dry_run:
        return f"run {run.id} was a dry run: it wrote nothing, so it has no timeline"
    if run.ended_at is None:
        return (f"run {run.id} has not ended (still running, or the process was killed): its timeline is "
                "recorded when it ends")
    if not rows or len(rows) < 2:
        return (f"run {run.id} has no timeline (recorded by a version without timelines, or not one of the last "
                f"{TIMELINES_KEPT} runs, whose timelines are kept)")
    return None


def plot_title(run: RunRecord) -> str:
    """`run 12: full ok, 2026-12-02 01:00:45, 40.3s (destination calls)`."""
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started_at))
    took = f", {run.ended_at - run.started_at:.1f}s" if run.ended_at is not None else ""
    return f"run {run.id}: {run.mode} {run.outcome or 'unfinished'}, {started}{took} (destination calls)"
