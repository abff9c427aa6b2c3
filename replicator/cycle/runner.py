"""One replication cycle (the Cycle class, all of its stages for now): read the source, plan against state (and the live destination), write, record.

Order of work: Users, then Groups (members need user ids), then removals (groups before users).
Each kind is read page by page into a bounded queue feeding `concurrency` workers, so a slow
destination pushes back on the reader instead of filling memory. Nothing per object is kept in memory
across pages: the state rows of a page, the destination ids of its references, which ids were read and
which match keys are taken are in the state store (its scratch tables for this cycle). Results are
recorded in the state as they succeed. An object whose reference (member, manager) points at an object
not written yet waits for it and is written once it is; what still waits at the end of a kind (the
target failed, is absent, or A and B refer to each other) is written with the references that resolve,
then planned again. With SCIM Bulk, a new object waiting for a create that a Bulk request carries
joins that request and names its target by bulkId. An object written without some of its references
records no source digest, so the next cycle plans it again. Removals happen only after complete,
trustworthy reads.

`mode="incremental"` compares with what we last wrote; `mode="full"` also lists the destination and
repairs drift there. `dry_run` plans everything and writes nothing (neither destination nor state).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import itertools
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import Any

import anyio
import msgspec

from replicator.config import Config, SideConfig, compile_rules
from replicator.cycle.result import FULL, INCREMENTAL, CycleResult
from replicator.cycle.work import (
    Listing,
    PendingRead,
    Referrer,
    RemovalVerdict,
    StepQueue,
    Unread,
    Waiting,
)
from replicator.errors import (
    AuthError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    ProtocolError,
    ReplicatorError,
    ScimError,
    ScimStatusError,
    ServerError,
    StateError,
    TransportError,
)
from replicator.pipeline import mapping
from replicator.pipeline.answers import answered_member_values, members_left_out
from replicator.pipeline.canonical import (
    GROUP,
    KINDS,
    USER,
    canonicalise,
    digest,
    encode,
    match_value,
    schemas_for,
)
from replicator.pipeline.outcome import cycle_outcome, failure_backoff
from replicator.pipeline.patch import apply_operations, chunk_requests
from replicator.pipeline.plan import (
    CREATE,
    DELETE,
    DISABLE,
    NOTHING,
    PATCH,
    RECORD,
    RECREATE_REASON,
    SKIP,
    Step,
    Stored,
    created_counter,
    label_of,
    plan_adoption,
    plan_member_drop,
    plan_removal,
    plan_upsert,
    removal_guard,
)
from replicator.pipeline.references import reference_values, referenced_ids, translate, value_fragments
from replicator.pipeline.scope import empty_scope_problem, group_member_users, missing_names_problem
from replicator.scim.client import ScimClient
from replicator.scim.filters import render
from replicator.scim.paging import ReadReport
from replicator.scim.wire import BulkResult
from state import ResourceRow, StateStore
from state.records import CREATING, DISABLED, SYNCED

log = logging.getLogger("replicator.cycle")

_PAGE_CANON_BATCH = 500
# planning yields to the event loop every this many objects: planning a page of 500 in one go holds
# the loop for tens of milliseconds, and every answer that arrives meanwhile waits for it
_PLAN_STRIDE = 32
_GROUP_PAGE = 50
_GROUP_PAGE_BYTES = 2_000_000  # about 15k members
_FAILURES_LISTED = 1000  # failures kept for the cycle's report (the state keeps all of them)
_REMOVALS_KEPT = 10_000  # removal candidates kept in memory between counting and removing
_HELD_LISTED = 50  # held removals listed by name in the report (all are counted)
_BULK_LINGER_ROUNDS = 5  # of 1 ms: how long a worker waits to fill a Bulk request
_CREATE_ATTEMPTS = 3  # a POST whose answer was lost is looked up before it is sent again
# may new objects name their targets by bulkId in the Bulk request that creates them? Untried; on trial
# (the first such request runs, and no other uses them until it is judged); on; off (the destination
# stores them as given)
_REFERENCES_UNTRIED, _REFERENCES_ON_TRIAL, _REFERENCES_ON, _REFERENCES_OFF = "untried", "on trial", "on", "off"


class Cycle:
    """Runs one cycle. Construct, then `await run()`."""

    def __init__(
        self,
        config: Config,
        source: ScimClient,
        destination: ScimClient,
        store: StateStore,
        *,
        mode: str = INCREMENTAL,
        dry_run: bool = False,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.config = config
        self.stop = stop or asyncio.Event()  # set: stop reading, finish in-flight calls, record, return
        self.policy = config.sync
        self.source = source
        self.destination = destination
        self.store = store
        self.mode = mode
        self.dry_run = dry_run
        self.result = CycleResult(mode=mode, dry_run=dry_run)
        self._read_complete: dict[str, bool] = {USER: False, GROUP: False}
        self.dest: dict[str, Listing | None] = {USER: None, GROUP: None}
        self._overlay: dict[tuple[str, str], Stored] = {}  # dry-run: what the planned writes would leave
        self._written: set[tuple[str, str]] = set()  # dry-run: objects planned this cycle
        self._started_at = time.time()  # written since then: written by this cycle
        self._planned: dict[tuple[str, str], Step] = {}  # dry-run: the plan, one step per object
        self._fatal: BaseException | None = None
        self._transport_failures = 0  # consecutive operations lost to transport errors
        self._recovering = False  # the previous run did not finish: list the destination to adopt
        self.scope, self.rules = compile_rules(config)
        self._scope_problem: str | None = None
        self._halted: str | None = None  # a scope that matches nothing: the cycle stopped before writing
        self._read_out_of_scope: Counter[str] = Counter()
        self._group_names_read: set[str] = set()  # of scope.group_names, those the source has
        self._removals: dict[str, RemovalVerdict] = {}  # per kind: what the guard decided, before any removal
        self._waiters: dict[str, list[Waiting]] = {}  # target source id -> objects waiting for it
        self._moves = 0  # objects that got another destination id this cycle (re-created, taken over)
        self._taken_over: set[tuple[str, str]] = set()  # objects whose destination object another took
        self._steps: StepQueue | None = None  # the queue of the workers running now
        self._listing_lock = asyncio.Lock()
        self._bulk_size = 1  # operations a worker gathers into one request: set once the server is known
        self._bulk_ceiling = 1  # operations one Bulk request may hold, objects that join it included
        self._bulk_ids = itertools.count(1)
        self._bulk_references = _REFERENCES_UNTRIED  # may new objects join the Bulk request creating their targets?
        self._bulk_trial: list[tuple[Step, dict[str, Any]]] | None = None  # the Bulk request that tries them
        self._maybe_posted: set[tuple[str, str]] = set()  # creates whose Bulk request's answer was lost
        self._noted: set[tuple[str, str]] = set()  # creates noted in the state and not yet done
        # objects whose create an earlier run noted and never recorded (a crash): what a destination
        # object under their key holds is what we put there
        self._unfinished_creates: set[tuple[str, str]] = set()
        # destination ids that stopped naming our objects this cycle: groups and users that name a
        # re-created one are planned again; groups naming a deleted one lose that member at the end
        self._recreated_dest_ids: set[str] = set()
        self._removed_dest_ids: dict[str, set[str]] = {kind: set() for kind in KINDS}
        self._replanned_for: dict[str, set[str]] = {kind: set() for kind in KINDS}  # gone ids handled, by kind
        self._rules_key = {kind: mapping.rules_key(self.rules[kind]) for kind in (USER, GROUP)}

    # -- the cycle ------------------------------------------------------------------------------

    async def run(self) -> CycleResult:
        """Run the cycle and record it. A cycle that does not finish its plan is never recorded `ok`:
        `failed` when an error stops it, `interrupted` when it is stopped (the stop event, a
        cancellation, KeyboardInterrupt), with the phase it reached; the next run then recovers."""
        started = time.monotonic()
        self._phase = "discovery"  # how far the cycle got (`_run` moves it on): users, groups, removals
        self._recovering = await self.store.runs.last_run_unfinished()
        await self.store.scratch.begin_cycle()
        run_id = None if self.dry_run else await self.store.runs.start_run(self.mode, self.dry_run)
        try:
            await self._run()
        except ReplicatorError as exc:
            self.result.outcome = "failed"
            self.result.notes.append(str(exc))
            raise
        except Exception:
            self.result.outcome = "failed"
            raise
        except BaseException:  # cancelled, KeyboardInterrupt: stopped before the end of the plan
            self.result.outcome = "interrupted"
            raise
        finally:
            if self.result.outcome in ("interrupted", "failed"):
                self.result.notes.append(f"{self.result.outcome} during {self._phase}")
            self.result.seconds = time.monotonic() - started
            self.result.source_requests = dict(self.source.requests)
            self.result.destination_requests = dict(self.destination.requests)
            self.result.destination_flow = self.destination.flow()
            if run_id is not None:
                counts = self.result.summary()
                if self.result.outcome in ("interrupted", "failed"):
                    counts["phase"] = self._phase
                await self.store.runs.finish_run(run_id, self.result.outcome, counts)  # (survives cancellation)
        return self.result

    async def _run(self) -> None:
        await self.source.discover()
        features = await self.destination.discover()
        if self.policy.bulk == "auto" and features.bulk and features.patch and not self.dry_run:
            self._bulk_size = max(1, min(self.policy.bulk_size, features.bulk_max_operations or self.policy.bulk_size))
            self._bulk_ceiling = max(self._bulk_size, features.bulk_max_operations)
        await self._replicate()
        if self.dry_run:
            self.result.changes = list(self._planned.values())
            self.result.counts.update(f"{step.action}_planned" for step in self.result.changes)
        counts = self.result.counts
        self.result.outcome = cycle_outcome(
            self.result.outcome, stopped=self.stop.is_set(), failed=bool(counts["failed"]),
            held=bool(counts["removals_held"] or counts["member_removals_held"] or self._halted),
            backing_off=bool(counts["backing_off"]))
        if self.result.counts["backing_off"]:
            self.result.notes.append(f"{self.result.counts['backing_off']} objects that failed wait for their retry "
                                     "delay (`status` lists them; --full tries them at once)")

    async def _replicate(self) -> None:
        """The phases: scope groups, users, groups, removals. A scope that matches nothing stops it
        before anything is written for the kind it empties (and anything after it)."""
        kinds = KINDS if self.policy.groups else (USER,)
        if self.scope.needs_groups_first:
            self._phase = "scope groups"
            await self._read_scoping_groups()
            if self._halted:
                return
        for kind in kinds:
            if self.stop.is_set():
                break  # asked to stop: no further kind is read
            self._phase = f"{kind.lower()}s"
            if self.mode == FULL or self._recovering or await self.store.count(kind) == 0:
                self.dest[kind] = await self._list_destination(kind)
            if kind == GROUP:
                await self._replan_referrers_of_gone(GROUP)  # users re-created so far: before groups are read
            await self._replicate_kind(kind)
            if await self._scope_matches_nothing(kind):
                return
            if kind == USER and GROUP in kinds and self._read_complete[USER] and not self.stop.is_set():
                # users whose removal the guard holds stay members of the groups planned next
                await self._judge_removals(USER)
        if not self.stop.is_set():
            self._phase = "removals"
        await self._remove_vanished(kinds)
        await self._drop_removed_members()
        for kind in KINDS:  # for the next cycle: what this one re-created since
            await self._replan_referrers_of_gone(kind)

    def _halt(self, problem: str) -> None:
        """Stop the cycle before it writes what a scope mistake would: the outcome is held (exit 4)."""
        if self.policy.allow_mass_delete:
            self.result.notes.append(f"{problem} (going on: mass removal allowed)")
            return
        self._halted = problem
        self.result.notes.append(f"{problem}: stopped before any change; fix the scope (only if every "
                                 "replicated object is meant to leave it: --allow-mass-delete)")
        log.error("scope matches nothing: %s", problem)

    async def _scope_matches_nothing(self, kind: str) -> bool:
        """After a complete read of a kind: whether the scope kept out every object of it we replicate,
        or names groups the source does not have; the cycle then stops (held)."""
        if not self._read_complete[kind] or self.stop.is_set() or not self.scope.configured:
            return False
        if kind == GROUP and self.scope.group_names:
            # a group listed before it exists is common: a note (the removal guard covers the rest)
            missing = missing_names_problem("scope.group_names", sorted(self.scope.group_names - self._group_names_read),
                                            ())
            if missing:
                self.result.notes.append(missing)
        in_scope = await self.store.scratch.in_scope_count(kind)
        problem = empty_scope_problem(kind, self.scope, read=in_scope + self._read_out_of_scope[kind],
                                      in_scope=in_scope, tracked=await self.store.count(kind))
        if problem:
            self._halt(problem)
        return self._halted is not None

    async def _read_scoping_groups(self) -> None:
        """Read the source groups once to learn which users the scoping groups hold."""
        report = ReadReport(kind="source Group (scope)")
        groups: dict[str, tuple[str, list[dict[str, Any]]]] = {}
        try:
            async for page in self.source.iter_pages(GROUP, report, **_paging(self.config.source, GROUP)):
                for group in page:
                    members = group.get("members") if isinstance(group.get("members"), list) else []
                    groups[group["id"]] = (str(group.get("displayName")), [m for m in members if isinstance(m, dict)])
        except AuthError:
            raise
        except ScimError as exc:
            report.problems.append(str(exc))
        if not report.complete:
            self._scope_problem = "the source groups that define the scope could not be read completely"
        members, missing = group_member_users(groups, self.scope.user_groups, nested=self.scope.nested)
        self.scope.group_members = members
        problem = missing_names_problem("scope.user_groups", missing, [name for name, _ in groups.values()])
        if problem and report.complete:
            self._halt(problem)

    async def _list_destination(self, kind: str) -> Listing:
        report = ReadReport(kind=f"destination {kind}")
        self.result.reads[report.kind] = report
        with_forms = self.mode == FULL
        attribute = self._match_attribute(kind)
        await self.store.scratch.forget_listing(kind)
        count = 0
        pages = self.destination.iter_pages(kind, report, **_paging(self.config.destination, kind),
                                            read_before=lambda ids: self.store.scratch.listed_before(kind, ids))
        try:
            async with aclosing(pages):
                async for page in pages:
                    listed = []
                    for resource in page:
                        canonical = canonicalise(resource, kind)
                        key = match_value(canonical, attribute)
                        listed.append((resource["id"], None if key is None else key.casefold(),
                                       canonical if with_forms else None))
                    await self.store.scratch.note_listed(kind, listed)
                    count += len(listed)
        except AuthError:
            raise
        except ScimError as exc:
            log.warning("destination %s listing failed, falling back to lookups: %s", kind, exc)
        if not report.complete:
            self.result.notes.append(f"destination {kind} listing incomplete: {'; '.join(report.problems) or 'short read'}")
            if self.mode == FULL:
                self.result.outcome = "partial"  # objects it left out were not compared with the destination
        return Listing(complete=report.complete, with_forms=with_forms, listed=count)

    # -- one kind -------------------------------------------------------------------------------

    @asynccontextmanager
    async def _workers(self) -> AsyncIterator[StepQueue]:
        """`concurrency` workers taking steps from a queue; on exit, waits until all work is done.

        The reader's puts are bounded (memory stays flat however large the source); steps released
        by finished writes (objects that waited for them) are queued without bound, so a worker never
        blocks on its own queue. A plain asyncio.Queue: anyio's memory streams add a scheduling
        checkpoint to every item, which measured as a quarter of the per-object CPU time. The bound
        leaves room for a whole page beyond what the workers hold, so that while the reader fetches
        and plans the next page the workers still have a page of work."""
        steps = StepQueue(self.config.concurrency * max(2, self._bulk_size) + self.config.source.page_size)
        previous, self._steps = self._steps, steps
        try:
            async with anyio.create_task_group() as tg:
                for _ in range(self.config.concurrency):
                    tg.start_soon(self._worker, steps)
                try:
                    yield steps
                    await steps.queue.join()  # includes steps released while others still run
                finally:
                    for _ in range(self.config.concurrency):
                        steps.queue.put_nowait(None)
        finally:
            self._steps = previous
        if self._fatal is not None:
            raise self._fatal

    async def _replan_referrers_of_gone(self, kind: str) -> None:
        """Objects of `kind` naming a destination id that is gone are planned again (the zero-change
        path would keep a re-created member out of its unchanged group)."""
        fresh = self._recreated_dest_ids - self._replanned_for[kind]
        if fresh and not self.dry_run:
            forms = await self.store.forms.written_forms_containing(kind, value_fragments(fresh))
            naming = [sid for sid, _, written in forms if reference_values(written, kind) & fresh]
            await self.store.forms.forget_source_digests(kind, naming)
        self._replanned_for[kind] |= fresh

    async def _drop_removed_members(self) -> None:
        """Groups we wrote that name an object this cycle deleted lose that member now: a source that
        keeps deleted users among members leaves the group unchanged, and a destination that does not
        drop them itself would keep it. Later cycles plan such a group again (its source names an
        object we no longer have), so that an object back in scope rejoins it."""
        removed = self._removed_dest_ids
        if not any(removed.values()) or self.dry_run or self.stop.is_set():
            return
        steps = []
        for source_id, dest_id, written in await self.store.forms.written_forms_containing(
                GROUP, value_fragments(set().union(*removed.values()))):
            step = plan_member_drop(source_id=source_id, label=label_of(written, GROUP), written=written,
                                    dest_id=dest_id, gone_users=removed[USER], gone_groups=removed[GROUP])
            if step is not None:
                steps.append(step)
        # planned again next cycle, also when its PATCH fails here (a failure keeps the old digest)
        await self.store.forms.forget_source_digests(GROUP, [step.source_id for step in steps])
        for step in steps:
            await self._run_step(step)

    async def _replicate_kind(self, kind: str) -> None:
        if self._bulk_references == _REFERENCES_ON:
            # a server may resolve bulkId in a manager and not in members, or the other way round
            self._bulk_references = _REFERENCES_UNTRIED
        report = ReadReport(kind=f"source {kind}")
        self.result.reads[report.kind] = report
        held: list[Waiting] = []
        async with self._workers() as send:
            try:
                pages = self.source.iter_pages(kind, report, **_paging(self.config.source, kind), with_raw=True,
                                               read_before=lambda ids: self.store.scratch.note_read(kind, ids))
                async with aclosing(pages):
                    async for page in pages:
                        if self._fatal is not None or self.stop.is_set():
                            break  # the workers stopped, or we are asked to: reading on would be wasted
                        waiting_before = len(held)
                        steps = await self._plan_page(kind, page, held)
                        await self._note_proven_creates(steps, held[waiting_before:])
                        for step in steps:
                            await self._dispatch(step, send)
                        held[:] = [entry for entry in held if not entry.done]  # memory: keep only the waiting
            except AuthError as exc:
                # raised here, the workers' task group would wrap it in an ExceptionGroup (a traceback,
                # exit 1): `_workers` raises it as it is once they stopped
                self._fatal = self._fatal or exc
            except ScimError as exc:
                log.error("reading source %s failed: %s", kind, exc)
                self.result.notes.append(f"source {kind} read failed: {exc}")
        if kind == USER and self._scope_problem:
            report.problems.append(self._scope_problem)  # scope unknown: nothing may be removed
        while held and not self.stop.is_set():
            held = await self._write_held(kind, held)
        # after a complete read, objects read out of scope are no reference targets any more; objects
        # not read still are (a read can miss a live one): those really gone are removed at the end
        # of the cycle, and what names them is planned again by the next
        self._read_complete[kind] = report.complete
        if not report.complete:
            self.result.outcome = "partial"

    async def _write_held(self, kind: str, held: list[Waiting]) -> list[Waiting]:
        """At the end of a kind: write what still waits. Objects waiting for objects that never got a
        destination id (not in the source, failed, out of scope, or a cycle A in B, B in A) are written
        with the references that do resolve; a second pass then adds the ones that resolve since."""
        left = [entry for entry in held if not entry.done]
        if not left:
            return []
        targets = await self._targets(kind, [e.read.canonical for e in left])
        ready = [e for e in left if not translate(e.read.canonical, kind, *targets)[1]]
        forced = not ready
        if forced:
            ready = left
        for entry in ready:
            entry.done = True
        async with self._workers() as send:
            batch = [self._still_own(e.read) for e in ready]
            for index in range(0, len(batch), _PAGE_CANON_BATCH):
                for step in await self._plan_batch(kind, batch[index : index + _PAGE_CANON_BATCH], None):
                    await self._dispatch(step, send)
        if not forced:
            return [e for e in left if not e.done]
        targets = await self._targets(kind, [e.read.canonical for e in ready])
        again = [e for e in ready if not translate(e.read.canonical, kind, *targets)[1]]
        rows = await self.store.rows(kind, [e.read.source_id for e in again])  # planned against what was written
        return [Waiting(kind, dataclasses.replace(e.read, row=rows.get(e.read.source_id)), set(), targets, self._moves)
                for e in again]

    def _wait_for(self, kind: str, read: PendingRead, unresolved: list[str],
                  targets: tuple[dict[str, str], dict[str, str]], held: list[Waiting]) -> None:
        users, groups = referenced_ids(read.canonical, kind)
        known = ({sid: targets[0][sid] for sid in users if sid in targets[0]},
                 {sid: targets[1][sid] for sid in groups if sid in targets[1]})
        entry = Waiting(kind, read, set(unresolved), known, self._moves)
        held.append(entry)
        for target in unresolved:
            self._waiters.setdefault(target, []).append(entry)

    async def _release_waiters(self, kind: str, target: str, dest_id: str) -> None:
        """`target` (of `kind`) now has a destination id: plan the objects that were waiting only for it.

        Their steps join the workers' queue without waiting for room (a worker that waited for room
        in its own queue could block them all)."""
        for entry in self._waiters.pop(target, ()):
            entry.targets[0 if kind == USER else 1][target] = dest_id
            entry.pending.discard(target)
            if entry.done or entry.pending:
                continue
            entry.done = True
            read = self._still_own(entry.read)
            entry.read = dataclasses.replace(entry.read, canonical={})  # the form is no longer kept
            targets = entry.targets if entry.moves == self._moves else None  # None: ask the state again
            for step in await self._plan_batch(entry.kind, [read], None, targets=targets):
                await self._dispatch(step, None)

    def _still_own(self, read: PendingRead) -> PendingRead:
        """A read planned later than it was made: if another source object took its destination
        object meanwhile (adoption), it has none any more."""
        if read.row is not None and (read.row.kind, read.source_id) in self._taken_over:
            return dataclasses.replace(read, row=None)
        return read

    async def _targets(self, kind: str, canonicals: list[dict[str, Any]]) -> tuple[dict[str, str], dict[str, str]]:
        """(user, group) source id -> destination id, for the references these objects make."""
        users: list[str] = []
        groups: list[str] = []
        for canonical in canonicals:
            more_users, more_groups = referenced_ids(canonical, kind)
            users.extend(more_users)
            groups.extend(more_groups)
        return await self._dest_ids(USER, users), await self._dest_ids(GROUP, groups)

    async def _dest_ids(self, kind: str, source_ids: list[str]) -> dict[str, str]:
        """The destination ids these objects have now, for use as reference targets."""
        if not source_ids:
            return {}
        wanted = list(dict.fromkeys(source_ids))
        found: dict[str, str] = {}
        if self._overlay:
            for source_id in wanted:
                planned = self._overlay.get((kind, source_id))
                if planned is not None:
                    found[source_id] = planned.dest_id
            wanted = [source_id for source_id in wanted if source_id not in found]
        # objects read out of scope are no targets after a complete read, unless their removal is held
        leaving = self._read_complete[kind] and not self._removals_held(kind)
        found.update(await self.store.dest_ids(kind, wanted, not_out_of_scope=leaving))
        listing = self.dest[kind]
        if self.mode == FULL and listing is not None and listing.complete:
            # objects deleted on the destination are no reference targets until re-created
            listed = await self.store.scratch.listed_before(kind, list(found.values()))
            written = await self._written_now(kind, [sid for sid, did in found.items() if did not in listed])
            found = {sid: did for sid, did in found.items() if did in listed or sid in written}
        return found

    async def _written_now(self, kind: str, source_ids: list[str]) -> set[str]:
        """Those of these objects this cycle wrote (or, dry-run, planned)."""
        if self.dry_run:
            return {sid for sid in source_ids if (kind, sid) in self._written}
        return await self.store.written_since(kind, source_ids, self._started_at) if source_ids else set()

    async def _plan_page(
        self, kind: str, page: list[tuple[str, bytes]], held: list[Waiting]
    ) -> list[Step]:
        # what the zero-change check needs is read (in SQLite's thread) while this thread hashes the page
        reading = asyncio.ensure_future(  # noqa: RUF006 (awaited below)
            self.store.unchanged_marks(kind, [source_id for source_id, _ in page]))
        await asyncio.sleep(0)  # let the query start
        digests = [self._source_digest(kind, raw) for _, raw in page]
        marks = await reading
        match_attribute = self._match_attribute(kind)
        out_of_scope: dict[str, str] = {}
        changed: list[str] = []
        claims: list[tuple[str, str]] = []  # (folded match key, source id), in the order of the read
        candidates: list[tuple[str, dict[str, Any], str]] = []
        for index, ((source_id, raw), source_digest) in enumerate(zip(page, digests, strict=True)):
            await _let_the_loop_run(index)
            resource = None
            if self.scope.configured:
                resource = _decode_resource(raw)
                if kind == GROUP and resource.get("displayName") in self.scope.group_names:
                    self._group_names_read.add(resource["displayName"])
                excluded = self.scope.exclusion(kind, resource)
                if excluded:
                    out_of_scope[source_id] = excluded
                    self.result.counts["out_of_scope"] += 1
                    self._read_out_of_scope[kind] += 1
                    continue  # if we replicated it, it is deprovisioned like a removed object
            if self._unchanged_since_last_write(marks.get(source_id), source_digest):
                continue
            changed.append(source_id)
            if resource is None:
                resource = _decode_resource(raw)
            if kind == GROUP and "members" not in resource:
                resource = await self._group_with_members(resource)
            canonical = mapping.apply(canonicalise(resource, kind), self.rules[kind])
            resource = None  # memory: a large group's decoded form is not kept while the page is planned
            key = match_value(canonical, match_attribute)
            if key is None:
                await self._fail(kind, source_id, label_of(canonical, kind), f"has no usable {match_attribute}",
                                 source_digest)
                continue
            claims.append((key.casefold(), source_id))
            candidates.append((source_id, canonical, source_digest))
        await self.store.scratch.mark_read(kind, out_of_scope=out_of_scope, changed=changed)
        if not candidates:
            return []
        # a match key is taken by the first changed object of this cycle to claim it, or by an
        # unchanged object read so far (this page included) that last wrote it
        owners = await self.store.scratch.claim_keys(kind, claims)
        holders = await self.store.scratch.key_holders(kind, list(owners))
        rows = await self.store.rows(kind, [source_id for source_id, _, _ in candidates])
        batch = []
        for (source_id, canonical, source_digest), (key, _) in zip(candidates, claims, strict=True):
            owner = owners[key] if owners[key] != source_id else holders.get(key, source_id)
            problem = self._refuse(canonical, source_id, owner, match_attribute)
            if problem:
                await self._fail(kind, source_id, label_of(canonical, kind), problem, source_digest)
            else:
                batch.append(PendingRead(source_id, canonical, source_digest, rows.get(source_id)))
        return await self._plan_batch(kind, batch, held)

    async def _group_with_members(self, group: dict[str, Any]) -> dict[str, Any]:
        """A listed group without a `members` attribute: some servers leave members out of listings,
        and reading that as 'no members' would empty the group on the destination. Read it alone."""
        try:
            whole = await self.source.get(GROUP, group["id"])
        except NotFoundError:
            return group
        return whole if whole.get("id") == group["id"] else group

    def _source_digest(self, kind: str, raw: bytes) -> str:
        """Digest of the source object exactly as read, salted with the mapping rules in force."""
        digest_ = hashlib.blake2b(raw, digest_size=16, key=self._rules_key[kind])
        return digest_.hexdigest()

    def _unchanged_since_last_write(self, mark: tuple[str | None, str] | None, source_digest: str) -> bool:
        """Zero-change fast path: the source sent the very bytes it sent when we last wrote the object
        (`mark`: the digest then and the object's status, None when it has no row).

        Skips canonicalising and planning. Not in full mode, which compares everything with the
        destination (and so also catches a reference whose target was re-created meanwhile)."""
        if self.mode == FULL or mark is None or mark != (source_digest, SYNCED):
            return False
        self.result.counts["unchanged"] += 1
        return True

    def _refuse(self, canonical: dict[str, Any], source_id: str, key_owner: str, match_attribute: str) -> str | None:
        """Why a source object cannot be replicated as it is (`key_owner`: the object read this cycle
        that holds its match key), or None."""
        if key_owner != source_id:
            return f"duplicate {match_attribute} in the source (also source id {key_owner})"
        size = len(encode({k: v for k, v in canonical.items() if k != "members"}))
        if size > self.policy.max_resource_bytes:
            return f"oversized: {size} bytes > sync.max_resource_bytes={self.policy.max_resource_bytes}"
        return None

    async def _plan_batch(
        self, kind: str, batch: list[PendingRead], held: list[Waiting] | None,
        targets: tuple[dict[str, str], dict[str, str]] | None = None,
    ) -> list[Step]:
        """Plan a batch; objects referring to objects without a destination id yet go to `held`.
        `targets`: the destination ids of the batch's references, when the caller knows them."""
        ready: list[tuple[PendingRead, str, dict[str, Any], str]] = []
        if targets is None:
            targets = await self._targets(kind, [read.canonical for read in batch])
        for read in batch:  # no yield here: a target recorded meanwhile would not release its waiter
            if read.row is not None and read.row.status == CREATING:
                self._unfinished_creates.add((kind, read.source_id))
            desired, unresolved = translate(read.canonical, kind, *targets)
            if unresolved and held is not None:
                self._wait_for(kind, read, unresolved, targets, held)
                continue
            if unresolved:
                # written without some references: the next cycle must plan it again (not take the
                # fast path on unchanged source bytes), so that a target written later joins it
                read = dataclasses.replace(read, source_digest=None)
            ready.append((read, label_of(read.canonical, kind), desired, digest(desired)))
        dest = self.dest[kind]
        live_known = dest is not None and dest.complete and self.mode == FULL
        stored = await self._stored_many(kind, {read.source_id: (read.row, want) for read, _, _, want in ready},
                                         everything=live_known)
        # an object written earlier in this cycle is newer than the destination listing
        listed_now = [read.source_id for read, *_ in ready] if live_known else []
        written = await self._written_now(kind, listed_now)
        fresh = {sid for sid in listed_now if sid not in written}
        forms = await self.store.scratch.listed_forms(kind, [stored[sid].dest_id for sid in fresh if sid in stored])
        steps = []
        # while the guard holds users' removals, the groups written keep members that should go: they
        # record no source digest, so the next cycle plans them again (so does a group whose own member
        # removals were held)
        replan_groups = kind == GROUP and self._removals_held(USER)
        for index, (read, label, desired, want) in enumerate(ready):
            await _let_the_loop_run(index)
            known = stored.get(read.source_id)
            live_here = read.source_id in fresh
            live = forms.get(known.dest_id) if (live_here and known) else None
            row = read.row
            if self._backing_off(row, read.source_digest):
                self.result.counts["backing_off"] += 1
                continue
            step = plan_upsert(
                kind=kind,
                source_id=read.source_id,
                label=label,
                desired=desired,
                desired_digest=want,
                stored=known,
                live=live,
                live_known=live_here,
                policy=self.policy,
            )
            self._count_held_members(step)
            if not (replan_groups or step.held_members):
                if step.action == NOTHING:
                    await self._note_source_digest(kind, read)
                elif step.action != SKIP:
                    step = dataclasses.replace(step, source_digest=read.source_digest)
            if step.action == CREATE and not step.reason and self.scope.configured:
                step = dataclasses.replace(step, reason=self.scope.inclusion(kind))
            steps.append(step)
        return steps

    def _count_held_members(self, step: Step) -> None:
        """A group step whose member removals the membership guard held: counted and listed."""
        if step.held_members:
            self.result.counts["member_removals_held"] += step.held_members
            self.result.held.append((step.kind, step.label, step.held_why))
            log.error("member removals of group %s held: %s", step.label, step.held_why)

    def _backing_off(self, row: ResourceRow | None, source_digest: str | None) -> bool:
        """A failed attempt (a create, or an update of an object already there, which keeps its status)
        waits for its delay, unless the source object changed since (its bad data may be fixed) or the
        cycle is full; a success clears it."""
        if row is None or self.mode == FULL or (row.next_attempt_at or 0) <= time.time():
            return False
        return row.failed_source_digest is None or row.failed_source_digest == source_digest

    async def _stored_many(
        self, kind: str, wanted: dict[str, tuple[ResourceRow | None, str | None]], *, everything: bool = False
    ) -> dict[str, Stored]:
        """What the state says of these objects (source id -> (row, desired digest)). The last written
        form is read only where it is needed: when the digest differs, the object is disabled, or
        `everything` (full reconcile, removals)."""
        out: dict[str, Stored] = {}
        needed = []
        for source_id, (row, want) in wanted.items():
            overlay = self._overlay.get((kind, source_id))
            if overlay is not None:
                out[source_id] = overlay
                continue
            if row is None or not row.dest_id:
                continue
            out[source_id] = Stored(row.dest_id, row.digest, None, disabled=row.status == DISABLED)
            if everything or row.digest != want or row.status == DISABLED:
                needed.append(source_id)
        for source_id, canonical in (await self.store.forms.canonicals(kind, needed)).items():
            out[source_id] = dataclasses.replace(out[source_id], canonical=canonical)
        return out

    async def _dispatch(self, step: Step, send: StepQueue | None) -> None:
        """Count, plan (dry-run), or hand a step to the workers; `send=None` runs it right here."""
        if step.action == NOTHING:
            self.result.counts["unchanged"] += 1
            return
        if step.action == SKIP:
            self.result.counts["skipped"] += 1
            log.info("skipped %s %s: %s", step.kind, step.label, step.reason)
            return
        if self.dry_run:
            dest_id = self._plan_only(step)
            if dest_id is not None:
                await self._release_waiters(step.kind, step.source_id, dest_id)
        elif send is None:
            assert self._steps is not None, "released steps come from workers"
            self._steps.put_released(step)
        else:
            await send.put(step)

    async def _note_creates(self, creates: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Before new objects ((kind, source id, form)) are POSTed (their absence proven: no object to
        adopt): commit that they are about to be (state `creating`), so that an object whose result a
        crash loses, and that the source drops before the next cycle, is still found and removed
        (`_resolve_intents`). The store commits the notes of concurrent workers together; objects
        noted already are skipped."""
        if self.dry_run:
            return
        by_kind: dict[str, dict[str, str | None]] = {}
        for kind, source_id, form in creates:
            if (kind, source_id) not in self._noted:
                self._noted.add((kind, source_id))
                by_kind.setdefault(kind, {})[source_id] = match_value(form, self._match_attribute(kind))
        for kind, keys in by_kind.items():
            await self.store.intents.note_creating(kind, keys)

    async def _note_proven_creates(self, steps: list[Step], waiting: list[Waiting]) -> None:
        """A page's new objects whose absence a complete listing of the destination proves (they will
        be POSTed, not adopt an object), those that wait for a reference target included, are noted at
        once: one commit per page, not one per group of concurrent creates (a copy of 30k users took
        18 s with those, 16 s with these, 14 s without notes; released waiters made 20 ms latency
        0.6 of the raw client)."""
        if self.dry_run:
            return
        creates = [(step.kind, step.source_id, step.desired) for step in steps
                   if step.action == CREATE and step.desired is not None and step.dest_id is None]
        creates += [(entry.kind, entry.read.source_id, entry.read.canonical) for entry in waiting
                    if not entry.done and entry.read.row is None]
        if creates:
            absent = await self._absent_from_listing(creates)
            await self._note_creates([create for create in creates if create[1] in absent])

    async def _note_source_digest(self, kind: str, read: PendingRead) -> None:
        """An unchanged object whose source bytes changed (meta, a read-only attribute): remember the
        new bytes' digest, so the next cycle takes the fast path."""
        row = read.row
        if self.dry_run or row is None or read.source_digest is None or row.source_digest == read.source_digest:
            return
        if row.status == SYNCED:
            await self.store.note_source_digest(kind, read.source_id, read.source_digest)

    def _plan_only(self, step: Step) -> str | None:
        """Dry-run: remember the change for the report, and pretend it happened for later planning;
        return the destination id the object would have (None: it would have none)."""
        key = (step.kind, step.source_id)
        earlier = self._planned.get(key)
        if earlier is not None and earlier.action == CREATE:
            # the re-plan of a new object's references folds into its create
            step = Step(CREATE, step.kind, step.source_id, step.label, step.desired, step.digest)
        if step.action != RECORD:
            self._planned[key] = step
        if step.desired is not None:
            dest_id = step.dest_id or f"<new {step.kind} {step.label}>"
            self._written.add(key)
            self._overlay[key] = Stored(dest_id, step.digest, step.desired, disabled=step.action == DISABLE)
            return dest_id
        return None

    # -- workers --------------------------------------------------------------------------------

    async def _worker(self, steps: StepQueue) -> None:
        while (item := await steps.queue.get()) is not None:
            items = [item]
            lingered = 0
            while len(items) < self._bulk_size:  # Bulk: gather what waits, lingering a little for more
                if steps.queue.empty():
                    if lingered >= _BULK_LINGER_ROUNDS:
                        break
                    lingered += 1
                    await asyncio.sleep(0.001)
                    continue
                extra = steps.queue.get_nowait()
                if extra is None:
                    steps.queue.put_nowait(None)  # an end marker: leave it for the next worker round
                    break
                items.append(extra)
            try:
                first = items[0][0]
                if len(items) == 1 and not (self._bulk_size > 1 and first.action == CREATE and first.source_id in self._waiters):
                    await self._run_step(first)  # (a create others wait for goes in Bulk, which they may join)
                else:
                    await self._run_batch([step for step, _ in items])
            finally:
                for _, from_reader in items:
                    if from_reader:
                        steps.room.release()
                    steps.queue.task_done()

    # -- SCIM Bulk (RFC 7644 3.7) -----------------------------------------------------------------

    def _bulk_operation(self, step: Step, absent: bool) -> dict[str, Any] | None:
        """The Bulk operation for a step, or None when the step needs more than one plain request
        (a create that must first look for an object to adopt (not `absent` from a complete listing),
        a large group, a multi-part PATCH)."""
        endpoint = "/Users" if step.kind == USER else "/Groups"
        if step.action == CREATE and step.desired is not None:
            if not absent or len(step.desired.get("members", [])) > self.policy.member_chunk:
                return None
            return {"method": "POST", "path": endpoint, "bulkId": f"{step.kind[0].lower()}{next(self._bulk_ids)}",
                    "data": {"schemas": schemas_for(step.desired, step.kind), **step.desired}}
        if step.action in (PATCH, DISABLE) and self.destination.features.patch and step.dest_id:
            bodies = chunk_requests(step.operations, self.policy.member_chunk)
            if len(bodies) == 1:
                return {"method": "PATCH", "path": f"{endpoint}/{step.dest_id}", "data": bodies[0]}
        if step.action == DELETE and step.dest_id:
            return {"method": "DELETE", "path": f"{endpoint}/{step.dest_id}"}
        return None

    async def _run_batch(self, steps: list[Step]) -> None:
        """Several steps: those that are one plain request go in Bulk requests (within the server's
        maxOperations and maxPayloadSize), the others run one by one, concurrently. An operation the
        Bulk answer refuses is done again by the single-request path, which knows how to adopt on
        409, re-create on 404 and retry on 429/5xx."""
        if self._fatal is not None or self.stop.is_set():
            return
        singles: list[Step] = []
        bulked: list[tuple[Step, dict[str, Any]]] = []
        absent = await self._absent_from_listing(
            [(step.kind, step.source_id, step.desired or {}) for step in steps if step.action == CREATE])
        for step in steps:
            operation = self._bulk_operation(step, step.source_id in absent) if step.action != RECORD else None
            (bulked.append((step, operation)) if operation else singles.append(step))
        replan: list[Referrer] = []
        for chunk in self._bulk_chunks(bulked):
            joined = await self._join_referrers(chunk, replan)
            posts = [step for step, operation in chunk if operation["method"] == "POST"]
            await self._note_creates([(step.kind, step.source_id, step.desired or {}) for step in posts])
            singles.extend(await self._send_bulk(chunk, joined, replan))
            self._noted.difference_update((step.kind, step.source_id) for step in posts)
        await asyncio.gather(*(self._run_step(step) for step in singles))
        await self._replan_referrers(replan)

    async def _absent_from_listing(self, creates: list[tuple[str, str, dict[str, Any]]]) -> set[str]:
        """Source ids of these new objects ((kind, source id, form)) whose match key a complete
        listing of the destination lacks."""
        absent: set[str] = set()
        for kind in {kind for kind, _, _ in creates}:
            dest = self.dest[kind]
            if dest is None or not dest.complete:
                continue
            if not dest.listed:
                absent.update(source_id for kind_, source_id, _ in creates if kind_ == kind)
                continue
            keys = {source_id: match_value(form, self._match_attribute(kind))
                    for kind_, source_id, form in creates if kind_ == kind}
            folded = {sid: key.casefold() for sid, key in keys.items() if key is not None}
            listed = await self.store.scratch.listed_keys(kind, list(folded.values()))
            absent.update(sid for sid, key in folded.items() if key not in listed)
        return absent

    async def _join_referrers(self, chunk: list[tuple[Step, dict[str, Any]]], replan: list[Referrer]) -> dict[int, Referrer]:
        """New objects waiting only for objects this Bulk request creates join it and name them by
        bulkId (a new group whose new subgroup, a new user whose new manager is in the request), while
        the request has room; so do objects waiting for those, and so on. Returns them by position."""
        named = {step.source_id: (step.kind, operation["bulkId"]) for step, operation in chunk if "bulkId" in operation}
        room = self._bulk_ceiling - len(chunk) if self._waiters and self._may_name_by_bulk_id(chunk) else 0
        payload_room: float | None = None  # measured when a first candidate is found
        joined: dict[int, Referrer] = {}
        frontier = list(named)
        while frontier and room > 0:
            candidates = [(entry, referrer) for entry in self._waiters.get(frontier.pop(), ())
                          if (referrer := self._as_referrer(entry, named)) is not None]
            if not candidates:
                continue
            absent = await self._absent_from_listing(
                [(r.kind, r.read.source_id, r.read.canonical) for _, r in candidates])
            if payload_room is None:
                limit = self.destination.features.bulk_max_payload or 1_048_576
                payload_room = limit * 0.9 - 200 - sum(len(encode(operation)) + 2 for _, operation in chunk)
            for entry, referrer in candidates:
                if entry.done or referrer.read.source_id not in absent or room <= 0:
                    continue  # done: joined meanwhile (it waits for several of these creates)
                if not self._may_name_by_bulk_id(chunk):
                    return joined  # another request became the trial, or the trial said no (meanwhile)
                entry.done = True  # from here on it is ours: written in this request, or planned again after it
                entry.read = dataclasses.replace(entry.read, canonical={})
                placeholders = referrer.targets_by({bulk_id: f"bulkId:{bulk_id}" for _, bulk_id in referrer.named.values()})
                steps = await self._plan_batch(referrer.kind, [referrer.read], None, targets=placeholders)
                operation = self._bulk_operation(steps[0], True) if len(steps) == 1 and steps[0].action == CREATE else None
                cost = len(encode(operation)) + 2 if operation is not None else 0
                if operation is None or cost > payload_room or not self._may_name_by_bulk_id(chunk, claim=True):
                    replan.append(referrer)  # planned again once this request ran
                    continue
                joined[len(chunk)] = referrer
                chunk.append((steps[0], operation))
                room, payload_room = room - 1, payload_room - cost
                named[referrer.read.source_id] = (referrer.kind, operation["bulkId"])
                frontier.append(referrer.read.source_id)
        return joined

    def _may_name_by_bulk_id(self, chunk: list[tuple[Step, dict[str, Any]]], *, claim: bool = False) -> bool:
        """Whether objects may join this Bulk request and name their targets by bulkId: yes once the
        destination was seen to resolve such references; before that only in one request, the trial
        (`claim`: make this request the trial if there is none yet)."""
        if self._bulk_references == _REFERENCES_UNTRIED and claim:
            self._bulk_references, self._bulk_trial = _REFERENCES_ON_TRIAL, chunk
        if self._bulk_references == _REFERENCES_ON_TRIAL:
            return self._bulk_trial is chunk
        return self._bulk_references in (_REFERENCES_ON, _REFERENCES_UNTRIED)

    def _as_referrer(self, entry: Waiting, named: dict[str, tuple[str, str]]) -> Referrer | None:
        """A waiting object that may join a Bulk request creating what it waits for: a new object
        (a create may go in Bulk), small enough, whose every missing reference is created there."""
        if entry.done or entry.moves != self._moves or not self.policy.create or not entry.pending:
            return None
        if not entry.pending <= named.keys():
            return None
        read = self._still_own(entry.read)
        if read.row is not None or len(read.canonical.get("members", ())) > self.policy.member_chunk:
            return None
        return Referrer(entry.kind, read, (dict(entry.targets[0]), dict(entry.targets[1])),
                         {source_id: named[source_id] for source_id in entry.pending})

    def _bulk_chunks(self, bulked: list[tuple[Step, dict[str, Any]]]) -> list[list[tuple[Step, dict[str, Any]]]]:
        limit = self.destination.features.bulk_max_payload or 1_048_576
        chunks: list[list[tuple[Step, dict[str, Any]]]] = [[]]
        size = 200  # the request's own envelope
        for pair in bulked:
            cost = len(encode(pair[1])) + 2
            if chunks[-1] and size + cost > limit * 0.9:
                chunks.append([])
                size = 200
            chunks[-1].append(pair)
            size += cost
        return [chunk for chunk in chunks if chunk]

    async def _send_bulk(self, chunk: list[tuple[Step, dict[str, Any]]], joined: dict[int, Referrer],
                         replan: list[Referrer]) -> list[Step]:
        """Send one Bulk request; apply each operation's result; return the steps to redo singly.
        Objects that joined it (`joined`, by position) and fail are planned again after the batch."""
        try:
            results = await self.destination.bulk([operation for _, operation in chunk])
        except AuthError as exc:
            self._fatal = exc
            return []
        except ScimError as exc:
            if isinstance(exc, ScimStatusError) and exc.status == 413:
                self._bulk_size = self._bulk_ceiling = max(1, self._bulk_size // 2)
            if not isinstance(exc, ScimStatusError) or exc.status >= 500:
                # the server may have carried the request out: creates look before they post again
                self._maybe_posted.update((step.kind, step.source_id) for step, _ in chunk if step.action == CREATE)
            log.warning("bulk request of %d operations failed (%s): doing them one by one", len(chunk), exc)
            if self._bulk_trial is chunk:  # the trial gave no answer: do without them
                self._bulk_references, self._bulk_trial = _REFERENCES_OFF, None
            replan.extend(joined.values())
            return [step for index, (step, _) in enumerate(chunk) if index not in joined]
        written: list[tuple[Step, Step, str]] = []  # objects written with bulkId references
        created = {operation["bulkId"]: result.resource_id for (_, operation), result in zip(chunk, results, strict=True)
                   if "bulkId" in operation and result is not None and 200 <= result.status < 300 and result.resource_id}
        redo = []
        for index, ((step, _), result) in enumerate(zip(chunk, results, strict=True)):
            if result is not None and result.status >= 500 and step.action == CREATE:
                self._maybe_posted.add((step.kind, step.source_id))
            referrer = joined.get(index)
            if referrer is None:
                if result is None or not await self._apply_bulk_result(step, result):
                    redo.append(step)
                continue
            sent, complete = step, False
            if result is not None:
                step, complete = referrer.resolved(step, created)
            applied = result is not None and await self._apply_bulk_result(step, result)
            if applied and result is not None:
                written.append((sent, step, result.resource_id or ""))
            if not applied or not complete:
                replan.append(referrer)  # failed, or written without a target whose create failed
        if self._bulk_trial is chunk:
            await self._try_bulk_references(written)
        return redo

    async def _try_bulk_references(self, written: list[tuple[Step, Step, str]]) -> None:
        """The trial request (the first Bulk request with bulkId references) ran: read back one object
        written with them ((as sent, as recorded, destination id)). A server that advertises Bulk but
        stores such references as given would hold wrong members or managers: then every object of
        the request is repaired, and no later request uses them. Neither do they when no object of
        the trial was written (the server may refuse such references)."""
        self._bulk_trial = None
        if not written:
            self._bulk_references = _REFERENCES_OFF
            return
        try:
            _, first, dest_id = written[0]
            live = canonicalise(await self.destination.get(first.kind, dest_id), first.kind)
            assert first.desired is not None
            if reference_values(live, first.kind) == reference_values(first.desired, first.kind):
                self._bulk_references = _REFERENCES_ON
                return
            log.warning("the destination did not resolve the bulkId references of %s %s: repairing the %d "
                        "objects written with them, and not using them again", first.kind, first.label, len(written))
            self._bulk_references = _REFERENCES_OFF
            for sent, step, dest_id in written:
                live = canonicalise(await self.destination.get(step.kind, dest_id), step.kind)
                # what we sent is what we wrote (a member whose target failed included): its bulkId
                # values are ours to replace, which the form recorded no longer says
                await self._write_operations(plan_adoption(step=step, live=live, dest_id=dest_id, policy=self.policy,
                                                           previous=sent.desired, reason="bulkId references not resolved"))
        except ScimError as exc:
            log.warning("could not check the bulkId references written (%s): not using them", exc)
            self._bulk_references = _REFERENCES_OFF

    async def _replan_referrers(self, referrers: list[Referrer]) -> None:
        """Objects that joined a Bulk request and failed there, or were written without a target
        that failed: plan them again now that the batch's other steps ran, with the references that
        resolve (a target written meanwhile is in, one that failed is left out). One by one, in the
        order they joined, which puts targets before the objects that refer to them."""
        for referrer in referrers:
            rows = await self.store.rows(referrer.kind, [referrer.read.source_id])
            read = dataclasses.replace(referrer.read, row=rows.get(referrer.read.source_id))
            for step in await self._plan_batch(referrer.kind, [read], None):
                await (self._dispatch(step, None) if step.action in (NOTHING, SKIP) else self._run_step(step))

    async def _apply_bulk_result(self, step: Step, result: BulkResult) -> bool:
        """Record a successful operation; False when it must be done again by the single path."""
        if step.action == DELETE and (200 <= result.status < 300 or result.status == 404):
            if step.dest_id:
                self._removed_dest_ids[step.kind].add(step.dest_id)
            await self.store.forget(step.kind, step.source_id)
            self.result.counts["deleted"] += 1
            return True
        if not 200 <= result.status < 300:
            return False
        if step.action == CREATE:
            if not result.resource_id:
                return False
            await self._record(step, result.resource_id, origin="created")
            self.result.counts[created_counter(step)] += 1
            return True
        assert step.dest_id is not None
        await self._record(step, step.dest_id, status=DISABLED if step.action == DISABLE else SYNCED)
        self.result.counts["disabled" if step.action == DISABLE else "updated"] += 1
        if step.action == DISABLE:
            self._removed_dest_ids[step.kind].add(step.dest_id)  # out of scope: it leaves its groups too
        return True

    async def _run_step(self, step: Step) -> None:
        """Execute one step; a failure is recorded for its object, or stops the cycle when fatal."""
        if self._fatal is not None or self.stop.is_set():
            return  # queued work is dropped; calls already in flight finish
        try:
            await self._execute(step)
            self._transport_failures = 0
        except (AuthError, StateError) as exc:
            self._fatal = exc
        except ScimError as exc:
            await self._fail(step.kind, step.source_id, step.label, str(exc), step.source_digest)
            if isinstance(exc, TransportError):
                self._transport_failures += 1
                if self._transport_failures >= max(10, 2 * self.config.concurrency):
                    self._fatal = TransportError(
                        f"destination unreachable: {self._transport_failures} operations in a row "
                        f"failed after retries (last: {exc})"
                    )

    async def _execute(self, step: Step) -> None:
        if step.action == CREATE:
            await self._create(step)
        elif step.action in (PATCH, RECORD):
            await self._apply(step)
        elif step.action == DISABLE:
            await self._apply(step, status=DISABLED)
        elif step.action == DELETE:
            await self._delete(step)

    async def _create(self, step: Step) -> None:
        try:
            await self._create_once_noted(step)
        finally:
            self._noted.discard((step.kind, step.source_id))

    async def _create_once_noted(self, step: Step) -> None:
        assert step.desired is not None
        for attempt in range(1, _CREATE_ATTEMPTS + 1):
            uncertain = attempt > 1 or (step.kind, step.source_id) in self._maybe_posted
            existing = await self._find_existing(step, fresh=uncertain)
            if existing is not None:
                await self._adopt(step, existing)
                return
            try:
                await self._note_creates([(step.kind, step.source_id, step.desired)])
                created = await self._post(step)
                break
            except ConflictError as conflict:
                existing = await self._lookup_after_conflict(step, conflict)
                if existing is None:
                    raise
                await self._adopt(step, existing)
                return
            except (TransportError, ServerError) as exc:
                # the server may have created it before the answer was lost: look before posting again
                if attempt == _CREATE_ATTEMPTS or not exc.retryable:
                    raise
                log.warning("create of %s %s uncertain (%s): looking it up", step.kind, step.label, exc)
        await self._record(step, created["id"], origin="created")
        self.result.counts[created_counter(step)] += 1
        log.debug("created %s %s", step.kind, step.label)

    async def _post(self, step: Step) -> dict[str, Any]:
        """POST the object; a large group gets its first chunk of members, the rest as PATCH adds, as
        do members the answer shows the server left out (RFC 7644 3.3 lets it ignore POSTed content)."""
        assert step.desired is not None
        members = step.desired.get("members", [])
        first, rest = members[: self.policy.member_chunk], members[self.policy.member_chunk :]
        body = {"schemas": schemas_for(step.desired, step.kind), **step.desired}
        if rest:
            body["members"] = first
        created = await self.destination.create(step.kind, body)
        left_out = members_left_out(first, created)
        if rest or left_out:
            # recorded before the PATCHes, so that one failing leaves the object ours with what it holds
            kept = [member for member in first if member["value"] not in left_out]
            written = {**step.desired, "members": kept} if kept else {k: v for k, v in step.desired.items() if k != "members"}
            await self._record(dataclasses.replace(step, desired=written, digest=digest(written), source_digest=None),
                               created["id"], origin="created")
            if left_out:
                log.info("%s %s: the destination left %d members out of the create; adding them",
                         step.kind, step.label, len(left_out))
            await self._add_members(step.kind, created["id"], [m for m in first if m["value"] in left_out] + rest)
        return created

    async def _add_members(self, kind: str, dest_id: str, members: list[dict[str, Any]]) -> None:
        """PATCH adds of these members, at most `member_chunk` per request."""
        if members:
            for patch in chunk_requests([{"op": "add", "path": "members", "value": members}], self.policy.member_chunk):
                await self.destination.patch(kind, dest_id, patch)

    async def _adopt(self, step: Step, existing: dict[str, Any]) -> None:
        # a source object that came back under a new id takes over the destination object, and with
        # it what we wrote there (members we added are ours to remove)
        written = None
        for previous_owner in await self.store.forms.owners(step.kind, existing["id"]):
            if previous_owner != step.source_id:
                log.info("%s %s: source id %s replaces %s", step.kind, step.label, step.source_id, previous_owner)
                written = written or await self.store.forms.canonical(step.kind, previous_owner)
                await self.store.forget(step.kind, previous_owner)
                self._taken_over.add((step.kind, previous_owner))
                self._moves += 1
        live = canonicalise(existing, step.kind)
        if written is None and (step.kind, step.source_id) in self._unfinished_creates and live.get("members"):
            # our create whose result a crash lost: its members are the ones we added (in merge mode they
            # are ours to remove), not someone else's
            written = {"members": live["members"]}
        adoption = plan_adoption(step=step, live=live, dest_id=existing["id"], policy=self.policy, previous=written)
        self._count_held_members(adoption)
        await self._write_operations(adoption)
        await self._record(adoption, existing["id"], origin="adopted")
        self.result.counts["adopted"] += 1
        log.info("adopted existing %s %s (%s)", step.kind, step.label, existing["id"])

    async def _find_existing(self, step: Step, *, fresh: bool = False) -> dict[str, Any] | None:
        """The destination object this new one should adopt, or None when it does not exist.

        `fresh`: do not trust the listing made at the start of the cycle (a POST may have landed since).
        """
        dest = self.dest[step.kind]
        key = match_value(step.desired or {}, self._match_attribute(step.kind))
        if dest is not None and dest.complete and not fresh and key is not None:
            known, existing = await self._from_listing(step.kind, dest, key)
            if known:
                return existing
        return await self._lookup(step, required=False)

    async def _from_listing(self, kind: str, listing: Listing, key: str) -> tuple[bool, dict[str, Any] | None]:
        """(True, object or None) when a complete listing settles it; (False, None) when the key is
        ambiguous there (two objects share it) and a search must decide."""
        if not listing.listed:
            return True, None
        folded = key.casefold()
        listed = await self.store.scratch.listed_keys(kind, [folded])
        if folded not in listed:
            return True, None  # the complete listing proves absence
        dest_id = listed[folded]
        if dest_id is None:
            return False, None
        form = (await self.store.scratch.listed_forms(kind, [dest_id])).get(dest_id) if listing.with_forms else None
        if form is not None:
            return True, {"id": dest_id, **form}
        return True, await self.destination.get(kind, dest_id)

    async def _lookup(self, step: Step, *, required: bool) -> dict[str, Any] | None:
        if not self.destination.features.filter and not required:
            return None
        attribute = self._match_attribute(step.kind)
        key = match_value(step.desired or {}, attribute)
        if key is None:
            return None
        template = self.policy.user_match_filter if step.kind == USER else self.policy.group_match_filter
        try:
            found = await self.destination.find(step.kind, render(template, key))
        except (BadRequestError, NotFoundError) as exc:
            return await self._lookup_in_listing(step.kind, key, exc)
        exact = [r for r in found if (match_value(canonicalise(r, step.kind), attribute) or "").casefold() == key.casefold()]
        if len(exact) > 1:
            raise ConflictError(
                f"{len(exact)} destination {step.kind}s match {attribute}; refusing to guess", status=409
            )
        return exact[0] if exact else None

    async def _lookup_after_conflict(self, step: Step, conflict: ConflictError) -> dict[str, Any] | None:
        """A create answered 409: the object is there. Searched for (unless the destination says it has
        no filters), then, when the search finds nothing, looked up in a listing, where keys compare
        without case: some servers answer an unsupported filter with an empty list, some compare a
        caseExact=false userName case-exactly."""
        if self.destination.features.filter:
            existing = await self._lookup(step, required=True)
            if existing is not None:
                return existing
        key = match_value(step.desired or {}, self._match_attribute(step.kind))
        return None if key is None else await self._lookup_in_listing(step.kind, key, conflict)

    async def _lookup_in_listing(self, kind: str, key: str, refusal: ScimError) -> dict[str, Any] | None:
        """The destination's search refused or could not explain `refusal`: list it once and look
        objects up there."""
        async with self._listing_lock:
            listing = self.dest[kind]
            if listing is None or not listing.complete:
                log.warning("destination %s search did not serve (%s): listing it to find objects instead", kind, refusal)
                listing = self.dest[kind] = await self._list_destination(kind)
        if not listing.complete:
            raise refusal
        known, existing = await self._from_listing(kind, listing, key)
        if not known:
            raise ConflictError(f"several destination {kind}s share {key!r}; refusing to guess", status=409)
        return existing

    async def _apply(self, step: Step, *, status: str = SYNCED) -> None:
        dest_id = step.dest_id
        assert dest_id is not None
        try:
            try:
                await self._write_operations(step)
            except BadRequestError as exc:
                if exc.scim_type != "noTarget" or step.action == RECORD:
                    raise
                step = await self._replan_from_live(step)
                await self._write_operations(step)
        except NotFoundError:
            if step.action == DISABLE:
                await self.store.forget(step.kind, step.source_id)
                return
            log.warning("%s %s vanished from the destination: re-creating it", step.kind, step.label)
            self._recreated_dest_ids.add(dest_id)
            await self._create(dataclasses.replace(step, action=CREATE, dest_id=None, operations=[],
                                                   reason=RECREATE_REASON))
            return
        await self._record(step, dest_id, status=status)
        if step.action != RECORD:
            self.result.counts["disabled" if step.action == DISABLE else "updated"] += 1
        if step.action == DISABLE:
            # a disabled user is out of scope: like a deleted one it leaves the groups we wrote (a --full
            # would take it out of them; an incremental cycle, where those groups did not change, would not)
            self._removed_dest_ids[step.kind].add(dest_id)

    async def _replan_from_live(self, step: Step) -> Step:
        """The destination is not what we last wrote (a replayed or raced PATCH): diff against it."""
        assert step.dest_id is not None
        log.info("%s %s differs from what we last wrote: re-reading it", step.kind, step.label)
        live = canonicalise(await self.destination.get(step.kind, step.dest_id), step.kind)
        previous = await self.store.forms.canonical(step.kind, step.source_id)
        replanned = plan_adoption(step=step, live=live, dest_id=step.dest_id, policy=self.policy,
                                  previous=previous, reason="re-read from the destination")
        self._count_held_members(replanned)
        return replanned

    async def _write_operations(self, step: Step) -> None:
        if not step.operations:
            return
        assert step.dest_id is not None
        if not self.destination.features.patch:
            await self._replace_with_operations(step)
            return
        try:
            for body in chunk_requests(step.operations, self.policy.member_chunk):
                await self.destination.patch(step.kind, step.dest_id, body)
        except (ServerError, BadRequestError) as exc:
            if exc.status != 501 and exc.scim_type not in ("invalidPath", "invalidFilter"):
                raise
            log.warning("%s %s: the destination does not take this PATCH (%s); replacing the object with PUT",
                        step.kind, step.label, exc)
            await self._replace_with_operations(step)

    async def _replace_with_operations(self, step: Step) -> None:
        """PUT for a destination without PATCH (or without this PATCH): the object as it is there with
        the step's operations applied, so that what we do not manage (attributes others set, members
        we may not remove) is kept, where a PUT of the desired form alone would wipe it."""
        assert step.dest_id is not None and step.desired is not None
        live = canonicalise(await self.destination.get(step.kind, step.dest_id), step.kind)
        spelling = {key.lower(): key for key in step.desired}  # attribute names are case-insensitive
        live = {spelling.get(key.lower(), key): value for key, value in live.items()}
        form = apply_operations(live, step.operations)
        if step.kind == GROUP and step.desired.get("members"):
            # a server that leaves members out of a read, or caps them, must not have ours wiped by
            # the PUT: every member we want is in it, besides the others the read showed
            held = {member["value"] for member in form.get("members", [])}
            form["members"] = form.get("members", []) + [m for m in step.desired["members"] if m["value"] not in held]
        body = {"schemas": schemas_for(form, step.kind), "id": step.dest_id, **form}
        answer = await self.destination.replace(step.kind, step.dest_id, body)
        await self._check_put_members(step, form.get("members", []), answer)

    async def _check_put_members(self, step: Step, sent: list[dict[str, Any]], answer: dict[str, Any] | None) -> None:
        """Some servers' PUT ignores `members` (django-scim2). When the answer shows it, members it lacks
        are added by PATCH, and members it kept though the PUT left them out fail the object (they
        stay, so the next attempt tries again) rather than pass for replicated."""
        values = answered_member_values(answer) if step.kind == GROUP else None
        if values is None:
            return
        assert step.dest_id is not None
        await self._add_members(step.kind, step.dest_id, [member for member in sent if member["value"] not in values])
        kept = values - {member["value"] for member in sent}
        if kept:
            raise ProtocolError(f"PUT {step.kind} {step.label}: the destination kept {len(kept)} member(s) it was "
                                "asked to remove (its PUT ignores members and it refused the PATCH that removes them)")

    async def _delete(self, step: Step) -> None:
        assert step.dest_id is not None
        with contextlib.suppress(NotFoundError):  # already gone: that is what we wanted
            await self.destination.delete(step.kind, step.dest_id)
        self._removed_dest_ids[step.kind].add(step.dest_id)
        await self.store.forget(step.kind, step.source_id)
        self.result.counts["deleted"] += 1

    async def _record(self, step: Step, dest_id: str, *, origin: str | None = None, status: str = SYNCED) -> None:
        assert step.desired is not None and step.digest is not None
        if origin is not None and step.reason == RECREATE_REASON:
            self._moves += 1  # waiting objects may know its former destination id
        await self.store.record_success(
            step.kind, step.source_id, dest_id=dest_id, digest=step.digest, canonical=step.desired,
            status=status, origin=origin, match_key=match_value(step.desired, self._match_attribute(step.kind)),
            source_digest=step.source_digest if status == SYNCED else None,
        )
        await self._release_waiters(step.kind, step.source_id, dest_id)

    async def _fail(self, kind: str, source_id: str, label: str, reason: str, source_digest: str | None = None) -> None:
        """Count, list and record a failure; `source_digest`: the object as read (None: unknown)."""
        self.result.counts["failed"] += 1
        if self.result.counts["failed"] <= _FAILURES_LISTED:
            self.result.failures.append((kind, label or source_id, reason))
        elif self.result.counts["failed"] == _FAILURES_LISTED + 1:
            self.result.notes.append(f"only the first {_FAILURES_LISTED} failures are listed; `status` shows them all")
        log.warning("failed %s %s (source id %s): %s", kind, label, source_id, reason)
        if not self.dry_run:
            await self.store.record_failure(kind, source_id, reason, backoff=failure_backoff,
                                            source_digest=source_digest)

    # -- removals -------------------------------------------------------------------------------

    async def _remove_vanished(self, kinds: tuple[str, ...]) -> None:
        """Remove (or disable) what we created or adopted and the source no longer has, kind by kind
        (groups before users), in chunks of the state; held by the mass-removal guard, which decides
        for every kind before anything is removed."""
        if self.stop.is_set():
            return
        if not all(self._read_complete[kind] for kind in kinds):
            # (those the guard already held are counted)
            held = sum([await self.store.scratch.unread_count(kind) for kind in kinds if not self._removals_held(kind)])
            if held:
                self.result.counts["removals_held"] += held
                self.result.notes.append(f"{held} removals held: the source read was not complete")
            return
        for kind in reversed(kinds):
            if kind not in self._removals:
                await self._judge_removals(kind)
        for kind in reversed(kinds):
            verdict = self._removals[kind]
            if verdict.held or not verdict.planned:
                continue
            async with self._workers() as send:
                async for chunk in _replay(verdict.kept) if verdict.kept is not None else self.store.scratch.iter_unread(kind):
                    for step in await self._removal_steps(kind, chunk, with_forms=True):
                        await self._dispatch(step, send)

    async def _judge_removals(self, kind: str) -> None:
        """Count this kind's removals and let the guard decide (users: right after their read, so
        that users whose removal is held stay members of the groups planned next)."""
        removals, planned = 0, 0
        kept: list[Unread] | None = []  # the candidates are kept for the second pass unless many
        listed: list[tuple[str, str, str]] = []
        async for chunk in self.store.scratch.iter_unread(kind):
            steps = await self._removal_steps(kind, chunk, with_forms=False)
            removing = [step for step in steps if step.action in (DELETE, DISABLE)]
            removals += len(removing)
            planned += len(steps)
            keys = {row.source_id: row.match_key for row, _ in chunk}
            listed += [(kind, step.label or keys.get(step.source_id) or step.source_id, step.action)
                       for step in removing[: max(0, _HELD_LISTED - len(listed))]]
            if kept is not None:
                kept.append(chunk)
                if len(kept) * len(chunk) > _REMOVALS_KEPT:
                    kept = None
        tracked = await self.store.count(kind)
        seen = await self.store.scratch.in_scope_count(kind)
        held = removal_guard(removals=removals, tracked=tracked, seen=seen, policy=self.policy)
        self._removals[kind] = RemovalVerdict(kept, planned, held)
        if held:
            self.result.counts["removals_held"] += removals
            self.result.held += [(k, label, f"{action} held: {held}") for k, label, action in listed]
            self.result.notes.append(
                f"{removals} {kind} removals held: {held}; run with --allow-mass-delete if this is intended"
            )
            log.error("mass removal of %ss held: %s", kind, held)

    def _removals_held(self, kind: str) -> bool:
        verdict = self._removals.get(kind)
        return verdict is not None and verdict.held is not None

    async def _removal_steps(self, kind: str, chunk: Unread, *, with_forms: bool) -> list[Step]:
        """The removal steps for a chunk of rows this cycle did not read in scope; `with_forms` reads
        the last written forms (for labels and disabling), which counting does not need."""
        owned = {row.source_id: (row, why) for row, why in chunk if row.origin in ("created", "adopted")}
        intents = {sid: row for sid, (row, _) in owned.items() if not row.dest_id}  # creates noted, not recorded
        found = await self._resolve_intents(kind, intents) if intents else {}
        if found:
            owned = {sid: (row._replace(dest_id=found.get(sid, row.dest_id)), why) for sid, (row, why) in owned.items()}
        stored = await self._stored_many(kind, {sid: (row, row.digest) for sid, (row, _) in owned.items()},
                                         everything=with_forms)
        for source_id, dest_id in found.items() if with_forms else ():
            # nothing of it was recorded: what it holds (to disable it, to name it) is read from it
            try:
                live = canonicalise(await self.destination.get(kind, dest_id), kind)
            except NotFoundError:
                del stored[source_id]
                continue
            stored[source_id] = dataclasses.replace(stored[source_id], canonical=live)
        steps = []
        for source_id, known in stored.items():
            step = plan_removal(kind=kind, source_id=source_id, stored=known,
                                label=label_of(known.canonical or {}, kind), policy=self.policy)
            excluded = owned[source_id][1]
            steps.append(dataclasses.replace(step, reason=f"leaves scope: {excluded}") if excluded else step)
        if with_forms:
            absent = [step.source_id for step in steps if step.action in (DELETE, DISABLE) and not owned[step.source_id][1]]
            still_there = await self._still_in_source(kind, absent)
            steps = [step for step in steps if step.source_id not in still_there]
        return steps

    async def _still_in_source(self, kind: str, source_ids: list[str]) -> set[str]:
        """Of these objects missing from a complete read, those the source does not answer 404 for.

        A read by index can miss an object without noticing: when an object before it is deleted
        between two pages, it slides onto a page already read (totalResults need not change), and a
        server may also under-state totalResults. Each one is asked for by id before it is removed;
        an object that is still there, or that cannot be asked for, is kept, and the cycle says so."""
        async def answered(source_id: str) -> bool:
            try:
                await self.source.get(kind, source_id)
            except NotFoundError:
                return False
            except ScimError as exc:
                log.warning("%s %s missing from the read could not be looked up in the source: %s", kind, source_id, exc)
            return True

        found = [sid for sid, there in zip(source_ids, await asyncio.gather(*map(answered, source_ids)), strict=True)
                 if there]
        if found:
            self.result.counts["removals_held"] += len(found)
            self.result.outcome = "partial"
            self.result.notes.append(f"{len(found)} {kind}s missing from the source read are still in the source "
                                     "(it changed during the read?) or could not be looked up: not removed")
        return set(found)

    async def _resolve_intents(self, kind: str, intents: dict[str, ResourceRow]) -> dict[str, str]:
        """Objects gone from the source whose create was noted right before its POST but whose result
        was not recorded (a crash, or a failure after the POST): the destination ids of those the
        destination holds under their match key and no other object of ours claims (had the POST met
        an object already there, we would have adopted it, which makes it ours as well). The
        destination is listed for this if it was not this cycle. The notes of the others are dropped:
        their create never reached the destination, several objects share the key, or the listing is
        incomplete (then a warning says so, rather than listing it again every cycle)."""
        async with self._listing_lock:
            if self.dest[kind] is None:
                self.dest[kind] = await self._list_destination(kind)
        listing = self.dest[kind]
        assert listing is not None
        if not listing.complete:
            log.warning("destination %s listing incomplete: %d objects whose create a crash or failure left "
                        "unrecorded cannot be looked for, and are forgotten", kind, len(intents))
        keys = [row.match_key for row in intents.values() if row.match_key]
        listed = await self.store.scratch.listed_keys(kind, keys) if listing.complete and listing.listed and keys else {}
        found = {}
        for source_id, row in intents.items():
            dest_id = listed.get(row.match_key or "")
            if dest_id is not None and set(await self.store.forms.owners(kind, dest_id)) <= {source_id}:
                found[source_id] = dest_id
            elif not self.dry_run:
                await self.store.forget(kind, source_id)
        return found

    def _match_attribute(self, kind: str) -> str:
        return self.policy.user_match_attribute if kind == USER else self.policy.group_match_attribute


_decode_resource = msgspec.json.Decoder(dict).decode


async def _replay(chunks: list[Unread]) -> AsyncIterator[Unread]:
    for chunk in chunks:
        yield chunk


async def _let_the_loop_run(index: int) -> None:
    """In a long planning loop, every `_PLAN_STRIDE` objects: let answers that arrived be handled."""
    if index % _PLAN_STRIDE == _PLAN_STRIDE - 1:
        await asyncio.sleep(0)


def _paging(side: SideConfig, kind: str) -> dict[str, Any]:
    """How to page a kind: groups carry their members, so they are read in pages of at most
    _GROUP_PAGE groups and about _GROUP_PAGE_BYTES, so that a page of large groups does not fill memory."""
    if kind == GROUP:
        return {"page_size": min(side.page_size, _GROUP_PAGE), "max_page_bytes": _GROUP_PAGE_BYTES}
    return {"page_size": side.page_size}


async def run_cycle(
    config: Config,
    source: ScimClient,
    destination: ScimClient,
    store: StateStore,
    *,
    mode: str = INCREMENTAL,
    dry_run: bool = False,
    stop: asyncio.Event | None = None,
    started: list[CycleResult] | None = None,
) -> CycleResult:
    """Run one cycle and return what it did. `started` receives the cycle's result as soon as it
    exists, so that a caller whose cycle is cancelled can still report what it had done."""
    cycle = Cycle(config, source, destination, store, mode=mode, dry_run=dry_run, stop=stop)
    if started is not None:
        started.append(cycle.result)
    return await cycle.run()
