"""Renames the destination answered 409 (`BlockedRenames`): the name wanted is held by another object,
often one of ours that this cycle renames away too (a swap, a rotation) or deletes. They are parked,
and written after the removals in the order `plan_renames` gives, a cycle of renames turning through a
temporary name; the form with the temporary name is recorded (and committed) before it is sent, so a
crash in the middle leaves a state whose next cycle renames the object again, and the renames are
planned from the names the destination holds (a GET each), so a temporary name recorded but never
applied does not hide the loop from the next cycle. A parked rename, or a rename off a temporary name,
that the destination refuses for another reason than the name (another attribute of the same PATCH) is
written again with the name alone (`rename_alone`): the object never keeps a name nobody asked for while
its own can be written, nor holds up the renames planned after it; the rest is its failure, retried. A
final name still taken keeps the temporary name (and fails): there is no name it could rightly take."""

from __future__ import annotations

import dataclasses
import logging

from replicator.cycle.context import CycleContext
from replicator.errors import ScimError, ScimStatusError
from replicator.pipeline.canonical import KINDS, digest, match_value
from replicator.pipeline.plan import PATCH, Step
from replicator.pipeline.renames import (
    NAME_ATTRIBUTE,
    Rename,
    is_temporary_name,
    name_taken,
    plan_renames,
    refused_for_another_reason,
    renamed_to,
)
from replicator.pipeline.writes import stops_the_cycle

log = logging.getLogger("replicator.cycle")


class BlockedRenames:
    """One cycle's renames that met a name still held, and their writing once the rest is written."""

    def __init__(self, cx: CycleContext) -> None:
        self.cx = cx
        self._parked: dict[tuple[str, str], Step] = {}
        self._resolving = False  # a 409 now is the rename's failure, no longer a reason to wait

    def park(self, step: Step, conflict: ScimStatusError) -> bool:
        """Keep a PATCH answered "name taken" (409, or a 400 `uniqueness`) for later when it renames the
        object; False otherwise (or while the renames are written: the answer is then a failure)."""
        if self._resolving or not name_taken(conflict.status, conflict.scim_type) \
                or renamed_to(step.kind, step.operations) is None:
            return False
        log.debug("%s %s: its new name is taken (%s); renaming it after the rest", step.kind, step.label, conflict)
        self._parked[(step.kind, step.source_id)] = step
        return True

    async def write_parked(self) -> None:
        """Write the parked renames (after the removals, which may free the names wanted), kind by kind,
        in the order `plan_renames` gives; one whose name is still taken fails with the 409."""
        cx = self.cx
        if not self._parked or cx.stop.is_set() or cx.fatal is not None:
            return
        self._resolving = True
        for kind in KINDS:
            steps = {sid: step for (k, sid), step in self._parked.items() if k == kind}
            if not steps:
                continue
            written = await cx.store.forms.canonicals(kind, list(steps))
            attribute = NAME_ATTRIBUTE[kind]
            renames = []
            for sid, step in steps.items():
                # the name the destination holds: the state may say a temporary name whose PATCH never
                # landed (a crash, a lost answer), and planning from it would never see the loop again
                current = await self._held_name(step) or (written.get(sid) or {}).get(attribute)
                wanted = renamed_to(kind, step.operations)
                assert wanted is not None
                renames.append(Rename(sid, current if isinstance(current, str) else "", wanted))
            for move in plan_renames(renames):
                if cx.fatal is not None or cx.stop.is_set():
                    break
                if move.temporary:
                    await self._move_aside(steps[move.key], written.get(move.key) or {}, move.name)
                else:
                    await cx.writer.run_step(steps[move.key])
        self._parked.clear()

    async def _held_name(self, step: Step) -> str | None:
        """The object's name as the destination holds it (one GET); None when it cannot be read."""
        assert step.dest_id is not None
        try:
            live = await self.cx.destination.get(step.kind, step.dest_id)
        except ScimError as exc:
            log.debug("%s %s: its name on the destination could not be read (%s)", step.kind, step.label, exc)
            return None
        name = live.get(NAME_ATTRIBUTE[step.kind])
        return name if isinstance(name, str) else None

    async def _move_aside(self, step: Step, written: dict[str, object], name: str) -> None:
        """Give the object its temporary name: recorded and committed first (a crash after the PATCH
        leaves a state that says so), then sent; a failure is the object's."""
        cx = self.cx
        assert step.dest_id is not None
        attribute = NAME_ATTRIBUTE[step.kind]
        aside = {**written, attribute: name}
        await cx.store.record_success(step.kind, step.source_id, dest_id=step.dest_id, digest=digest(aside),
                                      canonical=aside, match_key=match_value(aside, cx.match_attribute(step.kind)))
        await cx.store.flush()
        log.info("%s %s: moved to the temporary name %r so that a swap of names can go through",
                 step.kind, step.label, name)
        moving = dataclasses.replace(step, action=PATCH, desired=aside, digest=digest(aside),
                                     operations=[{"op": "replace", "path": attribute, "value": name}])
        try:
            await cx.writer.write_operations(moving)
        except ScimError as exc:
            if stops_the_cycle(exc):
                cx.fatal = exc
                return
            await cx.recorder.fail(step.kind, step.source_id, step.label, f"moving it to a temporary name for a "
                                   f"rename: {exc}", step.source_digest)

    async def rename_alone(self, step: Step, refusal: ScimError) -> None:
        """`step` renames an object that holds (the state says) a temporary name, or is a parked rename
        being written (the renames planned after it wait for the name it gives up), and the destination
        refused it for another reason than the name: PATCH the name alone (recorded when it lands, with
        no source digest, so the next cycle plans the rest again); the refusal stays the object's
        failure. A name still taken, or any other answer to that PATCH, leaves the name it holds."""
        cx = self.cx
        wanted = renamed_to(step.kind, step.operations)
        if wanted is None or step.action != PATCH or step.dest_id is None or not refused_for_another_reason(refusal):
            return
        attribute = NAME_ATTRIBUTE[step.kind]
        written = await cx.store.forms.canonical(step.kind, step.source_id) or {}
        held = written.get(attribute)
        parked = self._resolving and (step.kind, step.source_id) in self._parked
        if not isinstance(held, str) or held == wanted or not (parked or is_temporary_name(held)):
            return
        named = {**written, attribute: wanted}
        renaming = dataclasses.replace(step, desired=named, digest=digest(named),
                                       operations=[{"op": "replace", "path": attribute, "value": wanted}])
        try:
            await cx.writer.write_operations(renaming)
        except ScimError as exc:
            log.warning("%s %s: keeps the name %r: the name alone was refused too (%s)",
                        step.kind, step.label, held, exc)
            return
        await cx.store.record_success(step.kind, step.source_id, dest_id=step.dest_id, digest=digest(named),
                                      canonical=named, match_key=match_value(named, cx.match_attribute(step.kind)))
        log.info("%s %s: renamed from %r alone; the rest of its change was refused (%s)",
                 step.kind, step.label, held, refusal)
