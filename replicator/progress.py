"""Progress of a running cycle, watched from outside it (`watch_progress`).

The cycle is not told it is watched: its `CycleResult` (counts, read reports, phase) and the two
directories' `requests` and `flow()` are live while it runs, and a small task samples them
(`take_sample`). On a terminal a live display (rich) on stderr shows each phase, redrawn every second:
read (objects seen / totalResults), plan (source objects decided / announced), write (writes, writes/s,
calls in flight, 429 answers, ETA). Elsewhere a `cycle started` log record, a `cycle progress` record
every `progress_interval` seconds and a `cycle ended` record (JSON lines where logs are JSON). Nothing
goes to stdout, so it never mixes with a report there; `progress_interval = 0` turns all of it off.
The formatting is pure functions of samples; I/O is `_StatusLines` and `_LiveDisplay`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from replicator.cycle import CycleResult
from replicator.timeline import in_flight, writes_sent

log = logging.getLogger("replicator.progress")

# what a source object that has been read ends as in a cycle's counts: the "plan" phase's objects done
DONE_COUNTS = ("created", "adopted", "recreated", "updated", "unchanged", "skipped", "failed", "out_of_scope",
               "backing_off")
LIVE_REFRESH_SECONDS = 1.0


class _Limit(Protocol):
    in_flight: int


class WatchedSide(Protocol):
    """What the watch reads of a directory (`replicator.app.Side` has it)."""

    @property
    def requests(self) -> Mapping[str, int]: ...

    @property
    def limit(self) -> _Limit: ...

    def flow(self) -> dict[str, float]: ...


@dataclass(frozen=True)
class ReadCount:
    """One read of the cycle (`source User`, `destination Group`): objects seen of those announced."""

    name: str
    seen: int
    total: int | None
    finished: bool


@dataclass(frozen=True)
class Sample:
    """What a cycle had done at one moment (`at`: seconds since the watch began)."""

    at: float
    phase: str
    reads: tuple[ReadCount, ...] = ()
    done: int = 0  # source objects decided (DONE_COUNTS)
    total: int | None = None  # source objects announced by the source reads so far; None when one did not say
    writes: int = 0  # destination requests that write
    in_flight: int = 0  # destination calls in flight
    throttled: int = 0  # 429 answers, both sides
    counts: dict[str, int] = field(default_factory=dict)


def take_sample(result: CycleResult, sides: Sequence[WatchedSide], at: float) -> Sample:
    """A sample of a running cycle's result and its directories (source, destination): reads only."""
    reads = tuple(ReadCount(name, report.seen, report.total_results, report.finished)
                  for name, report in list(result.reads.items()))
    source_reads = [read for read in reads if read.name.startswith("source ")]
    totals = [read.total for read in source_reads]
    total = sum(t for t in totals if t is not None) if source_reads and None not in totals else None
    counts = {name: count for name, count in list(result.counts.items()) if count}
    destination = sides[-1] if sides else None
    return Sample(
        at=at, phase=result.phase, reads=reads, done=sum(counts.get(name, 0) for name in DONE_COUNTS), total=total,
        writes=writes_sent(destination) if destination else 0, in_flight=in_flight(destination),
        throttled=int(sum(side.flow().get("429", 0.0) for side in sides)), counts=counts)


def writes_per_second(previous: Sample | None, current: Sample) -> float | None:
    """Writes a second since the previous sample (None without one, or no time between them)."""
    if previous is None or current.at <= previous.at:
        return None
    return max(current.writes - previous.writes, 0) / (current.at - previous.at)


def eta_seconds(previous: Sample | None, current: Sample) -> float | None:
    """Seconds until the objects announced so far are decided, at the pace since the previous sample;
    None when the total is unknown or nothing was decided between the samples."""
    if previous is None or current.total is None or current.at <= previous.at:
        return None
    pace = (current.done - previous.done) / (current.at - previous.at)
    if pace <= 0:
        return None
    return max(current.total - current.done, 0) / pace


def duration_text(seconds: float) -> str:
    """45s, 5m20s, 2h05m."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _of(done: int, total: int | None) -> str:
    return f"{done:,}" if total is None else f"{done:,}/{total:,}"


def read_texts(current: Sample) -> list[str]:
    """One text per read: `source User 120/200`, ticked once finished."""
    return [f"{read.name} {_of(read.seen, read.total)}{' ✓' if read.finished else ''}" for read in current.reads]


def phase_lines(previous: Sample | None, current: Sample) -> list[tuple[str, str]]:
    """(phase, what it did) for the read, plan and write phases."""
    reads = " · ".join(read_texts(current)) or "not started"
    decided = ", ".join(f"{name} {current.counts[name]:,}" for name in DONE_COUNTS if current.counts.get(name))
    plan = f"{_of(current.done, current.total)} objects" + (f" ({decided})" if decided else "")
    rate, eta = writes_per_second(previous, current), eta_seconds(previous, current)
    write = [f"{current.writes:,} writes", f"{rate:.1f}/s" if rate is not None else "-/s",
             f"{current.in_flight} in flight", f"{current.throttled} × 429"]
    if eta is not None:
        write.append(f"ETA {duration_text(eta)}")
    return [("read", reads), ("plan", plan), ("write", " · ".join(write))]


def headline(current: Sample) -> str:
    """The live display's first line: the cycle's phase and how long it has run."""
    return f"scim-replicator: {current.phase}, {duration_text(current.at)}"


def status_fields(previous: Sample | None, current: Sample) -> dict[str, Any]:
    """The fields of a `cycle progress` log record (JSON)."""
    rate, eta = writes_per_second(previous, current), eta_seconds(previous, current)
    return {
        "phase": current.phase,
        "elapsed_seconds": round(current.at, 1),
        "reads": {read.name: {"seen": read.seen, "total": read.total, "finished": read.finished}
                  for read in current.reads},
        "done": current.done,
        "total": current.total,
        "writes": current.writes,
        "writes_per_second": None if rate is None else round(rate, 2),
        "in_flight": current.in_flight,
        "rate_limited": current.throttled,
        "eta_seconds": None if eta is None else round(eta),
        "counts": dict(sorted(current.counts.items())),
    }


def status_message(previous: Sample | None, current: Sample) -> str:
    """The text of a `cycle progress` record: `cycle progress: users, read ...; plan ...; write ...`."""
    return f"cycle progress: {current.phase}, " + "; ".join(f"{name} {text}" for name, text in
                                                            phase_lines(previous, current))


def ticks(interval: float, *, live: bool) -> tuple[float, float] | None:
    """(seconds between samples, seconds between status records) of a watch, or None when it is off
    (`progress_interval` 0 or less). The live display samples every second whatever the interval."""
    if interval <= 0:
        return None
    if live:
        return LIVE_REFRESH_SECONDS, LIVE_REFRESH_SECONDS
    return min(interval, LIVE_REFRESH_SECONDS), interval


# -- the I/O edges ------------------------------------------------------------------------------


class _StatusLines:
    """Log records: start, one every interval, end."""

    def start(self, mode: str, dry_run: bool) -> None:
        log.info("cycle started: %s%s", mode, " (dry run)" if dry_run else "",
                 extra={"fields": {"event": "start", "mode": mode, "dry_run": dry_run}})

    def show(self, previous: Sample | None, current: Sample) -> None:
        log.info("%s", status_message(previous, current),
                 extra={"fields": {"event": "progress", **status_fields(previous, current)}})

    def end(self, previous: Sample | None, current: Sample | None, outcome: str, elapsed: float) -> None:
        fields = status_fields(previous, current) if current is not None else {"elapsed_seconds": round(elapsed, 1)}
        log.info("cycle ended: %s in %s", outcome, duration_text(elapsed),
                 extra={"fields": {"event": "end", "outcome": outcome, **fields}})


class _LiveDisplay:
    """A rich live display on stderr; log records written meanwhile go above it."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self._live = Live(console=Console(stderr=True), auto_refresh=False, redirect_stdout=False,
                          redirect_stderr=True, transient=False)
        self._moved: list[tuple[logging.StreamHandler[Any], Any]] = []

    def start(self, mode: str, dry_run: bool) -> None:
        original = sys.stderr
        self._live.start()
        for handler in logging.getLogger().handlers:  # they hold the real stderr: hand them the live one
            if isinstance(handler, logging.StreamHandler) and handler.stream is original:
                self._moved.append((handler, handler.setStream(sys.stderr)))

    def show(self, previous: Sample | None, current: Sample) -> None:
        from rich.console import Group
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        for name, text in phase_lines(previous, current):
            if name == "read" and current.reads:  # one row a read
                for index, read in enumerate(read_texts(current)):
                    table.add_row("  read" if index == 0 else "", read)
            else:
                table.add_row(f"  {name}", text)
        self._live.update(Group(headline(current), table), refresh=True)

    def end(self, previous: Sample | None, current: Sample | None, outcome: str, elapsed: float) -> None:
        if current is not None:
            self.show(previous, current)
        for handler, stream in self._moved:
            handler.setStream(stream)
        self._live.stop()


@contextlib.asynccontextmanager
async def watch_progress(
    interval: float, started: list[CycleResult], sides: list[Any], *, mode: str, dry_run: bool, live: bool,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[None]:
    """Show the progress of the cycle run inside the block: `started` and `sides` are the lists that
    `replicator.app.replicate` fills (the cycle's result; its source and destination). `live`: a
    terminal's live display, else status log records. Off when `interval` is 0."""
    timing = ticks(interval, live=live)
    if timing is None:
        yield
        return
    sample_every, show_every = timing
    view: _StatusLines | _LiveDisplay = _LiveDisplay() if live else _StatusLines()
    began = clock()
    shown: list[Sample] = []  # the samples shown: the rate and the ETA are measured between the last two

    def sample() -> Sample | None:
        return take_sample(started[0], sides, clock() - began) if started else None

    async def keep_showing() -> None:
        last_shown = began
        while True:
            await asyncio.sleep(sample_every)
            if clock() - last_shown >= show_every - 1e-3 and (current := sample()) is not None:
                view.show(shown[-1] if shown else None, current)
                shown.append(current)
                del shown[:-1]
                last_shown = clock()

    view.start(mode, dry_run)
    task = asyncio.create_task(keep_showing())
    outcome: str | None = None
    try:
        yield
    except asyncio.CancelledError:
        outcome = "interrupted"
        raise
    except BaseException:
        outcome = "failed"
        raise
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        final = sample()
        if final is not None:
            outcome = str(started[0].outcome)
        view.end(shown[-1] if shown else None, final, outcome or "ok", clock() - began)
