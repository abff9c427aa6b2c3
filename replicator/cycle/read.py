"""Reading the source (`SourceReader`): one kind page by page into the workers, each page triaged
(scope, zero-change fast path, match keys, size) and planned; what still waits for a reference target
at the end of the kind is written with the references that resolve. Also the read of the groups that
define a group-based scope."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from contextlib import aclosing
from typing import Any

from replicator.cycle.context import CycleContext, paging
from replicator.cycle.planner import let_the_loop_run
from replicator.cycle.sinks import dispatch
from replicator.cycle.work import PendingRead, Waiting
from replicator.errors import AuthError, NotFoundError, ScimError
from replicator.pipeline import mapping
from replicator.pipeline.canonical import (
    GROUP,
    USER,
    RawJson,
    canonicalise,
    decode_for_canonical,
    decode_whole,
    match_value,
)
from replicator.pipeline.outcome import Outcome
from replicator.pipeline.plan import ADOPT_REASON, CREATE, CREATE_REST_REASON, PATCH, Step, label_of
from replicator.pipeline.references import translate
from replicator.pipeline.scope import group_member_users, missing_names_problem
from replicator.pipeline.triage import refusal, unchanged_since_last_write
from replicator.scim.paging import ReadReport
from replicator.state.records import SYNCED

log = logging.getLogger("replicator.cycle")

_PAGE_CANON_BATCH = 500



class SourceReader:
    """Reads the source, kind by kind, and plans what it reads."""

    def __init__(self, cx: CycleContext) -> None:
        self.cx = cx

    async def read_scoping_groups(self) -> None:
        """Read the source groups once to learn which users the scoping groups hold."""
        cx = self.cx
        report = ReadReport(kind="source Group (scope)")
        groups: dict[str, tuple[str | None, list[dict[str, Any]]]] = {}
        without_id: list[str] = []
        try:
            async for page in cx.source.iter_pages(GROUP, report, **paging(cx.config.source, GROUP)):
                for group in page:
                    members = group.get("members") if isinstance(group.get("members"), list) else []
                    name = group.get("displayName")  # a group without one is named by no name
                    if not isinstance(group.get("id"), str) or not group["id"]:
                        without_id.append(repr(name) if isinstance(name, str) else "(no displayName)")
                        continue  # its members cannot be told apart from no one's: the scope read is incomplete
                    groups[group["id"]] = (name if isinstance(name, str) else None,
                                           [m for m in members if isinstance(m, dict)])
        except AuthError:
            raise
        except ScimError as exc:
            report.problems.append(str(exc))
        if without_id:
            report.problems.append(f"{len(without_id)} source group(s) without an id skipped")
            cx.result.notes.append(f"source groups read for scope.user_groups: {len(without_id)} without an id "
                                   f"skipped ({', '.join(without_id[:5])}): no user is removed this cycle")
        if not report.complete:
            # what failed, as the read recorded it (a page's error, a group without an id): the operator's first question
            how = "; ".join(report.problems[:3]) or "the read ended early"
            cx.reads.scope_problem = f"the source groups that define the scope could not be read completely ({how})"
        members, missing = group_member_users(groups, cx.scope.user_groups, nested=cx.scope.nested)
        cx.scope.group_members = members
        problem = missing_names_problem("scope.user_groups", missing,
                                        [name for name, _ in groups.values() if name is not None])
        if problem and report.complete:
            cx.halt(problem)

    async def replicate_kind(self, kind: str) -> None:
        cx = self.cx
        cx.bulk.references.next_kind()
        report = ReadReport(kind=f"source {kind}")
        cx.result.reads[report.kind] = report
        held: list[Waiting] = []
        async with cx.workers.running() as send:
            try:
                pages = cx.source.iter_pages(kind, report, **paging(cx.config.source, kind), with_raw=True,
                                             read_before=lambda ids: cx.store.scratch.note_read(kind, ids))
                async with aclosing(pages):
                    async for page in pages:
                        if cx.fatal is not None or cx.stop.is_set():
                            break  # the workers stopped, or we are asked to: reading on would be wasted
                        waiting_before = len(held)
                        steps = await self._plan_page(kind, page, held)
                        await cx.recorder.note_proven_creates(steps, held[waiting_before:])
                        for step in steps:
                            await dispatch(cx, step, send)
                        held[:] = [entry for entry in held if not entry.done]  # memory: keep only the waiting
            except AuthError as exc:
                # raised here, the workers' task group would wrap it in an ExceptionGroup (a traceback,
                # exit 1): `Workers.running` raises it as it is once they stopped
                cx.fatal = cx.fatal or exc
            except ScimError as exc:
                log.error("reading source %s failed: %s", kind, exc)
                cx.result.notes.append(f"source {kind} read failed: {exc}")
        if kind == USER and cx.reads.scope_problem:
            report.problems.append(cx.reads.scope_problem)  # scope unknown: nothing may be removed
        while held and not cx.stop.is_set():
            held = await self._write_held(kind, held)
        # after a complete read, objects read out of scope are no reference targets any more; objects
        # not read still are (a read can miss a live one): those really gone are removed at the end
        # of the cycle, and what names them is planned again by the next
        cx.reads.complete[kind] = report.complete
        if not report.complete:
            cx.result.outcome = Outcome.PARTIAL

    async def _write_held(self, kind: str, held: list[Waiting]) -> list[Waiting]:
        """At the end of a kind: write what still waits. Objects waiting for objects that never got a
        destination id (not in the source, failed, out of scope, or a cycle A in B, B in A) are written
        with the references that do resolve; a second pass then adds the ones that resolve since (to
        an object the first pass created, that PATCH is the rest of its create: counted as it)."""
        cx = self.cx
        left = [entry for entry in held if not entry.done]
        if not left:
            return []
        targets = await cx.planner.targets(kind, [e.read.canonical for e in left])
        ready = [e for e in left if not translate(e.read.canonical, kind, *targets)[1]]
        forced = not ready
        if forced:
            ready = left
        for entry in ready:
            entry.done = True
        created = await self._plan_and_write(kind, [cx.waiters.still_own(e.read) for e in ready])
        if not forced:
            return [e for e in left if not e.done]
        targets = await cx.planner.targets(kind, [e.read.canonical for e in ready])
        again = [e for e in ready if not translate(e.read.canonical, kind, *targets)[1]]
        if again and not cx.stop.is_set():
            rows = await cx.store.rows(kind, [e.read.source_id for e in again])  # planned against what was written
            batch = [cx.waiters.still_own(dataclasses.replace(e.read, row=rows.get(e.read.source_id))) for e in again]
            await self._plan_and_write(kind, batch, completing=created)
        return []

    async def _plan_and_write(self, kind: str, batch: list[PendingRead], completing: set[str] | None = None) -> set[str]:
        """Plan these reads and write them (the workers done when it returns); return the source ids
        planned as creates. A PATCH of one in `completing` (created without some references) is the
        rest of its create (an adopted one's is the rest of its adoption already)."""
        cx = self.cx
        created = set()
        async with cx.workers.running() as send:
            for index in range(0, len(batch), _PAGE_CANON_BATCH):
                for step in await cx.planner.plan_batch(kind, batch[index : index + _PAGE_CANON_BATCH], None):
                    if step.action == CREATE:
                        created.add(step.source_id)
                    elif step.action == PATCH and completing and step.source_id in completing and step.reason != ADOPT_REASON:
                        step = dataclasses.replace(step, reason=CREATE_REST_REASON)
                    await dispatch(cx, step, send)
        return created

    async def _plan_page(
        self, kind: str, page: list[tuple[str, RawJson]], held: list[Waiting]
    ) -> list[Step]:
        cx = self.cx
        # what the zero-change check needs is read (in SQLite's thread) while this thread hashes the page
        reading = asyncio.ensure_future(  # noqa: RUF006 (awaited below)
            cx.store.unchanged_marks(kind, [source_id for source_id, _ in page]))
        await asyncio.sleep(0)  # let the query start
        digests = [self._source_digest(kind, raw) for _, raw in page]
        marks = await reading
        match_attribute = cx.match_attribute(kind)
        out_of_scope: dict[str, str] = {}
        changed: list[str] = []
        claims: list[tuple[str, str]] = []  # (folded match key, source id), in the order of the read
        candidates: list[tuple[str, dict[str, Any], str]] = []
        for index, source_digest in enumerate(digests):  # (not a zip of the page: it would hold the last bytes)
            source_id, raw = page[index]
            await let_the_loop_run(index)
            resource = None
            if cx.scope.configured:
                resource = self._decode(kind, raw)
                if kind == GROUP and (listed := cx.scope.listed_group_name(resource.get("displayName"))):
                    cx.reads.group_names_read.add(listed)  # as configured: what the missing-names note compares
                excluded = cx.scope.exclusion(kind, resource)
                if excluded:
                    out_of_scope[source_id] = excluded
                    cx.result.counts["out_of_scope"] += 1
                    cx.reads.out_of_scope[kind] += 1
                    continue  # if we replicated it, it is deprovisioned like a removed object
            if self._unchanged_since_last_write(marks.get(source_id), source_digest):
                continue
            changed.append(source_id)
            if resource is None:
                resource = self._decode(kind, raw)
            page[index] = (source_id, b"")  # memory: a large group's bytes are not held beside its decoded and
            raw = b""                        # canonical forms (the page's list is the reader's own; the payload
                                             # goes with the last of its resources)
            if kind == GROUP and "members" not in resource:
                resource = await self._group_with_members(resource)
            canonical, dropped = cx.destination.storable(kind, mapping.apply(canonicalise(resource, kind), cx.rules[kind]))
            if dropped:
                cx.reads.not_kept[kind].update(dropped)
            resource = None  # memory: a large group's decoded form is not kept while the page is planned
            key = match_value(canonical, match_attribute)
            if key is None:
                await cx.recorder.fail(kind, source_id, label_of(canonical, kind), f"has no usable {match_attribute}",
                                       source_digest)
                continue
            claims.append((key.casefold(), source_id))
            candidates.append((source_id, canonical, source_digest))
        await cx.store.scratch.mark_read(kind, out_of_scope=out_of_scope, changed=changed)
        if not candidates:
            return []
        # a match key is taken by the first changed object of this cycle to claim it, or by an
        # unchanged object read so far (this page included) that last wrote it
        owners = await cx.store.scratch.claim_keys(kind, claims)
        holders = await cx.store.scratch.key_holders(kind, list(owners))
        rows = await cx.store.rows(kind, [source_id for source_id, _, _ in candidates])
        batch = []
        for (source_id, canonical, source_digest), (key, _) in zip(candidates, claims, strict=True):
            owner = owners[key] if owners[key] != source_id else holders.get(key, source_id)
            problem = refusal(canonical, source_id, owner, match_attribute, cx.policy.max_resource_bytes)
            if problem:
                await cx.recorder.fail(kind, source_id, label_of(canonical, kind), problem, source_digest)
            else:
                batch.append(PendingRead(source_id, canonical, source_digest, rows.get(source_id)))
        return await cx.planner.plan_batch(kind, batch, held)

    async def _group_with_members(self, group: dict[str, Any]) -> dict[str, Any]:
        """A listed group without a `members` attribute: some servers leave members out of listings,
        and reading that as 'no members' would empty the group on the destination. Read it alone."""
        try:
            whole = await self.cx.source.get(GROUP, group["id"])
        except NotFoundError:
            return group
        return whole if whole.get("id") == group["id"] else group

    def _decode(self, kind: str, raw: RawJson) -> dict[str, Any]:
        """A source object's JSON, decoded for its canonical form (`decode_for_canonical`); whole when a
        group filter may read what the canonical form leaves out of a member (its display, its $ref)."""
        if kind == GROUP and self.cx.scope.group_filter:
            return decode_whole(raw)
        return decode_for_canonical(raw, kind)

    def _source_digest(self, kind: str, raw: RawJson) -> str:
        """Digest of the source object exactly as read, salted with the mapping rules in force."""
        digest_ = hashlib.blake2b(raw, digest_size=16, key=self.cx.rules_key[kind])
        return digest_.hexdigest()

    def _unchanged_since_last_write(self, mark: tuple[str | None, str] | None, source_digest: str) -> bool:
        """The zero-change fast path (`unchanged_since_last_write`), counted."""
        if not unchanged_since_last_write(mark, source_digest, full=self.cx.full, synced=SYNCED):
            return False
        self.cx.result.counts["unchanged"] += 1
        return True
