"""The run log (`runs`): one row per cycle, its mode, start and end, outcome and counts (JSON), and its
timeline (replicator.timeline: JSON rows of samples), kept for the last `TIMELINES_KEPT` runs.

A run whose end is not recorded, or that ended `interrupted` or `failed`, did not finish its plan: the
next run treats it like a crash. Recording an end commits the buffered resource writes with it.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from replicator.state.connection import Room, state_errors_named
from replicator.state.records import RunRecord

TIMELINES_KEPT = 100  # a daemon records a run a minute: older runs keep their counts, not their timeline


@state_errors_named
class RunLog(Room):
    """The history of cycles. Reached as `StateStore.runs`."""

    async def start_run(self, mode: str, dry_run: bool) -> int:
        async with self._lock:
            cursor = await self._db.execute(
                "INSERT INTO runs (mode, dry_run, started_at) VALUES (?, ?, ?)",
                (mode, int(dry_run), time.time()),
            )
            await self._commit()
            return int(cursor.lastrowid or 0)

    async def last_run_unfinished(self) -> bool:
        """True when the latest non-dry run did not finish its plan: the process died mid-cycle (no end
        recorded), or it ended `interrupted` (a signal, a cancellation) or `failed` (a fatal error).
        Its writes may not all be recorded: the next run treats it like a crash."""
        async with self._lock:
            async with self._db.execute(
                "SELECT ended_at, outcome FROM runs WHERE dry_run = 0 ORDER BY id DESC LIMIT 1"
            ) as cursor:
                row = await cursor.fetchone()
            return row is not None and (row[0] is None or row[1] in ("interrupted", "failed"))

    async def finish_run(self, run_id: int, outcome: str, counts: dict[str, Any],
                         timeline: list[list[float]] | None = None) -> None:
        """Record how a run ended (and its timeline) and commit what is buffered, also when the caller is
        cancelled: the write runs in a task of its own, which a cancelled caller still waits for before it re-raises
        (called from the `finally` of a cycle being cancelled, a further cancellation, such as a second
        signal, would otherwise stop the record half-way)."""
        write = asyncio.ensure_future(self._finish_run(run_id, outcome, counts, timeline))
        cancelled = False
        while not write.done():
            try:
                await asyncio.wait([write])  # (wait, unlike await, leaves the write running when we are cancelled)
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError
        write.result()

    async def _finish_run(self, run_id: int, outcome: str, counts: dict[str, Any],
                          timeline: list[list[float]] | None) -> None:
        async with self._lock:
            await self._flush()
            await self._db.execute(
                "UPDATE runs SET ended_at = ?, outcome = ?, counts = ?, timeline = ? WHERE id = ?",
                (time.time(), outcome, json.dumps(counts, sort_keys=True),
                 None if timeline is None else json.dumps(timeline, separators=(",", ":")), run_id),
            )
            # the runs that fell out of the last TIMELINES_KEPT (by id: a range of the primary key, not a scan)
            await self._db.execute("UPDATE runs SET timeline = NULL WHERE id BETWEEN ? AND ? AND timeline IS NOT NULL",
                                   (run_id - 2 * TIMELINES_KEPT, run_id - TIMELINES_KEPT))
            await self._commit()

    async def timeline(self, run_id: int) -> list[list[float]] | None:
        """A run's timeline as recorded (None: none was, or it is no longer kept)."""
        async with self._lock:
            async with self._db.execute("SELECT timeline FROM runs WHERE id = ?", (run_id,)) as cursor:
                row = await cursor.fetchone()
            timeline: list[list[float]] | None = json.loads(row[0]) if row and row[0] else None
            return timeline

    async def find(self, run_id: int | None = None) -> RunRecord | None:
        """The run `run_id` (None: the last one that ended and was not a dry run), or None when there is none."""
        where, args = ("id = ?", (run_id,)) if run_id is not None else ("ended_at IS NOT NULL AND dry_run = 0", ())
        async with self._lock:
            async with self._db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE {where} ORDER BY id DESC LIMIT 1",
                                        args) as cursor:
                row = await cursor.fetchone()
            return None if row is None else _run_record(row)

    async def last_runs(self, limit: int = 10) -> list[RunRecord]:
        async with self._lock:
            async with self._db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?",
                (limit,),
            ) as cursor:
                rows = await cursor.fetchall()
            return [_run_record(r) for r in rows]


_RUN_COLUMNS = "id, mode, dry_run, started_at, ended_at, outcome, counts"


def _run_record(r: Any) -> RunRecord:
    return RunRecord(r[0], r[1], bool(r[2]), r[3], r[4], r[5], json.loads(r[6]) if r[6] else {})
