"""What a destination's answer to a write says of a group's members. Pure; no I/O.

An answer may name the members it holds another way than we sent them: ids in another case, a `$ref`
ending in the id, or a value we cannot read back at all (a userName instead of the id). Members matched
any of those ways are held; answered members that match none of the sent ones are counted, so that the
caller can tell "left out" from "named another way" (and re-read the group) instead of adding members
the server holds already.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def answered_member_values(answer: dict[str, Any] | None) -> set[str] | None:
    """The member values a server's answer lists; None when it carries no `members` list (many
    servers leave members out of their answers, which then tells nothing)."""
    members = answer.get("members") if answer is not None else None
    if not isinstance(members, list):
        return None
    return {str(member.get("value")) for member in members if isinstance(member, Mapping)}


@dataclass(frozen=True)
class AnsweredMembers:
    """The sent members an answer shows no member for, and how many answered members name none of the
    sent ones (another value format)."""

    unmatched: frozenset[str] = frozenset()
    unrecognised: int = 0

    @property
    def certain(self) -> bool:
        """The unmatched members are surely left out: the answer names every member it holds our way."""
        return not self.unrecognised

    @property
    def covered(self) -> bool:
        """The unrecognised answered members are at least as many as the unmatched sent ones: the
        server holds them under other values."""
        return self.unrecognised >= len(self.unmatched)


def compare_answered_members(sent: list[dict[str, Any]], answer: dict[str, Any] | None) -> AnsweredMembers:
    """Match the answer's members to the sent ones: by value, by value without case, or by the last
    segment of `$ref`. An answer without a `members` list tells nothing (nothing unmatched)."""
    members = answer.get("members") if answer is not None else None
    if not sent or not isinstance(members, list):
        return AnsweredMembers()
    exact = {member["value"] for member in sent}
    folded = {member["value"].casefold(): member["value"] for member in sent}
    matched: set[str] = set()
    unrecognised = 0
    for entry in members:
        if not isinstance(entry, Mapping):
            continue
        value = _sent_value_named(entry, exact, folded)
        if value is None:
            unrecognised += 1
        else:
            matched.add(value)
    return AnsweredMembers(unmatched=frozenset(exact - matched), unrecognised=unrecognised)


def _sent_value_named(entry: Mapping[str, Any], exact: set[str], folded: dict[str, str]) -> str | None:
    value = entry.get("value")
    value = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None
    if value is not None and value in exact:
        return value
    ref = entry.get("$ref")
    tail = ref.rstrip("/").rpartition("/")[2] if isinstance(ref, str) else None
    for candidate in (value, tail):
        if candidate is not None and candidate.casefold() in folded:
            return folded[candidate.casefold()]
    return None


def members_left_out(sent: list[dict[str, Any]], created: dict[str, Any]) -> set[str] | None:
    """Values of the sent members that the create's answer lists no member for; None when that cannot
    be told from the answer (it names some members in a form that matches none we sent: re-read)."""
    answered = compare_answered_members(sent, created)
    if answered.unmatched and not answered.certain:
        return None
    return set(answered.unmatched)


def members_of_another_kind(sent: list[dict[str, Any]], answer: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """Typed members the answer (or a listed form) holds as another kind: (value, type sent, kind
    held), told by the answered member's `type`, else its `$ref` (`.../Users/<id>`, `.../Groups/<id>`).
    A server that ignores member type stores a group member as the user with the same id."""
    members = answer.get("members") if answer is not None else None
    if not isinstance(members, list):
        return []
    held: dict[str, str] = {}
    for entry in members:
        if isinstance(entry, Mapping) and isinstance(entry.get("value"), str | int):
            kind = _kind_named(entry)
            if kind is not None:
                held[str(entry["value"])] = kind
    out = []
    for member in sent:
        wanted = member.get("type")
        kind = held.get(member["value"])
        if isinstance(wanted, str) and kind is not None and wanted.lower() != kind.lower():
            out.append((member["value"], wanted, kind))
    return out


def kind_mismatch_reason(confused: list[tuple[str, str, str]], examples: int = 3) -> str:
    """One line for members held as another kind than sent."""
    shown = ", ".join(f"{value!r} sent as a {sent}, held as a {held}" for value, sent, held in confused[:examples])
    return (f"the destination holds {len(confused)} member(s) as another kind than sent ({shown}"
            f"{', ...' if len(confused) > examples else ''}): it ignores member type, and takes a group for "
            "the user with the same id")


def _kind_named(entry: Mapping[str, Any]) -> str | None:
    kind = entry.get("type")
    if isinstance(kind, str) and kind:
        return kind
    ref = entry.get("$ref")
    if isinstance(ref, str):
        endpoint = ref.rstrip("/").rsplit("/", 2)[-2:-1]
        if endpoint and endpoint[0].lower() in ("users", "groups"):
            return "User" if endpoint[0].lower() == "users" else "Group"
    return None
