"""The Bulk writer (`BulkWriter`): a worker's batch of steps as SCIM Bulk requests (RFC 7644 3.7).

Steps that are one plain request go in Bulk requests within the server's maxOperations and
maxPayloadSize; the others, and every operation a Bulk answer refuses, go to the single-step writer,
which knows how to adopt on 409, re-create on 404 and retry on 429/5xx. New objects waiting only for
objects a request creates may join it and name them by bulkId, once a trial request showed the
destination resolves such references (pipeline/bulk.py decides; this module reads the object back).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging

from replicator.cycle.context import CycleContext
from replicator.cycle.sinks import dispatch
from replicator.cycle.work import Referrer, Waiting
from replicator.errors import AuthError, ScimError, ScimStatusError
from replicator.pipeline.bulk import (
    DEFAULT_MAX_PAYLOAD,
    ENVELOPE_BYTES,
    PAYLOAD_SHARE,
    Operation,
    ReferenceTrial,
    bulk_chunks,
    bulk_operation,
    members_carried,
    operation_cost,
)
from replicator.pipeline.canonical import canonicalise
from replicator.pipeline.plan import (
    CREATE,
    DELETE,
    DISABLE,
    NOTHING,
    RECORD,
    SKIP,
    Step,
    created_counter,
    plan_adoption,
    update_counter,
)
from replicator.pipeline.references import reference_values
from replicator.scim.wire import BulkResult
from replicator.state.records import DISABLED, SYNCED

log = logging.getLogger("replicator.cycle")

Chunk = list[tuple[Step, Operation]]


class BulkWriter:
    """Writes batches of steps in Bulk requests; `size` operations a worker gathers into one."""

    def __init__(self, cx: CycleContext) -> None:
        self.cx = cx
        self.size = 1  # operations a worker gathers into one request: set once the server is known
        self._ceiling = 1  # operations one Bulk request may hold, objects that join it included
        self._ids = itertools.count(1)
        self.references = ReferenceTrial()

    def configure(self) -> None:
        """Use Bulk if the destination offers it with PATCH (and the configuration allows it)."""
        cx = self.cx
        features = cx.destination.features
        if cx.policy.bulk == "auto" and features.bulk and features.patch:
            self.size = max(1, min(cx.policy.bulk_size, features.bulk_max_operations or cx.policy.bulk_size))
            self._ceiling = max(self.size, features.bulk_max_operations)

    def _operation(self, step: Step, absent: bool) -> Operation | None:
        return bulk_operation(step, absent=absent, member_chunk=self.cx.writer.members.chunk,
                              patch=self.cx.destination.features.patch,
                              bulk_id=lambda: f"{step.kind[0].lower()}{next(self._ids)}")

    async def run_batch(self, steps: list[Step]) -> None:
        """Several steps: those that are one plain request go in Bulk requests (within the server's
        maxOperations and maxPayloadSize), the others run one by one, concurrently. An operation the
        Bulk answer refuses is done again by the single-request path, which knows how to adopt on
        409, re-create on 404 and retry on 429/5xx."""
        cx = self.cx
        if cx.fatal is not None or cx.stop.is_set():
            return
        singles: list[Step] = []
        bulked: Chunk = []
        absent = await cx.listing.absent_from_listing(
            [(step.kind, step.source_id, step.desired or {}) for step in steps if step.action == CREATE])
        for step in steps:
            operation = self._operation(step, step.source_id in absent) if step.action != RECORD else None
            (bulked.append((step, operation)) if operation else singles.append(step))
        replan: list[Referrer] = []
        for chunk in bulk_chunks(bulked, cx.destination.features.bulk_max_payload):
            joined = await self._join_referrers(chunk, replan)
            posts = [step for step, operation in chunk if operation["method"] == "POST"]
            await cx.recorder.note_creates([(step.kind, step.source_id, step.desired or {}) for step in posts])
            singles.extend(await self._send(chunk, joined, replan))
            cx.recorder.creates_sent([(step.kind, step.source_id) for step in posts])
        await asyncio.gather(*(cx.writer.run_step(step) for step in singles))
        await self._replan_referrers(replan)

    async def _join_referrers(self, chunk: Chunk, replan: list[Referrer]) -> dict[int, Referrer]:
        """New objects waiting only for objects this Bulk request creates join it and name them by
        bulkId (a new group whose new subgroup, a new user whose new manager is in the request), while
        the request has room; so do objects waiting for those, and so on. Returns them by position."""
        cx = self.cx
        named = {step.source_id: (step.kind, operation["bulkId"]) for step, operation in chunk if "bulkId" in operation}
        room = self._ceiling - len(chunk) if cx.waiters and self.references.allows(chunk) else 0
        payload_room: float | None = None  # measured when a first candidate is found
        joined: dict[int, Referrer] = {}
        frontier = list(named)
        while frontier and room > 0:
            candidates = [(entry, referrer) for entry in cx.waiters.of(frontier.pop())
                          if (referrer := self._as_referrer(entry, named)) is not None]
            if not candidates:
                continue
            absent = await cx.listing.absent_from_listing(
                [(r.kind, r.read.source_id, r.read.canonical) for _, r in candidates])
            if payload_room is None:
                limit = cx.destination.features.bulk_max_payload or DEFAULT_MAX_PAYLOAD
                payload_room = limit * PAYLOAD_SHARE - ENVELOPE_BYTES - sum(operation_cost(op) for _, op in chunk)
            for entry, referrer in candidates:
                if entry.done or referrer.read.source_id not in absent or room <= 0:
                    continue  # done: joined meanwhile (it waits for several of these creates)
                if not self.references.allows(chunk):
                    return joined  # another request became the trial, or the trial said no (meanwhile)
                entry.done = True  # from here on it is ours: written in this request, or planned again after it
                entry.read = dataclasses.replace(entry.read, canonical={})
                placeholders = referrer.targets_by({bulk_id: f"bulkId:{bulk_id}" for _, bulk_id in referrer.named.values()})
                steps = await cx.planner.plan_batch(referrer.kind, [referrer.read], None, targets=placeholders)
                operation = self._operation(steps[0], True) if len(steps) == 1 and steps[0].action == CREATE else None
                cost = operation_cost(operation) if operation is not None else 0
                if operation is None or cost > payload_room or not self.references.allows(chunk, claim=True):
                    replan.append(referrer)  # planned again once this request ran
                    continue
                joined[len(chunk)] = referrer
                chunk.append((steps[0], operation))
                room, payload_room = room - 1, payload_room - cost
                named[referrer.read.source_id] = (referrer.kind, operation["bulkId"])
                frontier.append(referrer.read.source_id)
        return joined

    def _as_referrer(self, entry: Waiting, named: dict[str, tuple[str, str]]) -> Referrer | None:
        """A waiting object that may join a Bulk request creating what it waits for: a new object
        (a create may go in Bulk), small enough, whose every missing reference is created there."""
        cx = self.cx
        if entry.done or entry.moves != cx.moves.count or not cx.policy.create or not entry.pending:
            return None
        if not entry.pending <= named.keys():
            return None
        read = cx.waiters.still_own(entry.read)
        if read.row is not None or len(read.canonical.get("members", ())) > cx.writer.members.chunk:
            return None
        return Referrer(entry.kind, read, (dict(entry.targets[0]), dict(entry.targets[1])),
                        {source_id: named[source_id] for source_id in entry.pending})

    async def _send(self, chunk: Chunk, joined: dict[int, Referrer], replan: list[Referrer]) -> list[Step]:
        """Send one Bulk request; apply each operation's result; return the steps to redo singly.
        Objects that joined it (`joined`, by position) and fail are planned again after the batch."""
        cx = self.cx
        try:
            results = await cx.destination.bulk([operation for _, operation in chunk])
        except AuthError as exc:
            cx.fatal = exc
            return []
        except ScimError as exc:
            if isinstance(exc, ScimStatusError) and exc.status == 413:
                self.size = self._ceiling = max(1, self.size // 2)
            if not isinstance(exc, ScimStatusError) or exc.status >= 500:
                # the server may have carried the request out: creates look before they post again
                cx.writer.maybe_posted.update((step.kind, step.source_id) for step, _ in chunk if step.action == CREATE)
            log.warning("bulk request of %d operations failed (%s): doing them one by one", len(chunk), exc)
            self.references.unanswered(chunk)  # the trial gave no answer: do without them
            replan.extend(joined.values())
            return [step for index, (step, _) in enumerate(chunk) if index not in joined]
        written: list[tuple[Step, Step, str]] = []  # objects written with bulkId references
        created = {operation["bulkId"]: result.resource_id for (_, operation), result in zip(chunk, results, strict=True)
                   if "bulkId" in operation and result is not None and 200 <= result.status < 300 and result.resource_id}
        redo = []
        for index, ((step, operation), result) in enumerate(zip(chunk, results, strict=True)):
            if result is not None and result.status >= 500 and step.action == CREATE:
                cx.writer.maybe_posted.add((step.kind, step.source_id))
            if result is not None and 200 <= result.status < 300:
                cx.writer.members.taken(members_carried(operation))
            referrer = joined.get(index)
            if referrer is None:
                if result is None or not await self._apply_result(step, result):
                    redo.append(step)
                continue
            sent, complete = step, False
            if result is not None:
                step, complete = referrer.resolved(step, created)
            applied = result is not None and await self._apply_result(step, result)
            if applied and result is not None:
                written.append((sent, step, result.resource_id or ""))
            if not applied or not complete:
                replan.append(referrer)  # failed, or written without a target whose create failed
        if self.references.is_trial(chunk):
            await self._try_references(written)
        return redo

    async def _try_references(self, written: list[tuple[Step, Step, str]]) -> None:
        """The trial request (the first Bulk request with bulkId references) ran: read back one object
        written with them ((as sent, as recorded, destination id)). A server that advertises Bulk but
        stores such references as given would hold wrong members or managers: then every object of
        the request is repaired, and no later request uses them. Neither do they when no object of
        the trial was written (the server may refuse such references)."""
        cx = self.cx
        self.references.judging()
        if not written:
            self.references.judged(False)
            return
        try:
            _, first, dest_id = written[0]
            live = canonicalise(await cx.destination.get(first.kind, dest_id), first.kind)
            assert first.desired is not None
            if reference_values(live, first.kind) == reference_values(first.desired, first.kind):
                self.references.judged(True)
                return
            log.warning("the destination did not resolve the bulkId references of %s %s: repairing the %d "
                        "objects written with them, and not using them again", first.kind, first.label, len(written))
            self.references.judged(False)
            for sent, step, dest_id in written:
                live = canonicalise(await cx.destination.get(step.kind, dest_id), step.kind)
                # what we sent is what we wrote (a member whose target failed included): its bulkId
                # values are ours to replace, which the form recorded no longer says
                await cx.writer.write_operations(plan_adoption(step=step, live=live, dest_id=dest_id, policy=cx.policy,
                                                               previous=sent.desired,
                                                               reason="bulkId references not resolved",
                                                               leaving=cx.removals.leaving))
        except ScimError as exc:
            log.warning("could not check the bulkId references written (%s): not using them", exc)
            self.references.judged(False)

    async def _replan_referrers(self, referrers: list[Referrer]) -> None:
        """Objects that joined a Bulk request and failed there, or were written without a target
        that failed: plan them again now that the batch's other steps ran, with the references that
        resolve (a target written meanwhile is in, one that failed is left out). One by one, in the
        order they joined, which puts targets before the objects that refer to them."""
        cx = self.cx
        for referrer in referrers:
            rows = await cx.store.rows(referrer.kind, [referrer.read.source_id])
            read = dataclasses.replace(referrer.read, row=rows.get(referrer.read.source_id))
            for step in await cx.planner.plan_batch(referrer.kind, [read], None):
                await (dispatch(cx, step, None) if step.action in (NOTHING, SKIP) else cx.writer.run_step(step))

    async def _apply_result(self, step: Step, result: BulkResult) -> bool:
        """Record a successful operation; False when it must be done again by the single path."""
        cx = self.cx
        if step.action == DELETE and (200 <= result.status < 300 or result.status == 404):
            if step.dest_id:
                await cx.removals.note_removed(step.kind, step.dest_id)  # (noted before its row is forgotten)
            await cx.store.forget(step.kind, step.source_id)
            cx.result.counts["deleted"] += 1
            return True
        if not 200 <= result.status < 300:
            return False
        if step.action == CREATE:
            if not result.resource_id:
                return False
            await cx.writer.record(step, result.resource_id, origin="created")
            if isinstance(result.response, dict):  # the server's representation teaches what it keeps
                cx.keeps.answered(step.kind, step.desired, result.response)
            cx.result.counts[created_counter(step)] += 1
            return True
        assert step.dest_id is not None
        if isinstance(result.response, dict):  # a PATCH's answer: what the destination holds, as outside Bulk
            cx.keeps.patched(step.kind, step.dest_id, step.operations, result.response)
        await cx.writer.record(step, step.dest_id, status=DISABLED if step.action == DISABLE else SYNCED)
        if counter := update_counter(step):  # (none for the rest of an adoption or a create: counted as that)
            cx.result.counts[counter] += 1
        if step.action == DISABLE:
            await cx.removals.note_removed(step.kind, step.dest_id)  # out of scope: it leaves its groups too
        return True
