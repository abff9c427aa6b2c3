"""The work items one cycle passes between its stages: the workers' step queue, a source object waiting
to be planned, one waiting for its reference targets, a Bulk referrer, what the destination listing
was, and the guard's verdict on a kind's removals. Records (the queue aside); no I/O."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any

from replicator.pipeline.canonical import USER, digest
from replicator.pipeline.plan import Step
from replicator.pipeline.references import translate
from replicator.state import ResourceRow

Unread = list[tuple[ResourceRow, "str | None"]]  # rows not read in scope, with why out of scope


class StepQueue:
    """The workers' queue: (step, from the reader?) items, None ends one worker."""

    def __init__(self, bound: int) -> None:
        self.queue: asyncio.Queue[tuple[Step, bool] | None] = asyncio.Queue()
        self.room = asyncio.Semaphore(bound)

    async def put(self, step: Step) -> None:
        """From the reader: waits while `bound` of its steps are queued or running."""
        await self.room.acquire()
        self.queue.put_nowait((step, True))

    def put_released(self, step: Step) -> None:
        self.queue.put_nowait((step, False))


@dataclass
class RemovalVerdict:
    """The guard's verdict on one kind's removals: the candidates (None: too many to keep; read
    again), how many steps they make, and why they are held (None: they may proceed)."""

    kept: list[Unread] | None
    planned: int
    held: str | None


@dataclass
class Listing:
    """That the destination was listed (full mode, or a first run that must adopt), and whether
    completely. The listing itself (ids, match keys, and in full mode the canonical forms) is in the
    state store's scratch tables."""

    complete: bool
    with_forms: bool
    listed: int  # objects listed (0: nothing to look up)


@dataclass(slots=True)
class PendingRead:
    """A source object that needs planning: its canonical form, the digest of its bytes as read, and
    its state row (None: never replicated)."""

    source_id: str
    canonical: dict[str, Any]
    source_digest: str | None
    row: ResourceRow | None


@dataclass(eq=False)
class Waiting:
    """An object whose references (manager, members) point at objects without a destination id yet;
    `targets` holds the (user, group) destination ids of its references known so far, valid while no
    object has moved to another destination id since (`moves`, the cycle's count of such moves)."""

    kind: str
    read: PendingRead
    pending: set[str]
    targets: tuple[dict[str, str], dict[str, str]]
    moves: int
    done: bool = False


@dataclass(slots=True)
class Referrer:
    """A new object that joined the Bulk request creating the objects it refers to, and names them by
    bulkId there (RFC 7644 3.7.2). `targets`: the destination ids of its other references;
    `named`: target source id -> (kind, bulkId) of the creates in the same request."""

    kind: str
    read: PendingRead
    targets: tuple[dict[str, str], dict[str, str]]
    named: dict[str, tuple[str, str]]

    def targets_by(self, bulk_ids: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        """Its targets, those created in the request given by `bulk_ids` (bulkId -> what names it:
        `bulkId:x` in the request, the new destination id once it ran; missing: left out)."""
        users, groups = dict(self.targets[0]), dict(self.targets[1])
        for source_id, (kind, bulk_id) in self.named.items():
            if bulk_id in bulk_ids:
                (users if kind == USER else groups)[source_id] = bulk_ids[bulk_id]
        return users, groups

    def resolved(self, step: Step, created: dict[str, str]) -> tuple[Step, bool]:
        """The step as the destination holds it once the request ran (`created`: bulkId -> new id);
        and whether every reference resolved (a target whose create failed is left out)."""
        desired, unresolved = translate(self.read.canonical, self.kind, *self.targets_by(created))
        source_digest = None if unresolved else step.source_digest
        return dataclasses.replace(step, desired=desired, digest=digest(desired), source_digest=source_digest), not unresolved
