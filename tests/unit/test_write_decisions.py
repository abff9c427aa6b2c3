"""The pure write and triage decisions: the PUT form that keeps what we do not manage, the writer's
error -> action table, the zero-change fast path and why an object read cannot be replicated."""

from __future__ import annotations

from replicator.errors import (
    AuthError,
    BadRequestError,
    CertificateError,
    NotFoundError,
    ScimTimeoutError,
    StateError,
    TLSError,
    TransportError,
)
from replicator.pipeline.canonical import GROUP, USER
from replicator.pipeline.plan import PATCH, RECORD
from replicator.pipeline.triage import refusal, unchanged_since_last_write
from replicator.pipeline.writes import (
    destination_unreachable,
    falls_back_to_put,
    put_body,
    put_form,
    rereads_live,
    stops_the_cycle,
)


def test_put_form_keeps_what_others_set_and_takes_our_spelling() -> None:
    """The PUT form is the live object with the operations applied: an attribute another writer set
    stays, ours changes, and a live attribute named in another case takes the desired spelling."""
    live = {"userName": "ann", "NickName": "a", "title": "old", "locale": "fr"}
    desired = {"userName": "ann", "nickName": "a", "title": "new"}
    form = put_form(USER, live, desired, [{"op": "replace", "path": "title", "value": "new"}])
    assert form == {"userName": "ann", "nickName": "a", "title": "new", "locale": "fr"}
    assert put_body(USER, "D1", form)["id"] == "D1"
    assert put_body(USER, "D1", form)["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:User"]


def test_put_form_of_a_group_holds_every_member_we_want() -> None:
    """A group read without some of our members (a capped read) still gets them all in the PUT,
    besides the members others added."""
    live = {"displayName": "g", "members": [{"value": "other"}]}
    desired = {"displayName": "g", "members": [{"value": "u1"}, {"value": "u2"}]}
    form = put_form(GROUP, live, desired, [{"op": "add", "path": "members", "value": [{"value": "u1"}]}])
    assert sorted(m["value"] for m in form["members"]) == ["other", "u1", "u2"]
    assert len(form["members"]) == 3


def test_the_writers_error_table() -> None:
    """501 or a path/filter refusal falls back to PUT, other 400s do not; noTarget re-reads the object
    (not for RECORD); refused credentials, a refused certificate and an unusable state stop the cycle, an
    object's 404 or 400 does not; ten (or twice the concurrency) transport failures in a row mean the destination is down."""
    assert falls_back_to_put(501, None) and falls_back_to_put(400, "invalidPath") and falls_back_to_put(400, "invalidFilter")
    assert not falls_back_to_put(400, "invalidValue") and not falls_back_to_put(500, None)
    assert rereads_live("noTarget", PATCH) and not rereads_live("noTarget", RECORD) and not rereads_live(None, PATCH)
    assert stops_the_cycle(AuthError("no")) and stops_the_cycle(StateError("disk"))
    assert not stops_the_cycle(NotFoundError("gone", status=404)) and not stops_the_cycle(BadRequestError("bad", status=400))
    assert not stops_the_cycle(TransportError("reset"))
    # a certificate refused fails every request alike; a handshake cut short or a timeout may pass
    assert stops_the_cycle(CertificateError("not trusted", sent=False))
    assert not stops_the_cycle(TLSError("handshake", sent=False)) and not stops_the_cycle(ScimTimeoutError("slow"))
    assert not destination_unreachable(9, 4) and destination_unreachable(10, 4)
    assert not destination_unreachable(15, 8) and destination_unreachable(16, 8)


def test_zero_change_fast_path() -> None:
    """Skipped only when the bytes are those last written and the object is synced, never in full mode."""
    assert unchanged_since_last_write(("d1", "synced"), "d1", full=False, synced="synced")
    assert not unchanged_since_last_write(("d1", "synced"), "d1", full=True, synced="synced")
    assert not unchanged_since_last_write(("d1", "failed"), "d1", full=False, synced="synced")
    assert not unchanged_since_last_write(("d0", "synced"), "d1", full=False, synced="synced")
    assert not unchanged_since_last_write(None, "d1", full=False, synced="synced")


def test_refusals_name_the_duplicate_or_the_size() -> None:
    """A match key held by another source object, or a form over the size limit (members not
    counted), is refused with a reason naming it; anything else passes."""
    form = {"userName": "ann", "title": "x" * 100}
    assert refusal(form, "s1", "s2", "userName", 10_000) == "duplicate userName in the source (also source id s2)"
    assert (refusal(form, "s1", "s1", "userName", 50) or "").startswith("oversized: ")
    assert "sync.max_resource_bytes=50" in (refusal(form, "s1", "s1", "userName", 50) or "")
    group = {"displayName": "g", "members": [{"value": str(i)} for i in range(1000)]}
    assert refusal(group, "g1", "g1", "displayName", 100) is None
