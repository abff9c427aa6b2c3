"""The dry-run: a sink that plans instead of writing, and a recorder that leaves the state untouched.

Every step a live cycle would write is kept (one per object: the re-plan of a new object's references
folds into its create) and pretended done, so that later planning (objects waiting for a reference
target, groups naming new users) sees what the writes would have left. The plan becomes the result's
`changes`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from replicator.cycle.context import CycleContext
from replicator.cycle.recorder import count_failure
from replicator.cycle.work import PendingRead, StepQueue, Waiting
from replicator.pipeline.plan import CREATE, DISABLE, RECORD, Step, Stored


class DryRunSink:
    """Plans each step and pretends it happened."""

    def __init__(self, cx: CycleContext) -> None:
        self.cx = cx
        self.plan: dict[tuple[str, str], Step] = {}  # one step per object
        self.overlay: dict[tuple[str, str], Stored] = {}  # what the planned writes would leave
        self.written: set[tuple[str, str]] = set()  # objects planned this cycle

    async def take(self, step: Step, send: StepQueue | None) -> None:
        dest_id = self._plan_only(step)
        if dest_id is not None:
            await self.cx.waiters.release(step.kind, step.source_id, dest_id)

    def finish(self) -> None:
        self.cx.result.changes = list(self.plan.values())
        self.cx.result.counts.update(f"{step.action}_planned" for step in self.cx.result.changes)

    def _plan_only(self, step: Step) -> str | None:
        """Remember the change for the report, and pretend it happened for later planning; return the
        destination id the object would have (None: it would have none)."""
        key = (step.kind, step.source_id)
        earlier = self.plan.get(key)
        if earlier is not None and earlier.action == CREATE:
            # the re-plan of a new object's references folds into its create
            step = Step(CREATE, step.kind, step.source_id, step.label, step.desired, step.digest)
        if step.action != RECORD:
            self.plan[key] = step
        if step.desired is not None:
            dest_id = step.dest_id or f"<new {step.kind} {step.label}>"
            self.written.add(key)
            self.overlay[key] = Stored(dest_id, step.digest, step.desired, disabled=step.action == DISABLE)
            return dest_id
        return None


class DryRunRecorder:
    """Records nothing; answers what this cycle wrote from the plan."""

    def __init__(self, cx: CycleContext, sink: DryRunSink) -> None:
        self.cx = cx
        self._sink = sink

    async def open_run(self) -> None:
        pass

    async def close_run(self, outcome: str, counts: dict[str, Any]) -> None:
        pass

    async def fail(self, kind: str, source_id: str, label: str, reason: str, source_digest: str | None = None) -> None:
        count_failure(self.cx.result, kind, source_id, label, reason)

    async def note_creates(self, creates: list[tuple[str, str, dict[str, Any]]]) -> None:
        pass

    def creates_sent(self, keys: list[tuple[str, str]]) -> None:
        pass

    async def note_proven_creates(self, steps: list[Step], waiting: list[Waiting]) -> None:
        pass

    async def note_source_digest(self, kind: str, read: PendingRead) -> None:
        pass

    async def forget(self, kind: str, source_id: str) -> None:
        pass

    async def forget_source_digests(self, kind: str, source_ids: list[str]) -> None:
        pass

    async def written_now(self, kind: str, source_ids: list[str]) -> set[str]:
        return {sid for sid in source_ids if (kind, sid) in self._sink.written}

    def planned(self, kind: str, source_ids: Iterable[str]) -> dict[str, Stored]:
        overlay = self._sink.overlay
        if not overlay:
            return {}
        return {sid: overlay[(kind, sid)] for sid in source_ids if (kind, sid) in overlay}
