"""The member side of group writes for one cycle (`MemberRequests`): the member chunk (smaller once the
destination refused a request's member count, and kept for that destination in the state, so that the
next cycles start from it until it is a week old: then they try the setting again, and a limit a probe
raised is kept as that, dated then and probed on by every cycle), what a 400 about
members leaves to write, a create's answer that names members another way, the PATCH adds of a
group's members, sent side by side, and a group's PATCH bodies, sent again in smaller ones after a
count refusal.

No member-count limit is advertised by a standard ServiceProviderConfig (RFC 7643 section 5 names
`bulk.maxOperations` and `maxPayloadSize`, which count operations and bytes, not members): it is learned
from the destination's 400s only."""

from __future__ import annotations

import logging
import time
from typing import Any

from replicator.cycle.context import CycleContext
from replicator.cycle.workers import send_together
from replicator.errors import BadRequestError, ScimStatusError
from replicator.pipeline.answers import compare_answered_members
from replicator.pipeline.keeps import member_limit_words, probe_words
from replicator.pipeline.member_refusals import LearnedLimit, MembersNotWritten, changed_members, member_refusal
from replicator.pipeline.patch import Operation, chunk_requests
from replicator.pipeline.plan import Step
from replicator.pipeline.urls import destination_key
from replicator.state.keeps import MEMBERS_PER_REQUEST, MEMBERS_PER_REQUEST_RAISED

log = logging.getLogger("replicator.cycle")

MEMBER_REFUSALS = 12  # retries of one group request after 400s about its members (each sends fewer)


class MemberRequests:
    """The member side of group writes for one cycle: the member chunk (the configured one, smaller
    once the destination refused a request's member count) and what to do with a 400 about members."""

    def __init__(self, cx: CycleContext) -> None:
        self.cx = cx
        self.chunk = cx.policy.member_chunk
        self.destination = destination_key(cx.config.destination.url)
        self.learned_at: float | None = None  # when the limit in use was learned (None: none is)
        self._learned_now = False
        self.probing: LearnedLimit | None = None  # a learned limit old enough to try the setting again
        self.largest_taken = 0  # the most members a request the destination took carried this cycle

    async def load(self) -> None:
        """Start from the member limit learned for this destination (the smaller of it and the setting),
        or from the setting when that limit is due to be probed (`LearnedLimit.due`)."""
        learned = await self._learned()
        if learned is None or learned.value >= self.chunk:
            return
        if learned.due(time.time()):
            self.probing = learned
        else:
            self.chunk, self.learned_at = learned.value, learned.learned_at

    async def _learned(self) -> LearnedLimit | None:
        """The limit kept for this destination: one learned from a refusal, else one a probe raised."""
        for name in (MEMBERS_PER_REQUEST, MEMBERS_PER_REQUEST_RAISED):
            known = await self.cx.store.keeps.limit(self.destination, name)
            if known is not None:
                return LearnedLimit(*known, raised=name == MEMBERS_PER_REQUEST_RAISED)
        return None

    def taken(self, members: int) -> None:
        """The destination took a request carrying this many members (what a probe learns from)."""
        self.largest_taken = max(self.largest_taken, members)

    async def finish(self) -> list[str]:
        """Record a limit learned this cycle; or, probing, forget the limit when the destination took a
        request of the setting's count, raise it to the most members a request it took carried (dated
        now, and due, so the next cycle tries again); not in a dry run. A note when a learned limit was
        in use or probed."""
        record = not self.cx.dry_run
        keeps = self.cx.store.keeps
        if self._learned_now:
            if record:
                await keeps.learn_limit(self.destination, MEMBERS_PER_REQUEST, self.chunk,
                                        replacing=(MEMBERS_PER_REQUEST_RAISED,))
        elif self.probing is not None:
            if record and self.largest_taken >= self.chunk:
                await keeps.forget_limit(self.destination, MEMBERS_PER_REQUEST, MEMBERS_PER_REQUEST_RAISED)
            elif record and self.largest_taken > self.probing.value:  # raised, and tried again next cycle
                await keeps.learn_limit(self.destination, MEMBERS_PER_REQUEST_RAISED, self.largest_taken,
                                        replacing=(MEMBERS_PER_REQUEST,))
            return [probe_words(self.probing.value, _local(self.probing.learned_at), self.chunk, self.largest_taken,
                                raised=self.probing.raised)]
        if self.learned_at is None:
            return []
        when = "now" if self._learned_now else _local(self.learned_at)
        probe = _local(LearnedLimit(self.chunk, self.learned_at).probe_at)
        return [f"{member_limit_words(self.chunk, when)}: group writes carry at most {self.chunk} members each "
                f"until a cycle from {probe} tries {self.cx.policy.member_chunk} again (`status` shows it)"]

    def after_refusal(self, kind: str, label: str, exc: BadRequestError, sent: list[dict[str, Any]],
                              pending: list[dict[str, Any]], not_written: MembersNotWritten | None
                              ) -> list[dict[str, Any]]:
        """The members still to write after a 400 to a request carrying `sent`: a count limit shrinks
        the member chunk, refused members are left out (noted in `not_written`; without it they fail
        the write). Raise `exc` when it is not about the members."""
        # judged by the request's own size: requests in flight together all carry the old chunk, and
        # each refusal must not halve what the one before it halved already
        refusal = member_refusal(exc.scim_type, exc.detail, sent, len(sent))
        if refusal is None:
            if len(sent) > self.chunk:  # one member more than the limit someone else learned meanwhile
                return pending
            raise exc
        if refusal.chunk is not None:
            chunk = refusal.chunk if self.probing is None else self.probing.chunk_after_refusal(refusal.chunk, len(sent))
            if chunk < self.chunk:
                log.warning("%s %s: %s; sending at most %d members per request from now on",
                            kind, label, exc, chunk)
                self.chunk, self.learned_at, self._learned_now = chunk, time.time(), True
            return pending
        kept, refused = refusal.split(pending)
        if not refused or not_written is None:
            raise exc
        log.warning("%s %s: writing it without %d member(s) the destination refuses (%s)",
                    kind, label, len(refused), exc)
        not_written.add(refused, refusal.reason)
        return kept

    async def left_out_after_reread(self, step: Step, sent: list[dict[str, Any]], dest_id: str,
                                     not_written: MembersNotWritten) -> set[str]:
        """The create's answer names members in a form that matches not all we sent (a userName for
        the id): the group as the destination holds it tells which are missing. When that too names
        members another way, as many as are unmatched are taken as held; fewer: the unmatched ones are
        not written (a failure), rather than added again (which some servers duplicate)."""
        try:
            live = await self.cx.destination.get(step.kind, dest_id)
        except ScimStatusError as exc:
            not_written.add(sent, f"the create's answer names members in another form and the group "
                                  f"could not be read back ({exc})")
            return set()
        answered = compare_answered_members(sent, live)
        if answered.certain:
            return set(answered.unmatched)
        if not answered.covered:
            not_written.add([m for m in sent if m["value"] in answered.unmatched],
                            "the destination names its members in a form that matches none we sent; "
                            f"{len(answered.unmatched) - answered.unrecognised} may be missing")
        else:
            log.debug("%s %s: the destination names %d member(s) another way than by id; taken as held",
                     step.kind, step.label, answered.unrecognised)
        return set()

    async def add(self, kind: str, dest_id: str, members: list[dict[str, Any]],
                  not_written: MembersNotWritten | None = None, *, label: str = "") -> None:
        """PATCH adds of these members, at most `chunk` per request, the requests sent side by side (up
        to `concurrency` at once, each under the destination's limits: a group of 5,000 is not 50 round
        trips in a row); a 400 about a request's members shrinks the chunk or leaves the refused ones out
        (`after_refusal`), and what that request still carries is sent again."""
        waiting = [list(members)]
        refusals = 0
        while waiting:
            chunks = [part[i:i + self.chunk] for part in waiting for i in range(0, len(part), self.chunk)]
            refused = await send_together(chunks, lambda sent: self._send_add(kind, dest_id, sent),
                                          at_most=self.cx.config.concurrency, collect=BadRequestError)
            if refused:
                refusals += 1  # (a round of requests refused together counts once, as one request did)
                if refusals > MEMBER_REFUSALS:
                    raise refused[0][1]
            waiting = [self.after_refusal(kind, label or dest_id, exc, sent, sent, not_written) for sent, exc in refused]

    async def _send_add(self, kind: str, dest_id: str, sent: list[dict[str, Any]]) -> None:
        for patch in chunk_requests([{"op": "add", "path": "members", "value": sent}], self.chunk):
            await self.cx.destination.patch(kind, dest_id, patch, answer=False)  # (the whole group, unread)
            self.taken(len(changed_members(patch["Operations"])))

    async def patch(self, kind: str, dest_id: str, operations: list[Operation], *, label: str) -> None:
        """A PATCH of these operations, in bodies of at most `chunk` member changes; a 400 naming a
        member-count limit shrinks the chunk, and the refused body with those after it is sent again in
        smaller ones (any other 400 is raised, as the bodies already sent are written)."""
        pending = list(operations)
        for refusals in range(MEMBER_REFUSALS + 1):
            bodies = chunk_requests(pending, self.chunk)
            for index, body in enumerate(bodies):
                try:
                    operations = body["Operations"]
                    answer = await self.cx.destination.patch(kind, dest_id, body,
                                                             answer=self.cx.keeps.reads_answer(operations))
                    self.cx.keeps.patched(kind, dest_id, operations, answer)
                    self.taken(len(changed_members(operations)))
                except BadRequestError as exc:
                    if refusals == MEMBER_REFUSALS:
                        raise
                    sent = changed_members(body["Operations"])
                    self.after_refusal(kind, label or dest_id, exc, sent, sent, None)  # raises unless a count limit
                    pending = [operation for rest in bodies[index:] for operation in rest["Operations"]]
                    break
            else:
                return


def _local(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
