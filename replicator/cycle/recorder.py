"""What the planning stages of a cycle put in the state (`Recorder`), and the live recorder.

Planning records failures, notes creates before they are sent (so a crash cannot lose an object we
made), remembers new source digests of unchanged objects, and asks what this cycle wrote. The live
recorder writes all of it to the state store; the dry-run one (dryrun.py) keeps the state untouched and
answers from the plan. Success records of writes are the writer's (a dry-run never writes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, Protocol

from replicator.cycle.context import CycleContext
from replicator.cycle.result import CycleResult
from replicator.cycle.work import PendingRead, Waiting
from replicator.pipeline.canonical import match_value
from replicator.pipeline.outcome import failure_backoff
from replicator.pipeline.plan import CREATE, Step, Stored
from replicator.state.approvals import Approval
from replicator.state.records import SYNCED
from replicator.timeline import TimelineSampler

log = logging.getLogger("replicator.cycle")

_FAILURES_LISTED = 1000  # failures kept for the cycle's report (the state keeps all of them)


class Recorder(Protocol):
    """The state as the planning stages see it."""

    async def open_run(self) -> None:
        """Record that the cycle starts (the live recorder), so that a crash is seen by the next run."""

    async def close_run(self, outcome: str, counts: dict[str, Any]) -> None: ...

    async def take_approval(self) -> Approval | None:
        """An operator's standing approval of removals (`approve`): this run uses it (the live
        recorder; the dry-run one leaves it standing, as the next real run finds it)."""

    async def fail(self, kind: str, source_id: str, label: str, reason: str, source_digest: str | None = None) -> None:
        """Count, list and record a failure; `source_digest`: the object as read (None: unknown)."""

    async def note_creates(self, creates: list[tuple[str, str, dict[str, Any]]]) -> None:
        """New objects ((kind, source id, form)) about to be POSTed: noted first."""

    def creates_sent(self, keys: list[tuple[str, str]]) -> None:
        """These noted creates ((kind, source id)) are done (recorded, or failed)."""

    async def note_proven_creates(self, steps: list[Step], waiting: list[Waiting]) -> None:
        """A page's new objects that a complete listing proves absent: noted at once."""

    async def note_source_digest(self, kind: str, read: PendingRead) -> None:
        """An unchanged object whose source bytes changed: remember the new digest."""

    async def forget(self, kind: str, source_id: str) -> None:
        """Drop the state row of an object whose noted create never reached the destination."""

    async def forget_source_digests(self, kind: str, source_ids: list[str]) -> None:
        """These objects are planned again by the next cycle (not skipped as unchanged)."""

    async def written_now(self, kind: str, source_ids: list[str]) -> set[str]:
        """Those of these objects this cycle wrote (or, dry-run, planned)."""
        ...

    def planned(self, kind: str, source_ids: Iterable[str]) -> dict[str, Stored]:
        """Dry-run: what the planned writes would leave for those of these objects they touch (the
        others: ask the state)."""
        ...


def count_failure(result: CycleResult, kind: str, source_id: str, label: str, reason: str) -> None:
    """A failure in the cycle's result: counted, listed (the first _FAILURES_LISTED), logged."""
    result.counts["failed"] += 1
    if result.counts["failed"] <= _FAILURES_LISTED:
        result.failures.append((kind, label or source_id, reason))
    elif result.counts["failed"] == _FAILURES_LISTED + 1:
        result.notes.append(f"only the first {_FAILURES_LISTED} failures are listed; `status` shows them all")
    log.warning("failed %s %s (source id %s): %s", kind, label, source_id, reason)


class LiveRecorder:
    """Writes what planning learns to the state store, and the run's record with its timeline (the
    destination's figures sampled from the run's start to its end: replicator.timeline)."""

    def __init__(self, cx: CycleContext) -> None:
        self.cx = cx
        self._run_id: int | None = None
        self._noted: set[tuple[str, str]] = set()  # creates noted in the state and not yet done
        self._timeline = TimelineSampler(cx.destination)

    async def open_run(self) -> None:
        self._run_id = await self.cx.store.runs.start_run(self.cx.mode, self.cx.dry_run)
        self._timeline.start()

    async def take_approval(self) -> Approval | None:
        return await self.cx.store.approvals.take(time.time(), self._run_id or 0)

    async def close_run(self, outcome: str, counts: dict[str, Any]) -> None:
        timeline = self._timeline.stop()
        if self._run_id is not None:
            await self.cx.store.runs.finish_run(self._run_id, outcome, counts, timeline)  # (survives cancellation)

    async def fail(self, kind: str, source_id: str, label: str, reason: str, source_digest: str | None = None) -> None:
        count_failure(self.cx.result, kind, source_id, label, reason)
        await self.cx.store.record_failure(kind, source_id, reason, backoff=failure_backoff,
                                           source_digest=source_digest, label=label)

    async def note_creates(self, creates: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Before new objects ((kind, source id, form)) are POSTed (their absence proven: no object to
        adopt): commit that they are about to be (state `creating`), so that an object whose result a
        crash loses, and that the source drops before the next cycle, is still found and removed
        (`Removals.resolve_intents`). The store commits the notes of concurrent workers together;
        objects noted already are skipped."""
        by_kind: dict[str, dict[str, str | None]] = {}
        for kind, source_id, form in creates:
            if (kind, source_id) not in self._noted:
                self._noted.add((kind, source_id))
                by_kind.setdefault(kind, {})[source_id] = match_value(form, self.cx.match_attribute(kind))
        for kind, keys in by_kind.items():
            await self.cx.store.intents.note_creating(kind, keys)

    def creates_sent(self, keys: list[tuple[str, str]]) -> None:
        self._noted.difference_update(keys)

    async def note_proven_creates(self, steps: list[Step], waiting: list[Waiting]) -> None:
        """A page's new objects whose absence a complete listing of the destination proves (they will
        be POSTed, not adopt an object), those that wait for a reference target included, are noted at
        once: one commit per page, not one per group of concurrent creates (a copy of 30k users took
        18 s with those, 16 s with these, 14 s without notes; released waiters made 20 ms latency
        0.6 of the raw client)."""
        creates = [(step.kind, step.source_id, step.desired) for step in steps
                   if step.action == CREATE and step.desired is not None and step.dest_id is None]
        creates += [(entry.kind, entry.read.source_id, entry.read.canonical) for entry in waiting
                    if not entry.done and entry.read.row is None]
        if creates:
            absent = await self.cx.listing.absent_from_listing(creates)
            await self.note_creates([create for create in creates if create[1] in absent])

    async def note_source_digest(self, kind: str, read: PendingRead) -> None:
        """An unchanged object whose source bytes changed (meta, a read-only attribute): remember the
        new bytes' digest, so the next cycle takes the fast path."""
        row = read.row
        if row is None or read.source_digest is None or row.source_digest == read.source_digest:
            return
        if row.status == SYNCED:
            await self.cx.store.note_source_digest(kind, read.source_id, read.source_digest)

    async def forget(self, kind: str, source_id: str) -> None:
        await self.cx.store.forget(kind, source_id)

    async def forget_source_digests(self, kind: str, source_ids: list[str]) -> None:
        await self.cx.store.forms.forget_source_digests(kind, source_ids)

    async def written_now(self, kind: str, source_ids: list[str]) -> set[str]:
        return await self.cx.store.written_since(kind, source_ids, self.cx.started_at) if source_ids else set()

    def planned(self, kind: str, source_ids: Iterable[str]) -> dict[str, Stored]:
        return {}
