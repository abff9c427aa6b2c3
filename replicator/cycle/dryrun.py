"""The dry-run: a sink that plans instead of writing, and a recorder that leaves the state untouched.

Every step a live cycle would write is kept (one per object: the re-plan of a new object's references
folds into its create, whose body then shows them, as the live run counts the PATCH adding them as the
create; a member drop after a deletion is kept beside its group's step, as the live run makes a second
PATCH) and pretended done, so that later planning (objects waiting for a reference target, groups
naming new users) sees what the writes would have left. The plan becomes the result's `changes` (a
group's step with the member removals held as the cycle's removals settled them: `Removals.settled`).

The plan makes the live run's decisions where they only need reading: a create first looks for the
object on the destination (`DestinationIndex.find_existing`, read-only), and when it is there the step
is the adoption the live run would make (`plan_adoption`, listed in `result.adoptions`); planned
deletions and disables are noted in `cx.moves.removed_dest_ids`, so that the groups naming them are
planned to lose them (`follow_up`). Every destination id the plan shows is named in
`result.names` (userName or displayName), from the plan itself or the state's written forms.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from replicator.cycle.context import CycleContext
from replicator.cycle.recorder import count_failure
from replicator.cycle.work import PendingRead, StepQueue, Waiting
from replicator.errors import ScimError
from replicator.pipeline.canonical import GROUP, USER, canonicalise
from replicator.pipeline.plan import (
    CREATE,
    DELETE,
    DISABLE,
    RECORD,
    Step,
    Stored,
    label_of,
    plan_adoption,
    plan_reference_drop,
)
from replicator.pipeline.writes import stops_the_cycle
from replicator.scim.urns import ENTERPRISE_USER
from replicator.state.approvals import Approval

NAMED_PER_STEP = 50  # references of one step named from the state (the report shows no more of them)


class DryRunSink:
    """Plans each step and pretends it happened."""

    def __init__(self, cx: CycleContext) -> None:
        self.cx = cx
        self.plan: dict[tuple[str, str], Step] = {}  # one step per object
        self.drops: list[Step] = []  # member drops after this cycle's removals (a second PATCH of a group)
        self.overlay: dict[tuple[str, str], Stored] = {}  # what the planned writes would leave
        self.written: set[tuple[str, str]] = set()  # objects planned this cycle
        self.live: dict[tuple[str, str], dict[str, Any]] = {}  # adopted objects as the destination holds them

    async def take(self, step: Step, send: StepQueue | None) -> None:
        key = (step.kind, step.source_id)
        if step.action == CREATE and key not in self.plan:
            adoption = await self._adoption_or_create(step)
            if adoption is None:
                return  # the lookup failed: counted as the live run counts it
            step = adoption
        elif key in self.cx.result.adoptions:
            # the re-plan of an adopted object's references: still its adoption, against what is there
            step = plan_adoption(step=step, live=self.live[key], dest_id=self.plan[key].dest_id or "",
                                 policy=self.cx.policy, leaving=self.cx.removals.leaving)
        if step.action in (DELETE, DISABLE) and step.dest_id:
            self.cx.moves.removed_dest_ids[step.kind].add(step.dest_id)  # what names it loses it (follow_up)
        dest_id = self._plan_only(step)
        await self._name(step)
        if dest_id is not None:
            await self.cx.waiters.release(step.kind, step.source_id, dest_id)

    async def follow_up(self, steps: list[Step]) -> None:
        """The member and manager drops `Removals.drop_removed_members` planned from the written forms:
        an object this cycle planned already is judged on what that step leaves instead, and one it
        deletes loses nothing (the live run has forgotten its written form by then)."""
        moves = self.cx.moves.removed_dest_ids
        for step in steps:
            earlier = self.plan.get((step.kind, step.source_id))
            if earlier is not None and earlier.action == DELETE:
                continue
            planned = self.overlay.get((step.kind, step.source_id))
            if planned is not None and planned.canonical is not None:
                replanned = plan_reference_drop(step.kind, source_id=step.source_id, label=step.label,
                                                written=planned.canonical, dest_id=planned.dest_id,
                                                gone_users=moves[USER], gone_groups=moves[GROUP])
                if replanned is None:
                    continue
                step = replanned
            self.drops.append(step)
            await self._name(step)

    def finish(self) -> None:
        result = self.cx.result
        result.changes = [*map(self.cx.removals.settled, self.plan.values()), *self.drops]
        result.counts.update("adopt_planned" if key in result.adoptions else f"{step.action}_planned"
                             for key, step in self.plan.items())
        result.counts.update(f"{step.action}_planned" for step in self.drops)

    async def _adoption_or_create(self, step: Step) -> Step | None:
        """What the live writer would do with this create: adopt the destination object that has its
        match key (as `StepWriter._adopt` plans it), or create it. None: the lookup failed."""
        cx = self.cx
        try:
            existing = await cx.listing.find_existing(step)
        except ScimError as exc:
            if stops_the_cycle(exc):
                raise
            await cx.recorder.fail(step.kind, step.source_id, step.label, str(exc), step.source_digest)
            return None
        if existing is None:
            return step
        written = None  # what a previous owner of it (a source object that came back under a new id) wrote
        for previous_owner in await cx.store.forms.owners(step.kind, existing["id"]):
            if previous_owner != step.source_id:
                written = written or await cx.store.forms.canonical(step.kind, previous_owner)
        live = canonicalise(existing, step.kind)
        if written is None and (step.kind, step.source_id) in cx.planner.unfinished_creates and live.get("members"):
            written = {"members": live["members"]}
        adoption = plan_adoption(step=step, live=live, dest_id=existing["id"], policy=cx.policy, previous=written,
                                 leaving=cx.removals.leaving)
        cx.planner.count_held_members(adoption)
        key = (step.kind, step.source_id)
        self.live[key] = live
        cx.result.adoptions.add(key)
        return adoption

    def _plan_only(self, step: Step) -> str | None:
        """Remember the change for the report, and pretend it happened for later planning; return the
        destination id the object would have (None: it would have none)."""
        key = (step.kind, step.source_id)
        earlier = self.plan.get(key)
        if earlier is not None and earlier.action == CREATE:
            # the re-plan of a new object's references folds into its create
            step = Step(CREATE, step.kind, step.source_id, step.label, step.desired, step.digest)
        if step.action != RECORD or key in self.cx.result.adoptions:
            self.plan[key] = step
        if step.desired is not None:
            dest_id = step.dest_id or f"<new {step.kind} {step.label}>"
            self.written.add(key)
            self.overlay[key] = Stored(dest_id, step.digest, step.desired, disabled=step.action == DISABLE)
            return dest_id
        return None

    async def _name(self, step: Step) -> None:
        """Name the step's object and the objects it refers to (members, manager) by destination id."""
        names = self.cx.result.names
        if step.dest_id:
            names.setdefault(step.dest_id, step.label)
        if step.desired is not None and not step.dest_id:
            names[f"<new {step.kind} {step.label}>"] = step.label
        unknown = [ref for ref in dict.fromkeys(referenced_ids(step)) if ref not in names][:NAMED_PER_STEP]
        for dest_id in unknown:
            for kind in (USER, GROUP):
                owners = await self.cx.store.forms.owners(kind, dest_id)
                form = await self.cx.store.forms.canonical(kind, owners[0]) if owners else None
                if form is not None:
                    names[dest_id] = label_of(form, kind)
                    break


def referenced_ids(step: Step) -> list[str]:
    """The destination ids a step names as members or manager, in its body and its operations."""
    ids = [member["value"] for member in (step.desired or {}).get("members", []) if isinstance(member, Mapping)
           and step.action == CREATE]
    manager = (step.desired or {}).get(ENTERPRISE_USER, {}).get("manager") if step.action == CREATE else None
    if isinstance(manager, dict) and isinstance(manager.get("value"), str):
        ids.append(manager["value"])
    for op in step.operations:
        path, value = str(op.get("path", "")), op.get("value")
        if path.startswith("members[value eq "):
            ids.append(_unquoted(path[len("members[value eq "):-1]))
        elif path == "members" and isinstance(value, list):
            ids += [member["value"] for member in value if isinstance(member, Mapping) and "value" in member]
        elif path.endswith("manager") and isinstance(value, dict) and isinstance(value.get("value"), str):
            ids.append(value["value"])
    return [ref for ref in ids if isinstance(ref, str)]


def _unquoted(literal: str) -> str:
    """The string a filter literal (`"id"`, JSON-escaped) names."""
    try:
        value = json.loads(literal)
    except ValueError:
        return literal.strip('"')
    return value if isinstance(value, str) else literal


class DryRunRecorder:
    """Records nothing; answers what this cycle wrote from the plan."""

    def __init__(self, cx: CycleContext, sink: DryRunSink) -> None:
        self.cx = cx
        self._sink = sink

    async def open_run(self) -> None:
        pass

    async def take_approval(self) -> Approval | None:
        return await self.cx.store.approvals.standing(time.time())

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
