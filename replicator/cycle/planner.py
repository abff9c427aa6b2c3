"""Planning glue (`Planner`): gathers what the pure planner needs for a batch of source objects (their
reference targets' destination ids, what the state and the live destination hold) and turns each into
a `Step`; objects whose references have no destination id yet wait for them (waiters.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any

from replicator.cycle.context import CycleContext
from replicator.cycle.work import PendingRead, Waiting
from replicator.pipeline.answers import kind_mismatch_reason, members_of_another_kind
from replicator.pipeline.canonical import GROUP, USER, digest
from replicator.pipeline.plan import (
    ADOPT_REASON,
    CREATE,
    NOTHING,
    PATCH,
    Step,
    Stored,
    label_of,
    names_leaving,
    plan_upsert,
)
from replicator.pipeline.references import (
    TAKEN,
    all_resolve,
    dropped_references_note,
    reference_values,
    referenced_ids,
    required_kinds,
    translatable_in_chunks,
    translate,
    value_fragments,
    wrong_kind_note,
    wrong_kind_references,
)
from replicator.pipeline.value_order import sort_members
from replicator.state import ResourceRow
from replicator.state.records import CREATING, DISABLED

log = logging.getLogger("replicator.cycle")

# planning yields to the event loop every this many objects: planning a page of 500 in one go holds
# the loop for tens of milliseconds, and every answer that arrives meanwhile waits for it
_PLAN_STRIDE = 32

# a group of more members than this is looked up and translated this many members at a time
_MEMBER_CHUNK = 8192


async def let_the_loop_run(index: int) -> None:
    """In a long planning loop, every `_PLAN_STRIDE` objects: let answers that arrived be handled."""
    if index % _PLAN_STRIDE == _PLAN_STRIDE - 1:
        await asyncio.sleep(0)


class Planner:
    """Plans batches of source objects against the state, the live destination and the plan so far."""

    def __init__(self, cx: CycleContext) -> None:
        self.cx = cx
        # objects whose create an earlier run noted and never recorded (a crash): what a destination
        # object under their key holds is what we put there
        self.unfinished_creates: set[tuple[str, str]] = set()
        # objects written without some of their references: (kind, source id) -> (label, target source ids)
        self.unresolved: dict[tuple[str, str], tuple[str, list[str]]] = {}
        # ...and the kind of object those references must name, where they say (a member's type, a manager)
        self.required: dict[tuple[str, str], dict[str, str]] = {}
        # objects adopted this cycle without some of their references: (kind, source id) -> the form the
        # destination holds after the adoption, which their re-plan (a target written later) is diffed against
        self.adopted_forms: dict[tuple[str, str], dict[str, Any]] = {}

    async def plan_batch(
        self, kind: str, batch: list[PendingRead], held: list[Waiting] | None,
        targets: tuple[dict[str, str], dict[str, str]] | None = None,
    ) -> list[Step]:
        """Plan a batch; objects referring to objects without a destination id yet go to `held`.
        `targets`: the destination ids of the batch's references, when the caller knows them."""
        cx = self.cx
        ready: list[tuple[PendingRead, str, dict[str, Any], str]] = []
        # big groups of the reader's own, translated a chunk at a time (before the others' targets are
        # looked up: no yield between that lookup and their waits)
        chunked: dict[str, tuple[dict[str, Any], list[str], dict[str, str]]] = {}
        for read in batch if held is not None else ():
            if (translatable_in_chunks(read.canonical, kind, _MEMBER_CHUNK)
                    and (translated := await self._translated_in_chunks(read.canonical)) is not None):
                chunked[read.source_id] = translated
        if targets is None:
            targets = await self.targets(kind, [read.canonical for read in batch if read.source_id not in chunked])
        for read in batch:  # no yield here: a target recorded meanwhile would not release its waiter
            if read.row is not None and read.row.status == CREATING:
                self.unfinished_creates.add((kind, read.source_id))
            label = label_of(read.canonical, kind)
            required = None
            if read.source_id in chunked:
                desired, unresolved, required = chunked.pop(read.source_id)
            else:
                # a read of the reader's own (`held`) is read nowhere after its plan: its members may be taken
                desired, unresolved = translate(read.canonical, kind, *targets, consume=held is not None)
                if unresolved and held is not None:
                    cx.waiters.wait_for(kind, read, unresolved, targets, held)
                    continue
            if unresolved:
                # written without some references: the next cycle must plan it again (not take the
                # fast path on unchanged source bytes), so that a target written later joins it
                read = dataclasses.replace(read, source_digest=None)
                self.unresolved[(kind, read.source_id)] = (label, unresolved)
                self.required[(kind, read.source_id)] = (
                    required if required is not None else required_kinds(read.canonical, kind, unresolved))
            elif self.unresolved:
                self.unresolved.pop((kind, read.source_id), None)
                self.required.pop((kind, read.source_id), None)
            ready.append((read, label, desired, digest(desired)))
        dest = cx.listing.listings[kind]
        live_known = dest is not None and dest.complete and cx.full
        # a group naming users that leave this cycle is written without them, so its plan needs the form
        # we last wrote whatever its digest (else it plans against nothing, and merge mode removes none)
        leaving = cx.removals.leaving if kind == GROUP else frozenset()
        stored = await self.stored_many(
            kind, {read.source_id: (read.row, None if names_leaving(desired, leaving) else want)
                   for read, _, desired, want in ready},
            everything=live_known)
        # an object written earlier in this cycle is newer than the destination listing; one the state
        # has no destination object for is a create, whatever the listing holds (no query: a released
        # waiter is planned alone, and a query each made a chain of managers wait a page for each link)
        listed_now = [read.source_id for read, *_ in ready if read.source_id in stored] if live_known else []
        written = await cx.recorder.written_now(kind, listed_now)
        fresh = {sid for sid in listed_now if sid not in written}
        forms = await cx.store.scratch.listed_forms(kind, [stored[sid].dest_id for sid in fresh if sid in stored])
        steps = []
        # while the guard holds users' removals, the groups written keep members that should go: they
        # record no source digest, so the next cycle plans them again (so does a group whose own member
        # removals were held)
        replan_groups = kind == GROUP and cx.removals.held(USER)
        for index, (read, label, desired, want) in enumerate(ready):
            await let_the_loop_run(index)
            known = stored.get(read.source_id)
            live_here = read.source_id in fresh
            live = forms.get(known.dest_id) if (live_here and known) else None
            adopted = self.adopted_forms.pop((kind, read.source_id), None) if self.adopted_forms else None
            if adopted is not None and known:  # adopted this cycle: what we did not write there is live
                live, live_here = adopted, True
            if known:  # what the destination is known to lose of an unchanged value is no difference
                live = cx.keeps.compared(kind, live, desired, known.canonical, read.row)
            row = read.row
            if self._backing_off(row, read.source_digest):
                cx.result.counts["backing_off"] += 1
                continue
            if live is not None and (confused := members_of_another_kind(desired.get("members", []), live)):
                # a server ignoring member type holds another object than we wrote: writing it again
                # would not change that
                await cx.recorder.fail(kind, read.source_id, label, kind_mismatch_reason(confused), read.source_digest)
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
                policy=cx.policy,
                leaving=cx.removals.leaving,
                source_digest=None if replan_groups else read.source_digest,
            )
            if adopted is not None and step.action == PATCH:
                step = dataclasses.replace(step, reason=ADOPT_REASON)  # the rest of its adoption
            self.count_held_members(step)
            if step.action == NOTHING and not (replan_groups or step.held_members):
                await cx.recorder.note_source_digest(kind, read)  # (a step that writes carries it: plan_upsert)
            if step.action == CREATE and not step.reason and cx.scope.configured:
                step = dataclasses.replace(step, reason=cx.scope.inclusion(kind))
            steps.append(step)
        return steps

    def count_held_members(self, step: Step) -> None:
        """A group step whose member removals the membership guard held: counted and listed (until the
        cycle's removals show some of them went through: `Removals.note_member_hold`)."""
        if step.held_members:
            entry = (step.kind, step.label, step.held_why)
            self.cx.result.counts["member_removals_held"] += step.held_members
            self.cx.result.held.append(entry)
            self.cx.removals.note_member_hold(step, entry)
            log.error("member removals of group %s held: %s", step.label, step.held_why)

    def _backing_off(self, row: ResourceRow | None, source_digest: str | None) -> bool:
        """A failed attempt (a create, or an update of an object already there, which keeps its status)
        waits for its delay, unless the source object changed since (its bad data may be fixed) or the
        cycle is full; a success clears it."""
        if row is None or self.cx.full or (row.next_attempt_at or 0) <= time.time():
            return False
        return row.failed_source_digest is None or row.failed_source_digest == source_digest

    async def _translated_in_chunks(
        self, canonical: dict[str, Any],
    ) -> tuple[dict[str, Any], list[str], dict[str, str]] | None:
        """A big group's (desired form, unresolved source ids, the kinds they must name), its members
        looked up and translated `_MEMBER_CHUNK` at a time, each chunk's source members let go as it is
        translated (memory: a group of a million members is not held with every destination id beside
        it, nor in both forms at once); its `members` are then `TAKEN`. None, with nothing taken, when a
        member has no destination id yet (it waits whole, as any object does). A target gone between the
        check and the translation (none should) is written without, like a reference of a released waiter."""
        members = canonical["members"]
        for start in range(0, len(members), _MEMBER_CHUNK):
            chunk = members[start:start + _MEMBER_CHUNK]
            if not all_resolve(chunk, *await self.targets(GROUP, [{"members": chunk}])):
                return None
        canonical["members"] = TAKEN
        translated: list[dict[str, Any]] = []
        unresolved: list[str] = []
        required: dict[str, str] = {}
        while members:
            part = {"members": members[-_MEMBER_CHUNK:]}
            del members[-_MEMBER_CHUNK:]
            done, missing = translate(part, GROUP, *await self.targets(GROUP, [part]), consume=True)
            translated += done.get("members", ())
            if missing:
                unresolved += missing
                required |= required_kinds(part, GROUP, missing)
        desired = {key: value for key, value in canonical.items() if key != "members"}
        if translated:
            desired["members"] = sort_members(translated)
        return desired, unresolved, required

    async def targets(self, kind: str, canonicals: list[dict[str, Any]]) -> tuple[dict[str, str], dict[str, str]]:
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
        cx = self.cx
        if not source_ids:
            return {}
        wanted = list(dict.fromkeys(source_ids))
        found = {source_id: planned.dest_id for source_id, planned in cx.recorder.planned(kind, wanted).items()}
        if found:
            wanted = [source_id for source_id in wanted if source_id not in found]
        # objects read out of scope are no targets after a complete read, unless their removal is held
        leaving = cx.reads.complete[kind] and not cx.removals.held(kind)
        from_state = await cx.store.dest_ids(kind, wanted, not_out_of_scope=leaving)
        from_state.update(found)  # (none of the same ids: memory, a group of everyone's is not copied)
        found = from_state
        listing = cx.listing.listings[kind]
        if cx.full and listing is not None and listing.complete:
            # objects deleted on the destination are no reference targets until re-created
            listed = await cx.store.scratch.listed_before(kind, list(found.values()))
            written = await cx.recorder.written_now(kind, [sid for sid, did in found.items() if did not in listed])
            found = {sid: did for sid, did in found.items() if did in listed or sid in written}
        # memory: keyed by the callers' strings (the members' values, as `wanted` holds them), not the copies
        # SQLite answered (`dest_ids` keys by the strings it is given; so does the dry run's overlay)
        return found

    async def stored_many(
        self, kind: str, wanted: dict[str, tuple[ResourceRow | None, str | None]], *, everything: bool = False
    ) -> dict[str, Stored]:
        """What the state says of these objects (source id -> (row, desired digest)). The last written
        form is read only where it is needed: when the digest differs, the object is disabled, or
        `everything` (full reconcile, removals)."""
        planned = self.cx.recorder.planned(kind, wanted)
        out: dict[str, Stored] = {}
        needed = []
        for source_id, (row, want) in wanted.items():
            overlay = planned.get(source_id)
            if overlay is not None:
                out[source_id] = overlay
                continue
            if row is None or not row.dest_id:
                continue
            out[source_id] = Stored(row.dest_id, row.digest, None, disabled=row.status == DISABLED)
            if everything or row.digest != want or row.status == DISABLED:
                needed.append(source_id)
        for source_id, canonical in (await self.cx.store.forms.canonicals(kind, needed)).items():
            out[source_id] = dataclasses.replace(out[source_id], canonical=canonical)
        return out

    async def replan_referrers_of_gone(self, kind: str) -> None:
        """Objects of `kind` naming a destination id that is gone are planned again (the zero-change
        path would keep a re-created member out of its unchanged group)."""
        moves = self.cx.moves
        fresh = moves.recreated_dest_ids - moves.replanned_for[kind]
        if fresh:
            forms = await self.cx.store.forms.written_forms_containing(kind, value_fragments(fresh))
            naming = [sid for sid, _, written in forms if reference_values(written, kind) & fresh]
            await self.cx.recorder.forget_source_digests(kind, naming)
        moves.replanned_for[kind] |= fresh

    async def count_dropped_references(self) -> None:
        """At the end of the cycle: references written nowhere because their target names nothing the
        source has (not read at all this cycle: neither in scope nor out of it, where leaving it out is
        the scope's doing, nor failed, which is a failure of its own) are counted and named."""
        cx = self.cx
        targets = sorted({target for _, pending in self.unresolved.values() for target in pending})
        if not targets or not all(cx.reads.complete.values()):
            return  # (an incomplete read is partial already: its unread objects are no proof)
        users, groups = await cx.store.scratch.read_among(USER, targets), await cx.store.scratch.read_among(GROUP, targets)
        known = users | groups
        dropped = {key: (label, [t for t in pending if t not in known]) for key, (label, pending) in self.unresolved.items()}
        # a reference naming an object of the other kind than it must (a member whose type lies, a
        # manager naming a group) names nothing it can be written as
        wrong = wrong_kind_references(self.unresolved, self.required, users, groups)
        for note in (dropped_references_note({key: entry for key, entry in dropped.items() if entry[1]}),
                     wrong_kind_note(wrong)):
            if note:
                cx.result.notes.append(note)
                log.warning("%s", note)
        count = sum(len(pending) for _, pending in dropped.values()) + sum(len(found) for _, found in wrong.values())
        if count:
            cx.result.counts["references_dropped"] += count

