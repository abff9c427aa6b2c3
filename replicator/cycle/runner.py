"""One replication cycle (`Cycle`, `run_cycle`): the phases in order, and the record of the run.

Order of work: Users, then Groups (members need user ids), then removals (groups before users). The
destination's groups, when the cycle lists them, are listed while the users are written.
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
repairs drift there. `dry_run` plans everything and writes nothing (neither destination nor state): the
cycle then runs with the dry-run sink and recorder (dryrun.py) in place of the live ones.

The stages, one file each, share one `CycleContext` (context.py): read.py (the source), listing.py
(the destination's listings and lookups), planner.py, waiters.py, workers.py, writer.py (one step),
bulk.py (SCIM Bulk), recorder.py (what planning puts in the state), removals.py, sinks.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from replicator.config import Config
from replicator.cycle.bulk import BulkWriter
from replicator.cycle.context import CycleContext
from replicator.cycle.dryrun import DryRunRecorder, DryRunSink
from replicator.cycle.keeps import KeepsLearner
from replicator.cycle.listing import DestinationIndex
from replicator.cycle.planner import Planner
from replicator.cycle.read import SourceReader
from replicator.cycle.recorder import LiveRecorder
from replicator.cycle.removals import Removals
from replicator.cycle.result import INCREMENTAL, CycleResult
from replicator.cycle.sinks import LiveSink
from replicator.cycle.waiters import Waiters
from replicator.cycle.workers import Workers
from replicator.cycle.writer import StepWriter
from replicator.directory import Directory
from replicator.errors import ReplicatorError
from replicator.pipeline.approvals import approval_reach, approved_policy
from replicator.pipeline.canonical import GROUP, KINDS, USER
from replicator.pipeline.outcome import Outcome, cycle_outcome
from replicator.pipeline.scope import empty_scope_problem, missing_names_problem
from replicator.state import StateStore

log = logging.getLogger("replicator.cycle")


class Cycle:
    """Runs one cycle. Construct, then `await run()`."""

    def __init__(
        self,
        config: Config,
        source: Directory,
        destination: Directory,
        store: StateStore,
        *,
        mode: str = INCREMENTAL,
        dry_run: bool = False,
        stop: asyncio.Event | None = None,
    ) -> None:
        cx = self.cx = CycleContext(config, source, destination, store, mode, dry_run, stop or asyncio.Event(),
                                    CycleResult(mode=mode, dry_run=dry_run))
        self.result = cx.result
        cx.reader, cx.listing, cx.planner, cx.waiters = SourceReader(cx), DestinationIndex(cx), Planner(cx), Waiters(cx)
        cx.workers, cx.writer, cx.bulk, cx.removals = Workers(cx), StepWriter(cx), BulkWriter(cx), Removals(cx)
        cx.keeps = KeepsLearner(cx)
        if dry_run:
            sink = DryRunSink(cx)
            cx.sink, cx.recorder = sink, DryRunRecorder(cx, sink)
        else:
            cx.sink, cx.recorder = LiveSink(cx), LiveRecorder(cx)

    async def run(self) -> CycleResult:
        """Run the cycle and record it. A cycle that does not finish its plan is never recorded `ok`:
        `failed` when an error stops it, `interrupted` when it is stopped (the stop event, a
        cancellation, KeyboardInterrupt), with the phase it reached; the next run then recovers."""
        cx, result = self.cx, self.result
        started = time.monotonic()
        cx.recovering = await cx.store.runs.last_run_unfinished()
        await cx.store.scratch.begin_cycle()
        await cx.recorder.open_run()
        try:
            await self._take_approval()
            await self._run()
        except ReplicatorError as exc:
            result.outcome = Outcome.FAILED
            result.notes.append(str(exc))
            raise
        except Exception:
            result.outcome = Outcome.FAILED
            raise
        except BaseException:  # cancelled, KeyboardInterrupt: stopped before the end of the plan
            result.outcome = Outcome.INTERRUPTED
            raise
        finally:
            if result.outcome in (Outcome.INTERRUPTED, Outcome.FAILED):
                result.notes.append(f"{result.outcome} during {self.result.phase}")
            result.seconds = time.monotonic() - started
            result.source_requests = dict(cx.source.requests)
            result.destination_requests = dict(cx.destination.requests)
            result.destination_flow = cx.destination.flow()
            counts = result.summary()
            if result.outcome in (Outcome.INTERRUPTED, Outcome.FAILED):
                counts["phase"] = self.result.phase
            await cx.recorder.close_run(result.outcome, counts)
        return result

    async def _take_approval(self) -> None:
        """An operator's standing approval of removals (`approve`) applies to this cycle: the guard on
        objects' limits are raised to its `up_to`, the membership guard's to its `members_up_to`
        (`approved_policy`), and the cycle says so."""
        cx = self.cx
        approval = await cx.recorder.take_approval()
        if approval is None:
            return
        cx.removal_policy = approved_policy(cx.removal_policy, approval.up_to)
        cx.policy = approved_policy(cx.policy, approval.members_up_to)
        used = "a dry run leaves it standing for the next cycle" if cx.dry_run else "the approval is used"
        approved = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(approval.approved_at))
        cx.result.notes.append(f"removals approved {approved} (`approve`: {approval_reach(approval.up_to, approval.members_up_to)}) "
                               f"apply to this cycle ({used})")

    async def _run(self) -> None:
        cx = self.cx
        await cx.source.discover()
        await cx.destination.discover()
        cx.bulk.configure()
        await cx.keeps.load()
        await self._replicate()
        if not cx.stop.is_set():
            await cx.planner.count_dropped_references()
        cx.sink.finish()
        cx.result.notes += [*cx.source.notes(), *cx.destination.notes(), *not_kept_notes(cx.reads.not_kept),
                            *await cx.keeps.finish()]
        counts = cx.result.counts
        cx.result.outcome = cycle_outcome(
            cx.result.outcome, stopped=cx.stop.is_set(), failed=bool(counts["failed"] or counts["references_dropped"]),
            held=bool(counts["removals_held"] or counts["member_removals_held"] or cx.reads.halted),
            backing_off=bool(counts["backing_off"]))
        if counts["backing_off"]:
            cx.result.notes.append(f"{counts['backing_off']} objects that failed wait for their retry "
                                   "delay (`status` lists them; --full tries them at once)")

    async def _replicate(self) -> None:
        """The phases: scope groups, users, groups, removals. A scope that matches nothing stops it
        before anything is written for the kind it empties (and anything after it)."""
        cx = self.cx
        kinds = KINDS if cx.policy.groups else (USER,)
        if cx.scope.needs_groups_first:
            self.result.phase = "scope groups"
            await cx.reader.read_scoping_groups()
            if cx.reads.halted:
                return
        # the destination's groups are listed while the users are written (the users' phase writes
        # no group): the groups' phase then starts with its listing made
        ahead = {kind: asyncio.ensure_future(cx.listing.read_listing(kind))
                 for kind in kinds[1:] if await self._lists(kind)}
        try:
            for kind in kinds:
                if cx.stop.is_set():
                    break  # asked to stop: no further kind is read
                self.result.phase = f"{kind.lower()}s"
                if kind in ahead:
                    cx.listing.listings[kind] = cx.listing.noted(*await ahead.pop(kind))
                elif await self._lists(kind):
                    cx.listing.listings[kind] = await cx.listing.list_destination(kind)
                if kind == GROUP:
                    await cx.planner.replan_referrers_of_gone(GROUP)  # users re-created so far: before groups are read
                await cx.reader.replicate_kind(kind)
                if await self._scope_matches_nothing(kind):
                    return
                if kind == USER and GROUP in kinds and cx.reads.complete[USER] and not cx.stop.is_set():
                    # users whose removal the guard holds stay members of the groups planned next
                    await cx.removals.judge(USER)
        finally:
            await _cancel_listings(ahead.values())  # the cycle stopped before the kind's phase
        if not cx.stop.is_set():
            self.result.phase = "removals"
        await cx.removals.remove_vanished(kinds)
        await cx.writer.renames.write_parked()  # renames into names the cycle freed (a swap, a removal)
        await cx.removals.drop_removed_members()
        for kind in KINDS:  # for the next cycle: what this one re-created since
            await cx.planner.replan_referrers_of_gone(kind)

    async def _lists(self, kind: str) -> bool:
        """Whether this cycle lists the destination's objects of `kind`: a full cycle, a recovery, or
        a first copy (the state knows none of them; the listing finds those to adopt)."""
        cx = self.cx
        return cx.full or cx.recovering or await cx.store.count(kind) == 0

    async def _scope_matches_nothing(self, kind: str) -> bool:
        """After a complete read of a kind: whether the scope kept out every object of it we replicate,
        or names groups the source does not have; the cycle then stops (held)."""
        cx = self.cx
        if not cx.reads.complete[kind] or cx.stop.is_set() or not cx.scope.configured:
            return False
        if kind == GROUP and cx.scope.group_names:
            # a group listed before it exists is common: a note (the removal guard covers the rest)
            missing = missing_names_problem("scope.group_names", sorted(cx.scope.group_names - cx.reads.group_names_read),
                                            ())
            if missing:
                cx.result.notes.append(missing)
        in_scope = await cx.store.scratch.in_scope_count(kind)
        problem = empty_scope_problem(kind, cx.scope, read=in_scope + cx.reads.out_of_scope[kind],
                                      in_scope=in_scope, tracked=await cx.store.count(kind))
        if problem:
            cx.halt(problem)
        return cx.reads.halted is not None


async def _cancel_listings(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel these listings made ahead and wait until they end. Nobody waits for what they raise: it is logged."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    for outcome in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(outcome, Exception):
            log.warning("a listing made ahead of its phase failed, and the cycle ended before that phase: %s", outcome)


def not_kept_notes(not_kept: dict[str, Counter[str]]) -> list[str]:
    """One note per kind for what the destination cannot hold (sent to it never, so never rewritten)."""
    return ["the destination does not keep, so it is not sent: "
            + ", ".join(f"{name} ({count} {kind.lower()}s)" for name, count in sorted(counts.items()))
            for kind, counts in not_kept.items() if counts]


async def run_cycle(
    config: Config,
    source: Directory,
    destination: Directory,
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
