"""How a write is carried out and what its errors mean, pure: the PUT form for a destination without
(this) PATCH, and the error -> action table of the single-step writer (fall back to PUT, re-read the
object, stop the cycle, or record a failure for the object). No I/O."""

from __future__ import annotations

from typing import Any

from replicator.errors import AuthError, ScimError, StateError
from replicator.pipeline.canonical import GROUP, schemas_for
from replicator.pipeline.patch import Operation, apply_operations
from replicator.pipeline.plan import RECORD

PATCH_REFUSALS = ("invalidPath", "invalidFilter")  # scimTypes of a PATCH the destination cannot take


def put_form(kind: str, live: dict[str, Any], desired: dict[str, Any], operations: list[Operation]) -> dict[str, Any]:
    """The form to PUT in place of a PATCH: the object as it is on the destination (`live`, canonical)
    with the operations applied, so that what we do not manage (attributes others set, members we may
    not remove) is kept, where a PUT of the desired form alone would wipe it. Attribute names take the
    desired form's spelling (they are case-insensitive). A group keeps every member we want, besides
    the others the read showed (a server that leaves members out of a read, or caps them, must not
    have ours wiped by the PUT)."""
    spelling = {key.lower(): key for key in desired}
    form = apply_operations({spelling.get(key.lower(), key): value for key, value in live.items()}, operations)
    if kind == GROUP and desired.get("members"):
        held = {member["value"] for member in form.get("members", [])}
        form["members"] = form.get("members", []) + [m for m in desired["members"] if m["value"] not in held]
    return form


def put_body(kind: str, dest_id: str, form: dict[str, Any]) -> dict[str, Any]:
    """The PUT request body for a form."""
    return {"schemas": schemas_for(form, kind), "id": dest_id, **form}


def falls_back_to_put(status: int | None, scim_type: str | None) -> bool:
    """A PATCH refused as not implemented (501) or as a path/filter the server cannot take: PUT instead."""
    return status == 501 or scim_type in PATCH_REFUSALS


def rereads_live(scim_type: str | None, action: str) -> bool:
    """A PATCH answered noTarget (the destination is not what we last wrote): diff against it again
    (not for a RECORD step, which only records)."""
    return scim_type == "noTarget" and action != RECORD


def stops_the_cycle(exc: ScimError | StateError) -> bool:
    """Errors no other object would escape (credentials refused, a certificate refused: a CertificateError is
    an AuthError; the state unusable): the cycle stops."""
    return isinstance(exc, AuthError | StateError)


def destination_unreachable(transport_failures_in_a_row: int, concurrency: int) -> bool:
    """So many operations in a row lost to transport errors that the destination is down: the cycle stops."""
    return transport_failures_in_a_row >= max(10, 2 * concurrency)
