"""Removals (`Removals`): what we created or adopted and the source no longer has (or keeps out of
scope) is deleted or disabled, only after complete reads, only what the mass-removal guard lets
through, and only once the source answers 404 for it; groups then lose members this cycle deleted, and
member removals the membership guard held that were such members are no longer counted as held once
the group's loss of them is written.

Each removal is also noted in the state (`note_removed`, state.removed) until every group of ours that
named it has lost it: a group whose loss of it failed, or was not written (the cycle stopped first),
loses it in a later cycle the same way, its hold not counted (`drop_removed_members`)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

from replicator.cycle.context import CycleContext
from replicator.cycle.earlier_removals import EarlierRemovals
from replicator.cycle.sinks import dispatch
from replicator.cycle.work import RemovalVerdict, Unread
from replicator.errors import NotFoundError, ScimError
from replicator.pipeline.canonical import GROUP, KINDS, USER, canonicalise
from replicator.pipeline.outcome import Outcome
from replicator.pipeline.plan import DELETE, DISABLE, Step, label_of, plan_reference_drop, plan_removal
from replicator.pipeline.references import value_fragments
from replicator.pipeline.removals import member_hold_after_removals, member_values, names_gone, removal_guard
from replicator.state import ResourceRow
from replicator.state.records import SYNCED

log = logging.getLogger("replicator.cycle")

_REMOVALS_KEPT = 10_000  # removal candidates kept in memory between counting and removing
_HELD_LISTED = 50  # held removals listed by name in the report (all are counted)
_ASKED_AT_ONCE = 2000  # objects missing from a read asked for by id together (as many as a chunk of the state)


class Removals:
    """Judges and carries out one cycle's removals, kind by kind."""

    def __init__(self, cx: CycleContext) -> None:
        self.cx = cx
        self._verdicts: dict[str, RemovalVerdict] = {}  # per kind: what the guard decided, before any removal
        # the destination ids of the users whose removal the guard let through (those the read did not
        # see proven gone from the source): the groups planned next leave them out, and the membership
        # guard does not count them (`plan_upsert`)
        self.leaving: frozenset[str] = frozenset()
        self._still_there: dict[tuple[str, str], bool] = {}  # (kind, source id) asked for by id -> answered
        # the member removals the membership guard held (counted), with the entry listing them in the
        # result, until this cycle's removals say which of them went through (`_settle_member_holds`)
        self._member_holds: list[MemberHold] = []
        # group source id -> (the members still held, why) of a hold settled (`settled`)
        self._settled: dict[str, tuple[tuple[dict[str, Any], ...], str]] = {}
        self._earlier = EarlierRemovals(cx)  # what earlier cycles removed that groups may still name

    def note_member_hold(self, step: Step, entry: tuple[str, str, str]) -> None:
        """A group step whose member removals the membership guard held (counted, and listed as `entry`
        in the result): judged again once this cycle's removals are done (`drop_removed_members`)."""
        self._member_holds.append(MemberHold(step.source_id, step.held, step.held_among, entry))

    def settled(self, step: Step) -> Step:
        """A step as its group's hold stands once this cycle's removals settled it: the members still
        held and why (no longer those it lost with their removal), as the result's held list says. The
        dry run's plan shows its steps so."""
        settled = self._settled.get(step.source_id) if step.kind == GROUP and step.held else None
        if settled is None:
            return step
        held, why = settled
        return dataclasses.replace(step, held=held, held_why=why)

    async def note_removed(self, kind: str, dest_id: str) -> None:
        """We deleted or disabled this destination object (before its row is forgotten): what names it
        loses it at the end of the cycle (`drop_removed_members`), and the state keeps it for the cycles
        after, until no group of ours names it."""
        self.cx.moves.removed_dest_ids[kind].add(dest_id)
        await self.cx.store.removed.note(kind, dest_id)

    def held(self, kind: str) -> bool:
        """Whether the guard holds this kind's removals."""
        verdict = self._verdicts.get(kind)
        return verdict is not None and verdict.held is not None

    async def remove_vanished(self, kinds: tuple[str, ...]) -> None:
        """Remove (or disable) what we created or adopted and the source no longer has, kind by kind
        (groups before users), in chunks of the state; held by the mass-removal guard, which decides
        for every kind before anything is removed."""
        cx = self.cx
        if cx.stop.is_set():
            return
        if not all(cx.reads.complete[kind] for kind in kinds):
            # (those the guard already held are counted)
            held = sum([await cx.store.scratch.unread_count(kind) for kind in kinds if not self.held(kind)])
            if held:
                cx.result.counts["removals_held"] += held
                cx.result.notes.append(f"{held} removals held: the source read was not complete")
            return
        for kind in reversed(kinds):
            if kind not in self._verdicts:
                await self.judge(kind)
        for kind in reversed(kinds):
            verdict = self._verdicts[kind]
            if verdict.held or not verdict.planned:
                continue
            async with cx.workers.running() as send:
                async for chunk in _replay(verdict.kept) if verdict.kept is not None else cx.store.scratch.iter_unread(kind):
                    for step in await self._steps(kind, chunk, with_forms=True):
                        await dispatch(cx, step, send)

    async def judge(self, kind: str) -> None:
        """Count this kind's removals and let the guard decide (users: right after their read, so
        that users whose removal is held stay members of the groups planned next, and those whose
        removal it lets through leave them, in the groups' own writes, without the membership guard
        counting them; those the read did not see are asked for by id first, as before a removal)."""
        cx = self.cx
        removals, planned = 0, 0
        leaving: dict[str, str] = {}  # users: source id -> destination id of those removed (memberships go too)
        unread: list[str] = []  # ...of them, those the read did not see at all (not out of scope)
        kept: list[Unread] | None = []  # the candidates are kept for the second pass unless many
        listed: list[tuple[str, str, str]] = []
        async for chunk in cx.store.scratch.iter_unread(kind):
            steps = await self._steps(kind, chunk, with_forms=False)
            removing = [step for step in steps if step.action in (DELETE, DISABLE)]
            removals += len(removing)
            if kind == USER and cx.policy.groups:
                excluded = {row.source_id: why for row, why in chunk}
                leaving.update((step.source_id, step.dest_id) for step in removing if step.dest_id)
                unread += [step.source_id for step in removing if step.dest_id and not excluded.get(step.source_id)]
            planned += len(steps)
            keys = {row.source_id: row.match_key for row, _ in chunk}
            listed += [(kind, step.label or keys.get(step.source_id) or step.source_id, step.action)
                       for step in removing[: max(0, _HELD_LISTED - len(listed))]]
            if kept is not None:
                kept.append(chunk)
                if len(kept) * len(chunk) > _REMOVALS_KEPT:
                    kept = None
        tracked = await cx.store.count(kind)
        seen = await cx.store.scratch.in_scope_count(kind)
        held = removal_guard(removals=removals, tracked=tracked, seen=seen, policy=cx.removal_policy)
        self._verdicts[kind] = RemovalVerdict(kept, planned, held)
        if leaving and not held and not cx.stop.is_set():
            still_there = await self._still_in_source(kind, unread)
            self.leaving = frozenset(dest_id for source_id, dest_id in leaving.items() if source_id not in still_there)
        if held:
            cx.result.counts["removals_held"] += removals
            cx.result.held += [(k, label, f"{action} held: {held}") for k, label, action in listed]
            cx.result.notes.append(
                f"{removals} {kind} removals held: {held}; run with --allow-mass-delete if this is intended (a "
                "daemon: `scim-replicator approve`)"
            )
            log.error("mass removal of %ss held: %s", kind, held)

    async def _steps(self, kind: str, chunk: Unread, *, with_forms: bool) -> list[Step]:
        """The removal steps for a chunk of rows this cycle did not read in scope; `with_forms` reads
        the last written forms (for labels and disabling), which counting does not need."""
        cx = self.cx
        owned = {row.source_id: (row, why) for row, why in chunk if row.origin in ("created", "adopted")}
        intents = {sid: row for sid, (row, _) in owned.items() if not row.dest_id}  # creates noted, not recorded
        found = await self._resolve_intents(kind, intents) if intents else {}
        if found:
            owned = {sid: (row._replace(dest_id=found.get(sid, row.dest_id)), why) for sid, (row, why) in owned.items()}
        stored = await cx.planner.stored_many(kind, {sid: (row, row.digest) for sid, (row, _) in owned.items()},
                                              everything=with_forms)
        for source_id, dest_id in found.items() if with_forms else ():
            # nothing of it was recorded: what it holds (to disable it, to name it) is read from it
            try:
                live = canonicalise(await cx.destination.get(kind, dest_id), kind)
            except NotFoundError:
                del stored[source_id]
                continue
            stored[source_id] = dataclasses.replace(stored[source_id], canonical=live)
        steps = []
        for source_id, known in stored.items():
            step = plan_removal(kind=kind, source_id=source_id, stored=known,
                                label=label_of(known.canonical or {}, kind), policy=cx.policy)
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
        server may also under-state totalResults. Each one is asked for by id before it is removed
        (once a cycle: users are asked before groups are planned, `judge`); an object that is still
        there, or that cannot be asked for, is kept, and the cycle says so."""
        cx = self.cx
        asked = self._still_there

        async def answered(source_id: str) -> bool:
            try:
                await cx.source.get(kind, source_id)
            except NotFoundError:
                return False
            except ScimError as exc:
                log.warning("%s %s missing from the read could not be looked up in the source: %s", kind, source_id, exc)
            return True

        found = []
        for start in range(0, len(source_ids), _ASKED_AT_ONCE):
            ask = [sid for sid in source_ids[start:start + _ASKED_AT_ONCE] if (kind, sid) not in asked]
            for sid, there in zip(ask, await asyncio.gather(*map(answered, ask)), strict=True):
                asked[(kind, sid)] = there
                found += [sid] if there else []
        if found:
            cx.result.counts["removals_held"] += len(found)
            cx.result.outcome = Outcome.PARTIAL
            cx.result.notes.append(f"{len(found)} {kind}s missing from the source read are still in the source "
                                   "(it changed during the read?) or could not be looked up: not removed")
        return {sid for sid in source_ids if asked[(kind, sid)]}

    async def _resolve_intents(self, kind: str, intents: dict[str, ResourceRow]) -> dict[str, str]:
        """Objects gone from the source whose create was noted right before its POST but whose result
        was not recorded (a crash, or a failure after the POST): the destination ids of those the
        destination holds under their match key and no other object of ours claims (had the POST met
        an object already there, we would have adopted it, which makes it ours as well). The
        destination is listed for this if it was not this cycle. The notes of the others are dropped:
        their create never reached the destination, several objects share the key, or the listing is
        incomplete (then a warning says so, rather than listing it again every cycle)."""
        cx = self.cx
        listing = await cx.listing.listed_once(kind)
        if not listing.complete:
            log.warning("destination %s listing incomplete: %d objects whose create a crash or failure left "
                        "unrecorded cannot be looked for, and are forgotten", kind, len(intents))
        keys = [row.match_key for row in intents.values() if row.match_key]
        listed = await cx.store.scratch.listed_keys(kind, keys) if listing.complete and listing.listed and keys else {}
        found = {}
        for source_id, row in intents.items():
            dest_id = listed.get(row.match_key or "")
            if dest_id is not None and set(await cx.store.forms.owners(kind, dest_id)) <= {source_id}:
                found[source_id] = dest_id
            else:
                await cx.recorder.forget(kind, source_id)
        return found

    async def drop_removed_members(self) -> None:
        """What we wrote that names an object we removed loses it now: a group the member, a user the
        manager. A source that keeps deleted users among members (or as managers) leaves the object
        unchanged, and a destination that does not drop them itself would keep them. Later cycles plan
        such an object again (its source names an object we no longer have), so that an object back in
        scope rejoins it, and the reference is counted as dropped meanwhile. Member removals the
        membership guard held are settled for the groups whose drop went through (`_settle_member_holds`).

        The objects are this cycle's removals, and those of earlier cycles that members the guard held
        name (`EarlierRemovals.named_by`): a group whose drop of them failed then, or was not written,
        loses them now. Then the removals that no group of ours names any more are forgotten, and those
        remembered too long (`EarlierRemovals.forget`)."""
        cx = self.cx
        if cx.stop.is_set():
            return
        removed = cx.moves.removed_dest_ids
        held = (member for hold in self._member_holds for member in hold.members)
        earlier = await self._earlier.named_by(held, removed)
        if not any(removed.values()) and not any(earlier.values()):
            await self._earlier.forget({}, set())
            return
        # managers: users this cycle removed (the users naming earlier ones were planned again since)
        manager_drops = await self._reference_drops(USER, removed[USER], removed) if removed[USER] else []
        for kind in KINDS:  # (the dry run's sink re-plans the drops with them: DryRunSink.follow_up)
            removed[kind] |= earlier[kind]
        member_drops = await self._reference_drops(GROUP, set().union(*removed.values()), removed)
        done = await self._follow_up([step for step, _ in [*member_drops, *manager_drops]])
        dropped = {sid for kind, sid in done if kind == GROUP}
        self._settle_member_holds(removed[USER], removed[GROUP], dropped)
        still_named = {value for step, values in member_drops if step.source_id not in dropped for value in values}
        await self._earlier.forget(removed, still_named)

    async def _reference_drops(self, kind: str, gone: set[str], removed: dict[str, set[str]]
                               ) -> list[tuple[Step, set[str]]]:
        """The drops of `gone` (destination ids) from what we wrote of `kind`, each with the members it
        takes out (their values; none for a manager). Those objects are planned again next cycle, also
        when the PATCH fails here (a failure keeps the old digest), and are no longer counted unchanged."""
        cx = self.cx
        drops = []
        for source_id, dest_id, written in await cx.store.forms.written_forms_containing(kind, value_fragments(gone)):
            step = plan_reference_drop(kind, source_id=source_id, label=label_of(written, kind), written=written,
                                       dest_id=dest_id, gone_users=removed[USER], gone_groups=removed[GROUP])
            if step is not None:
                drops.append((step, member_values(written) - member_values(step.desired or {})))
        source_ids = [step.source_id for step, _ in drops]
        await cx.recorder.forget_source_digests(kind, source_ids)
        cx.result.counts["unchanged"] -= await self._counted_unchanged(kind, source_ids)
        return drops

    async def _follow_up(self, steps: list[Step]) -> set[tuple[str, str]]:
        """Write the drops (the sink: a dry run plans them), one by one; the objects ((kind, source id))
        whose drop went through. One did not when its write failed (the writer counts a failure:
        `Recorder.fail`), stopped the cycle (`cx.fatal`), or when the cycle was stopping before it."""
        cx, done = self.cx, set()
        for step in steps:
            stopping = cx.stop.is_set() or cx.fatal is not None
            failed = cx.result.counts["failed"]
            await cx.sink.follow_up([step])
            if not stopping and cx.fatal is None and cx.result.counts["failed"] == failed:
                done.add((step.kind, step.source_id))
        return done

    def _settle_member_holds(self, gone_users: set[str], gone_groups: set[str], dropped: set[str]) -> None:
        """Member removals the membership guard held while groups were planned, before the groups'
        removals were judged: those naming an object we removed (a subgroup gone from the source, or an
        object an earlier cycle removed) went through with its removal once the group's drop of them
        was written (`dropped`: the groups' source ids), and are no longer counted or listed as held;
        what is left of a hold stays counted and listed, with its reason judged again
        (`member_hold_after_removals`). A group whose drop failed (or was not written: the cycle
        stopped) still names them: its hold stands this cycle, and the next one drops them (state.removed)."""
        result = self.cx.result
        unsettled = []
        for hold in self._member_holds:
            settled = member_hold_after_removals(hold.members, hold.among, gone_users=gone_users,
                                                 gone_groups=gone_groups, policy=self.cx.policy)
            if settled is None or hold.source_id not in dropped or hold.entry not in result.held:
                unsettled.append(hold)
                continue
            still, why = settled
            self._settled[hold.source_id] = (
                tuple(member for member in hold.members if not names_gone(member, gone_users, gone_groups)), why)
            result.counts["member_removals_held"] -= len(hold.members) - still
            index = result.held.index(hold.entry)
            kind, label, _ = hold.entry
            if still:
                result.held[index] = (kind, label, why)
            else:
                del result.held[index]
            log.info("group %s: %d of the member removals held were of objects we removed, which it lost "
                     "with their removal; %d still held", label, len(hold.members) - still, still)
        self._member_holds = unsettled

    async def _counted_unchanged(self, kind: str, source_ids: list[str]) -> int:
        """How many of these objects this cycle counted unchanged: read, not written (or, dry-run,
        planned), not failing or waiting to retry. A member or manager drop writes to them after all."""
        cx = self.cx
        written = await cx.recorder.written_now(kind, source_ids)
        read = await cx.store.scratch.read_among(kind, [sid for sid in source_ids if sid not in written])
        rows = await cx.store.rows(kind, sorted(read))
        return sum(1 for row in rows.values() if row.status == SYNCED and row.next_attempt_at is None)


@dataclasses.dataclass(frozen=True)
class MemberHold:
    """Member removals of one group (its source id) the membership guard held (`Step.held`,
    `Step.held_among`), and the entry of the result's `held` that lists them."""

    source_id: str
    members: tuple[dict[str, Any], ...]
    among: int
    entry: tuple[str, str, str]


async def _replay(chunks: list[Unread]) -> AsyncIterator[Unread]:
    for chunk in chunks:
        yield chunk
