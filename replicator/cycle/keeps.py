"""What the destination keeps, for one cycle (`KeepsLearner`): the profile learned so far is loaded
from the state at the start; write answers and full-reconcile read-backs are observed; the compare
sees the destination's form with the learned losses of unchanged values hidden (pipeline/keeps); at
the end the profile is revised, recorded and reported. So is the member-count limit learned for the
destination (the writer's MemberRequests load it at the start and record it at the end).

Learned only from what we know we sent: a create's answer (when it is the server's representation,
with `meta`, not an echo of our body), a PATCH's answer for the attributes that PATCH set (of an object
whose read-back already showed a loss this cycle, only what it keeps: a loss is seen once, and a loss the
repair's answer holds again was drift), each in Bulk too, and, on a full
reconcile, the listed form of an object against the form we last wrote there (recorded only after a
successful write). A dry run records nothing.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from replicator.pipeline.canonical import KINDS, canonicalise
from replicator.pipeline.keeps import (
    KEPT,
    Learned,
    Observations,
    as_held,
    forgotten_note,
    integrity_note,
    observe,
    observed_shape,
    patched_form,
    profile_note,
    revise,
)
from replicator.pipeline.urls import destination_key
from replicator.state.records import FAILED

if TYPE_CHECKING:
    from replicator.cycle.context import CycleContext
    from replicator.state import ResourceRow


class KeepsLearner:
    """Learns, applies and records what the destination loses of each kind."""

    def __init__(self, cx: CycleContext) -> None:
        self.cx = cx
        self.destination = destination_key(cx.config.destination.url)
        self.profile: dict[str, dict[str, Learned]] = {kind: {} for kind in KINDS}
        self.seen = {kind: Observations() for kind in KINDS}
        self.hidden: dict[str, Counter[str]] = {kind: Counter() for kind in KINDS}
        self.lossy: set[tuple[str, str]] = set()  # (kind, destination id) whose read-back showed a loss
        # `observed_shape` entries of create answers held as sent: each path they name was seen kept
        self.kept_shapes: dict[str, set[Any]] = {kind: set() for kind in KINDS}

    async def load(self) -> None:
        for kind in KINDS:
            rows = await self.cx.store.keeps.learned(self.destination, kind)
            self.profile[kind] = {path: Learned(how, objects) for path, how, objects, _ in rows}
        await self.cx.writer.members.load()

    def answered(self, kind: str, sent: dict[str, Any] | None, answer: dict[str, Any]) -> None:
        """A successful create's answer: what the destination holds of what it was just sent.

        An answer holding what was sent observes every path of it kept; once each was seen kept this
        cycle, seeing it again changes nothing (`revise` asks whether a path was kept, not how often;
        losses, integrity ones counted, are observed from every answer that differs from what was sent)."""
        if sent is None or not isinstance(answer.get("meta"), dict):
            return
        held = canonicalise(answer, kind)
        if held != sent:
            self.seen[kind].add(observe(sent, held))
            return
        shape, kept = observed_shape(sent), self.kept_shapes[kind]
        if not kept.issuperset(shape):
            self.seen[kind].add(observe(sent, held))
            kept.update(shape)

    def reads_answer(self, operations: list[dict[str, Any]]) -> bool:
        """Whether `patched` learns anything from the answer to a PATCH of these operations (not from one
        that changes members only: a group of everyone's answer is megabytes, not worth reading)."""
        return bool(patched_form(operations))

    def patched(self, kind: str, dest_id: str, operations: list[dict[str, Any]], answer: dict[str, Any] | None) -> None:
        """A successful PATCH's answer (the server's representation, with `meta`): what the destination
        holds of the attributes that PATCH set. Of an object whose read-back showed a loss this cycle
        (the PATCH repairs it), only what the answer holds counts: its losses were counted once, and a
        path the repair's answer holds was drift, not a habit of the destination."""
        if answer is None or not isinstance(answer.get("meta"), dict):
            return
        sent = patched_form(operations)
        if sent:
            seen = observe(sent, canonicalise(answer, kind))
            if (kind, dest_id) in self.lossy:
                seen = {path: how for path, how in seen.items() if how == KEPT}
            self.seen[kind].add(seen)

    def compared(self, kind: str, live: dict[str, Any] | None, desired: dict[str, Any],
                 previous: dict[str, Any] | None, row: ResourceRow | None) -> dict[str, Any] | None:
        """The listed form `live` as the compare should see it (full reconcile); observed against what
        we last wrote there, unless the last write failed (it may have been carried out in part)."""
        if live is None or previous is None:
            return live
        if row is None or (row.status != FAILED and not row.attempts):
            seen = observe(previous, live)
            self.seen[kind].add(seen)
            if row is not None and row.dest_id and any(how != KEPT for how in seen.values()):
                self.lossy.add((kind, row.dest_id))
        held, hidden = as_held(live, desired, previous, self.profile[kind])
        self.hidden[kind].update(hidden)
        return held

    async def finish(self) -> list[str]:
        """Revise, record (not in a dry run) and report the profiles."""
        notes = await self.cx.writer.members.finish()
        for kind in KINDS:
            profile, learned, forgotten = revise(self.profile[kind], self.seen[kind])
            if not self.cx.dry_run and (learned or forgotten or profile != self.profile[kind]):
                await self.cx.store.keeps.replace(self.destination, kind,
                                                  {path: (e.how, e.objects) for path, e in profile.items()})
            notes += [note for note in (profile_note(kind, profile, self.hidden[kind], learned),
                                        forgotten_note(kind, forgotten), integrity_note(kind, self.seen[kind])) if note]
        return notes
