"""SCIM Bulk decisions (RFC 7644 3.7), pure: which step is one Bulk operation and what it says, how
operations are cut into requests that fit the server's maxPayloadSize, and the trial that decides
whether new objects may name their targets by bulkId. No I/O."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from replicator.pipeline.canonical import USER, encode, schemas_for
from replicator.pipeline.member_refusals import changed_members
from replicator.pipeline.patch import chunk_requests
from replicator.pipeline.plan import CREATE, DELETE, DISABLE, PATCH, Step

DEFAULT_MAX_PAYLOAD = 1_048_576  # a server that does not say: 1 MiB
ENVELOPE_BYTES = 200  # a Bulk request's own envelope
PAYLOAD_SHARE = 0.9  # of maxPayloadSize: what operations may fill

Operation = dict[str, Any]


def bulk_operation(step: Step, *, absent: bool, member_chunk: int, patch: bool,
                   bulk_id: Callable[[], str]) -> Operation | None:
    """The Bulk operation for a step, or None when the step needs more than one plain request (a create
    that must first look for an object to adopt (not `absent` from a complete listing), a large group,
    a multi-part PATCH, a PATCH to a destination without PATCH). `bulk_id` names a new POST."""
    endpoint = "/Users" if step.kind == USER else "/Groups"
    if step.action == CREATE and step.desired is not None:
        if not absent or len(step.desired.get("members", [])) > member_chunk:
            return None
        return {"method": "POST", "path": endpoint, "bulkId": bulk_id(),
                "data": {"schemas": schemas_for(step.desired, step.kind), **step.desired}}
    if step.action in (PATCH, DISABLE) and patch and step.dest_id:
        bodies = chunk_requests(step.operations, member_chunk)
        if len(bodies) == 1:
            return {"method": "PATCH", "path": f"{endpoint}/{step.dest_id}", "data": bodies[0]}
    if step.action == DELETE and step.dest_id:
        return {"method": "DELETE", "path": f"{endpoint}/{step.dest_id}"}
    return None


def members_carried(operation: Operation) -> int:
    """How many members a Bulk operation carries (a group POST's, a PATCH's member changes)."""
    data = operation.get("data")
    if not isinstance(data, dict):
        return 0
    if operation["method"] == "PATCH":
        return len(changed_members(data.get("Operations", [])))
    members = data.get("members")
    return len(members) if isinstance(members, list) else 0


def operation_cost(operation: Operation) -> int:
    """Bytes an operation adds to a Bulk request (its JSON and a separator)."""
    return len(encode(operation)) + 2


def bulk_chunks(bulked: list[tuple[Step, Operation]], max_payload: int) -> list[list[tuple[Step, Operation]]]:
    """Cut (step, operation) pairs, in order, into requests of at most PAYLOAD_SHARE of `max_payload`
    bytes (0: DEFAULT_MAX_PAYLOAD); an operation larger than that goes alone."""
    limit = max_payload or DEFAULT_MAX_PAYLOAD
    chunks: list[list[tuple[Step, Operation]]] = [[]]
    size = ENVELOPE_BYTES
    for pair in bulked:
        cost = operation_cost(pair[1])
        if chunks[-1] and size + cost > limit * PAYLOAD_SHARE:
            chunks.append([])
            size = ENVELOPE_BYTES
        chunks[-1].append(pair)
        size += cost
    return [chunk for chunk in chunks if chunk]


class ReferenceTrial:
    """May new objects name their targets by bulkId in the Bulk request that creates them? Untried; on
    trial (the first such request runs, and no other uses them until it is judged); on; off (the
    destination stores them as given, refuses them, or gave no answer). A request is known by identity."""

    UNTRIED, ON_TRIAL, ON, OFF = "untried", "on trial", "on", "off"

    def __init__(self) -> None:
        self.state = self.UNTRIED
        self._trial: object | None = None

    def next_kind(self) -> None:
        """A server may resolve bulkId in a manager and not in members, or the other way round."""
        if self.state == self.ON:
            self.state = self.UNTRIED

    def allows(self, request: object, *, claim: bool = False) -> bool:
        """Whether objects may join `request` and name their targets by bulkId: yes once the
        destination was seen to resolve such references; before that only in one request, the trial
        (`claim`: make this request the trial if there is none yet)."""
        if self.state == self.UNTRIED and claim:
            self.state, self._trial = self.ON_TRIAL, request
        if self.state == self.ON_TRIAL:
            return self._trial is request
        return self.state in (self.ON, self.UNTRIED)

    def is_trial(self, request: object) -> bool:
        return self._trial is request

    def unanswered(self, request: object) -> None:
        """`request` got no answer: if it was the trial, do without bulkId references."""
        if self._trial is request:
            self.state, self._trial = self.OFF, None

    def judging(self) -> None:
        """The trial ran: its result is being checked (no request is the trial any more)."""
        self._trial = None

    def judged(self, resolved: bool) -> None:
        self.state = self.ON if resolved else self.OFF
