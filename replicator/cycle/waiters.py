"""Objects waiting for their reference targets (`Waiters`): a member, a manager or a subgroup that has no
destination id yet. When the target is written, the objects waiting only for it are planned and their
steps released to the workers; what still waits at the end of a kind is the reader's to settle."""

from __future__ import annotations

import dataclasses

from replicator.cycle.context import CycleContext
from replicator.cycle.sinks import dispatch
from replicator.cycle.work import PendingRead, Waiting
from replicator.pipeline.canonical import USER
from replicator.pipeline.references import referenced_ids


class Waiters:
    """Target source id -> the objects waiting for it."""

    def __init__(self, cx: CycleContext) -> None:
        self.cx = cx
        self._by_target: dict[str, list[Waiting]] = {}

    def __bool__(self) -> bool:
        return bool(self._by_target)

    def waits_for(self, target: str) -> bool:
        """Whether some object waits for `target`."""
        return target in self._by_target

    def of(self, target: str) -> list[Waiting]:
        """The objects waiting for `target` (they stay registered)."""
        return self._by_target.get(target, [])

    def wait_for(self, kind: str, read: PendingRead, unresolved: list[str],
                 targets: tuple[dict[str, str], dict[str, str]], held: list[Waiting]) -> None:
        users, groups = referenced_ids(read.canonical, kind)
        known = ({sid: targets[0][sid] for sid in users if sid in targets[0]},
                 {sid: targets[1][sid] for sid in groups if sid in targets[1]})
        entry = Waiting(kind, read, set(unresolved), known, self.cx.moves.count)
        held.append(entry)
        for target in unresolved:
            self._by_target.setdefault(target, []).append(entry)

    async def release(self, kind: str, target: str, dest_id: str) -> None:
        """`target` (of `kind`) now has a destination id: plan the objects that were waiting only for it.

        Their steps join the workers' queue without waiting for room (a worker that waited for room
        in its own queue could block them all)."""
        for entry in self._by_target.pop(target, ()):
            entry.targets[0 if kind == USER else 1][target] = dest_id
            entry.pending.discard(target)
            if entry.done or entry.pending:
                continue
            entry.done = True
            read = self.still_own(entry.read)
            entry.read = dataclasses.replace(entry.read, canonical={})  # the form is no longer kept
            targets = entry.targets if entry.moves == self.cx.moves.count else None  # None: ask the state again
            for step in await self.cx.planner.plan_batch(entry.kind, [read], None, targets=targets):
                await dispatch(self.cx, step, None)

    def still_own(self, read: PendingRead) -> PendingRead:
        """A read planned later than it was made: if another source object took its destination
        object meanwhile (adoption), it has none any more."""
        if read.row is not None and (read.row.kind, read.source_id) in self.cx.moves.taken_over:
            return dataclasses.replace(read, row=None)
        return read
