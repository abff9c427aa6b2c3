"""The pure SCIM Bulk decisions (pipeline/bulk.py): which step is one Bulk operation, how operations are
cut into requests that fit maxPayloadSize, and the bulkId reference trial's states."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from replicator.pipeline.bulk import (
    ENVELOPE_BYTES,
    PAYLOAD_SHARE,
    ReferenceTrial,
    bulk_chunks,
    bulk_operation,
    members_carried,
    operation_cost,
)
from replicator.pipeline.canonical import GROUP, USER
from replicator.pipeline.plan import CREATE, DELETE, DISABLE, PATCH, RECORD, Step

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"


def numbered() -> tuple[list[str], Callable[[], str]]:
    issued: list[str] = []
    counter = itertools.count(1)

    def bulk_id() -> str:
        issued.append(f"b{next(counter)}")
        return issued[-1]

    return issued, bulk_id


def operation(step: Step, *, absent: bool = True, member_chunk: int = 2, patch: bool = True) -> dict[str, Any] | None:
    return bulk_operation(step, absent=absent, member_chunk=member_chunk, patch=patch, bulk_id=numbered()[1])


def test_a_create_proven_absent_is_a_post_named_by_bulk_id() -> None:
    """A new user whose absence a listing proves is one POST with a bulkId and its schemas."""
    issued, bulk_id = numbered()
    step = Step(CREATE, USER, "s1", "ann", {"userName": "ann"}, "d")
    op = bulk_operation(step, absent=True, member_chunk=2, patch=True, bulk_id=bulk_id)
    assert op == {"method": "POST", "path": "/Users", "bulkId": "b1",
                  "data": {"schemas": [USER_SCHEMA], "userName": "ann"}}
    assert issued == ["b1"]


def test_a_create_that_may_adopt_or_a_large_group_is_no_bulk_operation_and_uses_no_id() -> None:
    """A create not proven absent (it may adopt), or a group over member_chunk members, needs more
    than one request: no operation, and no bulkId is spent on it."""
    issued, bulk_id = numbered()
    user = Step(CREATE, USER, "s1", "ann", {"userName": "ann"}, "d")
    group = Step(CREATE, GROUP, "g1", "big", {"displayName": "big", "members": [{"value": str(i)} for i in range(3)]}, "d")
    assert bulk_operation(user, absent=False, member_chunk=2, patch=True, bulk_id=bulk_id) is None
    assert bulk_operation(group, absent=True, member_chunk=2, patch=True, bulk_id=bulk_id) is None
    assert issued == []


def test_patch_disable_and_delete_operations() -> None:
    """A one-body PATCH (or disable) is a PATCH to the object's path; a delete is a DELETE; a PATCH
    needing several bodies, or a destination without PATCH, gets none; RECORD writes nothing."""
    ops = [{"op": "replace", "path": "title", "value": "x"}]
    patch = Step(PATCH, USER, "s1", "ann", {"userName": "ann"}, "d", dest_id="D1", operations=ops)
    assert operation(patch) == {"method": "PATCH", "path": "/Users/D1",
                                "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                         "Operations": ops}}
    disable = Step(DISABLE, USER, "s1", "ann", {"userName": "ann"}, "d", dest_id="D1", operations=ops)
    assert (operation(disable) or {}).get("method") == "PATCH"
    assert operation(patch, patch=False) is None
    many = [{"op": "add", "path": "members", "value": [{"value": str(i)} for i in range(5)]}]
    assert operation(Step(PATCH, GROUP, "g", "g", {"displayName": "g"}, "d", dest_id="G", operations=many)) is None
    assert operation(Step(DELETE, GROUP, "g", "g", dest_id="G")) == {"method": "DELETE", "path": "/Groups/G"}
    assert operation(Step(RECORD, USER, "s1", "ann", {"userName": "ann"}, "d", dest_id="D1")) is None


sizes = st.lists(st.integers(min_value=0, max_value=3000), max_size=40)


@given(sizes, st.sampled_from([0, 2_000, 10_000]))
def test_chunks_keep_every_operation_in_order_within_the_payload(lengths: list[int], max_payload: int) -> None:
    """Chunking keeps every (step, operation) in order, makes no empty request, and a request of
    more than one operation stays within the share of maxPayloadSize (0: 1 MiB) the writer allows."""
    pairs = [(Step(DELETE, USER, str(i), ""), {"method": "DELETE", "path": "/Users/" + "x" * n})
             for i, n in enumerate(lengths)]
    chunks = bulk_chunks(pairs, max_payload)
    assert [pair for chunk in chunks for pair in chunk] == pairs
    assert all(chunks)
    limit = max_payload or 1_048_576
    for chunk in chunks:
        if len(chunk) > 1:
            assert ENVELOPE_BYTES + sum(operation_cost(op) for _, op in chunk) <= limit * PAYLOAD_SHARE


def test_reference_trial_lets_one_request_try_then_follows_its_verdict() -> None:
    """bulkId references: untried, any request may claim the trial, and while it runs no other
    request may use them; a resolved trial turns them on (until the next kind), a failed one off."""
    trial, first, second = ReferenceTrial(), object(), object()
    assert trial.allows(first) and trial.allows(second)  # untried: may look for candidates
    assert trial.allows(first, claim=True)
    assert trial.is_trial(first) and not trial.allows(second, claim=True)
    trial.judging()
    trial.judged(True)
    assert trial.state == ReferenceTrial.ON and trial.allows(second) and not trial.is_trial(first)
    trial.next_kind()
    assert trial.state == ReferenceTrial.UNTRIED
    assert trial.allows(second, claim=True)
    trial.judging()
    trial.judged(False)
    assert not trial.allows(first, claim=True) and not trial.allows(second)
    trial.next_kind()
    assert trial.state == ReferenceTrial.OFF  # off stays off for the rest of the cycle


def test_an_unanswered_trial_turns_references_off_and_another_request_does_not() -> None:
    """A trial request that got no answer turns bulkId references off; a request that was not the
    trial changes nothing."""
    trial, first, other = ReferenceTrial(), object(), object()
    assert trial.allows(first, claim=True)
    trial.unanswered(other)
    assert trial.state == ReferenceTrial.ON_TRIAL
    trial.unanswered(first)
    assert trial.state == ReferenceTrial.OFF and not trial.is_trial(first)


def test_members_carried_counts_a_group_posts_members_and_a_patchs_member_changes() -> None:
    """What a Bulk operation the destination took tells of its member limit: a POST's members, a
    PATCH's added and removed members (other operations and DELETEs carry none)."""
    post = {"method": "POST", "path": "/Groups", "data": {"displayName": "g", "members": [{"value": "a"}, {"value": "b"}]}}
    patch = {"method": "PATCH", "path": "/Groups/1", "data": {"Operations": [
        {"op": "add", "path": "members", "value": [{"value": "a"}, {"value": "b"}, {"value": "c"}]},
        {"op": "remove", "path": 'members[value eq "d"]'}, {"op": "replace", "path": "displayName", "value": "x"}]}}
    assert [members_carried(op) for op in (post, patch, {"method": "DELETE", "path": "/Groups/1"},
                                           {"method": "POST", "path": "/Users", "data": {"userName": "u"}})] == [2, 4, 0, 0]
