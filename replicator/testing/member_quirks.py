"""Quirks of servers about group members (:class:`~replicator.testing.options.Quirks`): groups refused
as members, a cap on the members one request may carry, members naming nothing stored (each a 400, as
real servers answer), a create answer that names members by userName or by ids in another case, and
members stored by id alone (a group numbered like a user is taken for that user)."""

from __future__ import annotations

from typing import Any

from replicator.testing.options import Quirks
from replicator.testing.protocol import ScimProblem
from replicator.testing.resources import ResourceStore

USER_NAME = "userName"  # Quirks.create_answers_members_by: each user member's value is its userName
UPPER_CASE = "upper"  # Quirks.create_answers_members_by: each member's value upper-cased


def check_members(members: Any, quirks: Quirks, store: ResourceStore) -> None:
    """Refuse (400) a group write whose members break the quirks: a group among them, one naming
    nothing stored, or more of them than one request may carry."""
    listed = [m for m in members if isinstance(m, dict)] if isinstance(members, list) else []
    if quirks.refuses_group_members:
        for index, member in enumerate(listed):
            kind = member.get("type")
            if (isinstance(kind, str) and kind.lower() == "group") or member.get("value") in store.groups:
                raise ScimProblem(400, f"members.{index}.type: Input should be 'User'", "invalidValue")
    if quirks.refuses_unknown_members:
        for member in listed:
            value = member.get("value")
            if isinstance(value, str) and value not in store.users and value not in store.groups:
                raise ScimProblem(400, f"member {value!r} does not exist", "invalidValue")
    if quirks.max_members_per_request and len(listed) > quirks.max_members_per_request:
        raise ScimProblem(400, f"too many members: a request may carry at most {quirks.max_members_per_request}",
                          "invalidValue")


def patched_members(body: dict[str, Any]) -> list[Any]:
    """The members a PATCH body adds, replaces or removes (a removal by path counts as one)."""
    found: list[Any] = []
    for operation in body.get("Operations") or []:
        if not isinstance(operation, dict):
            continue
        path, value = operation.get("path"), operation.get("value")
        if isinstance(path, str) and path.lower() == "members" and isinstance(value, list):
            found.extend(value)
        elif isinstance(path, str) and path.lower().startswith("members["):
            found.append({})
        elif path is None and isinstance(value, dict) and isinstance(value.get("members"), list):
            found.extend(value["members"])
    return found


def answer_members(resource: dict[str, Any], quirks: Quirks, store: ResourceStore) -> dict[str, Any]:
    """The group as a create answers it: members named as `create_answers_members_by` says (no `$ref`)."""
    form = quirks.create_answers_members_by
    members = resource.get("members")
    if form is None or not isinstance(members, list):
        return resource
    answered = []
    for member in members:
        value = str(member.get("value"))
        if form == USER_NAME and value in store.users:
            value = str(store.users[value].get("userName"))
        elif form == UPPER_CASE:
            value = value.upper()
        answered.append({"value": value, "display": value})
    return {**resource, "members": answered}


def typed_by_id(resource: dict[str, Any], quirks: Quirks, store: ResourceStore) -> dict[str, Any]:
    """Quirks.ignores_member_type: the stored group's members typed by what their id names first (a
    user), with a `$ref` to it, whatever type they were sent with."""
    members = resource.get("members")
    if not quirks.ignores_member_type or not isinstance(members, list):
        return resource
    base = str(resource.get("meta", {}).get("location", "")).rpartition("/Groups/")[0]
    for member in members:
        if isinstance(member, dict):
            kind = "User" if member.get("value") in store.users else "Group"
            member.update({"type": kind, "$ref": f"{base}/{kind}s/{member.get('value')}"})
    return resource
