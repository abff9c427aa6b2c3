"""The single-step writer (`StepWriter`): one planned step becomes its requests to the destination and
its record in the state. A create looks for an object to adopt first (and again when an answer was
lost), a PATCH that meets a vanished object re-creates it, a destination without PATCH gets a PUT of the
object as it is there with the step applied, a delete of what is gone already counts as done."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from typing import Any

from replicator.cycle.context import CycleContext
from replicator.cycle.gone_members import GoneMembers
from replicator.cycle.member_requests import MEMBER_REFUSALS, MemberRequests
from replicator.cycle.renames import BlockedRenames
from replicator.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    ProtocolError,
    ScimError,
    ServerError,
    StateError,
    TransportError,
)
from replicator.pipeline.answers import answered_member_values, members_left_out
from replicator.pipeline.canonical import GROUP, canonicalise, digest, match_value, schemas_for
from replicator.pipeline.member_refusals import MembersNotWritten
from replicator.pipeline.plan import (
    CREATE,
    DELETE,
    DISABLE,
    PATCH,
    RECORD,
    RECREATE_REASON,
    Step,
    created_counter,
    plan_adoption,
    update_counter,
)
from replicator.pipeline.writes import (
    destination_unreachable,
    falls_back_to_put,
    put_body,
    put_form,
    rereads_live,
    stops_the_cycle,
)
from replicator.state.records import DISABLED, SYNCED

log = logging.getLogger("replicator.cycle")

_CREATE_ATTEMPTS = 3  # a POST whose answer was lost is looked up before it is sent again


class StepWriter:
    """Writes steps one by one (concurrently, from the workers) and records what they wrote."""

    def __init__(self, cx: CycleContext) -> None:
        self.cx = cx
        self.maybe_posted: set[tuple[str, str]] = set()  # creates whose Bulk request's answer was lost
        self._transport_failures = 0  # consecutive operations lost to transport errors
        self.members = MemberRequests(cx)
        self.renames = BlockedRenames(cx)  # renames answered 409, written once the rest is
        self.gone_members = GoneMembers(cx)  # members deleted on the destination behind our back

    async def run_step(self, step: Step) -> None:
        """Execute one step; a failure is recorded for its object, or stops the cycle when fatal."""
        cx = self.cx
        if cx.fatal is not None or cx.stop.is_set():
            return  # queued work is dropped; calls already in flight finish
        try:
            await self._execute(step)
            self._transport_failures = 0
        except (ScimError, StateError) as exc:
            if stops_the_cycle(exc):
                cx.fatal = exc
                return
            if isinstance(exc, ScimError):  # a swap's rename refused for another change: the name alone, at least
                await self.renames.rename_alone(step, exc)
            await cx.recorder.fail(step.kind, step.source_id, step.label, str(exc), step.source_digest)
            if isinstance(exc, TransportError):
                self._transport_failures += 1
                if destination_unreachable(self._transport_failures, cx.config.concurrency):
                    cx.fatal = TransportError(
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
            self.cx.recorder.creates_sent([(step.kind, step.source_id)])

    async def _create_once_noted(self, step: Step) -> None:
        cx = self.cx
        assert step.desired is not None
        for attempt in range(1, _CREATE_ATTEMPTS + 1):
            uncertain = attempt > 1 or (step.kind, step.source_id) in self.maybe_posted
            existing = await cx.listing.find_existing(step, fresh=uncertain)
            if existing is not None:
                await self._adopt(step, existing)
                return
            try:
                await cx.recorder.note_creates([(step.kind, step.source_id, step.desired)])
                created, not_written = await self._post(step)
                break
            except ConflictError as conflict:
                existing = await cx.listing.lookup_after_conflict(step, conflict)
                if existing is None:
                    raise
                await self._adopt(step, existing)
                return
            except (TransportError, ServerError) as exc:
                # the server may have created it before the answer was lost: look before posting again
                if attempt == _CREATE_ATTEMPTS or not exc.retryable:
                    raise
                log.warning("create of %s %s uncertain (%s): looking it up", step.kind, step.label, exc)
        source_digest = step.source_digest
        if not_written.changes:
            # the group as the destination holds it; no source digest, so the next cycle plans it again
            written = not_written.without_them(step.desired)
            step = dataclasses.replace(step, desired=written, digest=digest(written), source_digest=None)
        await self.record(step, created["id"], origin="created")
        cx.keeps.answered(step.kind, step.desired, created)
        cx.result.counts[created_counter(step)] += 1
        log.debug("created %s %s", step.kind, step.label)
        if not_written:
            await cx.recorder.fail(step.kind, step.source_id, step.label, not_written.summary(), source_digest)

    async def _post(self, step: Step) -> tuple[dict[str, Any], MembersNotWritten]:
        """POST the object; a large group gets its first chunk of members, the rest as PATCH adds, as
        do members the answer shows the server left out (RFC 7644 3.3 lets it ignore POSTed content).
        A 400 about the members (a member refused, too many in one request) is retried without the
        refused members or with a smaller chunk; the POST taken counts for the member limit being probed
        (`MemberRequests.taken`) as a PATCH add of as many members does; what was not written is returned."""
        assert step.desired is not None
        not_written = MembersNotWritten()
        members = step.desired.get("members", [])
        for refusals in range(MEMBER_REFUSALS + 1):
            chunk = self.members.chunk
            first, rest = members[:chunk], members[chunk:]
            body = {"schemas": schemas_for(step.desired, step.kind), **step.desired}
            if rest or not_written.changes:
                body["members"] = first
                if not first:
                    del body["members"]
            try:
                created = await self.cx.destination.create(step.kind, body)
                break
            except BadRequestError as exc:
                if refusals == MEMBER_REFUSALS:
                    raise
                if renamed := await self.gone_members.renamed(step.label, exc, first):
                    members = not_written.rename(members, renamed)  # members deleted on the destination
                    continue
                members = self.members.after_refusal(step.kind, step.label, exc, first, members, not_written)
        not_written.add_held_as_another_kind(first, created)
        left_out = members_left_out(first, created)
        if left_out is None:
            left_out = await self.members.left_out_after_reread(step, first, created["id"], not_written)
        # a request the destination took with this many members, as a PATCH add is (those it left out
        # of the create are no evidence: a server may take a POST and ignore its members)
        self.members.taken(sum(1 for member in first if member["value"] not in left_out))
        if rest or left_out:
            # recorded before the PATCHes, so that one failing leaves the object ours with what it holds
            kept = [member for member in first if member["value"] not in left_out]
            written = {**step.desired, "members": kept} if kept else {k: v for k, v in step.desired.items() if k != "members"}
            await self.record(dataclasses.replace(step, desired=written, digest=digest(written), source_digest=None),
                              created["id"], origin="created")
            if left_out:
                log.debug("%s %s: the destination left %d members out of the create; adding them",
                          step.kind, step.label, len(left_out))
            await self._add_members(step.kind, created["id"], [m for m in first if m["value"] in left_out] + rest,
                                    not_written, label=step.label)
        return created, not_written

    async def _add_members(self, kind: str, dest_id: str, members: list[dict[str, Any]],
                           not_written: MembersNotWritten | None = None, *, label: str = "") -> None:
        """PATCH adds of these members (`MemberRequests.add`)."""
        await self.members.add(kind, dest_id, members, not_written, label=label)

    async def _adopt(self, step: Step, existing: dict[str, Any]) -> None:
        cx = self.cx
        # a source object that came back under a new id takes over the destination object, and with
        # it what we wrote there (members we added are ours to remove)
        written = None
        for previous_owner in await cx.store.forms.owners(step.kind, existing["id"]):
            if previous_owner != step.source_id:
                log.debug("%s %s: source id %s replaces %s", step.kind, step.label, step.source_id, previous_owner)
                written = written or await cx.store.forms.canonical(step.kind, previous_owner)
                await cx.store.forget(step.kind, previous_owner)
                cx.moves.taken_over.add((step.kind, previous_owner))
                cx.moves.count += 1
        live = canonicalise(existing, step.kind)
        if written is None and (step.kind, step.source_id) in cx.planner.unfinished_creates and live.get("members"):
            # our create whose result a crash lost: its members are the ones we added (in merge mode they
            # are ours to remove), not someone else's
            written = {"members": live["members"]}
        adoption = plan_adoption(step=step, live=live, dest_id=existing["id"], policy=cx.policy, previous=written,
                                 leaving=cx.removals.leaving)
        cx.planner.count_held_members(adoption)
        await self.write_operations(adoption)
        if (step.kind, step.source_id) in cx.planner.unresolved:  # re-planned once its references resolve
            cx.planner.adopted_forms[(step.kind, step.source_id)] = put_form(
                step.kind, live, adoption.desired or {}, adoption.operations)
        await self.record(adoption, existing["id"], origin="adopted")
        cx.result.counts["adopted"] += 1
        log.debug("adopted existing %s %s (%s)", step.kind, step.label, existing["id"])

    async def _apply(self, step: Step, *, status: str = SYNCED) -> None:
        cx = self.cx
        dest_id = step.dest_id
        assert dest_id is not None
        try:
            try:
                await self.write_operations(step)
            except BadRequestError as exc:
                retry = await self.gone_members.retry_patch(step, exc) if step.kind == GROUP else None
                if retry is None and not rereads_live(exc.scim_type, step.action):
                    raise
                step = retry or await self._replan_from_live(step)
                await self.write_operations(step)
        except (ConflictError, BadRequestError) as conflict:
            if self.renames.park(step, conflict):
                return
            raise
        except NotFoundError:
            if step.action == DISABLE:
                await cx.store.forget(step.kind, step.source_id)
                return
            log.warning("%s %s vanished from the destination: re-creating it", step.kind, step.label)
            cx.moves.recreated_dest_ids.add(dest_id)
            await self._create(dataclasses.replace(step, action=CREATE, dest_id=None, operations=[],
                                                   reason=RECREATE_REASON))
            return
        await self.record(step, dest_id, status=status)
        if counter := update_counter(step):  # (none for the rest of an adoption or a create: counted as that)
            cx.result.counts[counter] += 1
        if step.action == DISABLE:
            # a disabled user is out of scope: like a deleted one it leaves the groups we wrote (a --full
            # would take it out of them; an incremental cycle, where those groups did not change, would not)
            await cx.removals.note_removed(step.kind, dest_id)

    async def _replan_from_live(self, step: Step) -> Step:
        """The destination is not what we last wrote (a replayed or raced PATCH): diff against it."""
        cx = self.cx
        assert step.dest_id is not None
        log.debug("%s %s differs from what we last wrote: re-reading it", step.kind, step.label)
        live = canonicalise(await cx.destination.get(step.kind, step.dest_id), step.kind)
        previous = await cx.store.forms.canonical(step.kind, step.source_id)
        replanned = plan_adoption(step=step, live=live, dest_id=step.dest_id, policy=cx.policy,
                                  previous=previous, reason="re-read from the destination", leaving=cx.removals.leaving)
        cx.planner.count_held_members(replanned)
        return replanned

    async def write_operations(self, step: Step) -> None:
        if not step.operations:
            return
        assert step.dest_id is not None
        destination = self.cx.destination
        if not destination.features.patch:
            await self._replace_with_operations(step)
            return
        try:
            await self.members.patch(step.kind, step.dest_id, step.operations, label=step.label)
        except (ServerError, BadRequestError) as exc:
            if not falls_back_to_put(exc.status, exc.scim_type):
                raise
            log.warning("%s %s: the destination does not take this PATCH (%s); replacing the object with PUT",
                        step.kind, step.label, exc)
            await self._replace_with_operations(step)

    async def _replace_with_operations(self, step: Step) -> None:
        """PUT for a destination without PATCH (or without this PATCH): the object as it is there with
        the step's operations applied (`put_form`), so that what we do not manage is kept."""
        assert step.dest_id is not None and step.desired is not None
        live = canonicalise(await self.cx.destination.get(step.kind, step.dest_id), step.kind)
        form = put_form(step.kind, live, step.desired, step.operations)
        answer = await self.cx.destination.replace(step.kind, step.dest_id, put_body(step.kind, step.dest_id, form))
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
            await self.cx.destination.delete(step.kind, step.dest_id)
        await self.cx.removals.note_removed(step.kind, step.dest_id)  # (noted before its row is forgotten)
        await self.cx.store.forget(step.kind, step.source_id)
        self.cx.result.counts["deleted"] += 1

    async def record(self, step: Step, dest_id: str, *, origin: str | None = None, status: str = SYNCED) -> None:
        """A write succeeded: record it, and release the objects that waited for this one."""
        cx = self.cx
        assert step.desired is not None and step.digest is not None
        if origin is not None and step.reason == RECREATE_REASON:
            cx.moves.count += 1  # waiting objects may know its former destination id
        await cx.store.record_success(
            step.kind, step.source_id, dest_id=dest_id, digest=step.digest, canonical=step.desired,
            status=status, origin=origin, match_key=match_value(step.desired, cx.match_attribute(step.kind)),
            source_digest=step.source_digest if status == SYNCED else None,
        )
        if cx.waiters.waits_for(step.source_id):  # (most objects: none waits, and no await is spent on it)
            await cx.waiters.release(step.kind, step.source_id, dest_id)
