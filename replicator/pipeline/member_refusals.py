"""What a destination's 400 to a group write says about the members it carried. Pure; no I/O.

`member_refusal` reads the answer's scimType and detail against the members sent and the member chunk
in use, and says what to do instead of failing the whole group:
- a member path (`members.0.type`, `members[2].value`): leave that member out; when the path is the
  member's `type` (the server refuses that kind of member, say groups), every member of that type;
- member values named in the detail: leave those out;
- groups refused as members (the detail speaks of groups as members): every member typed Group;
- a member-count limit ("at most 100 members", "too many members", scimType `tooMany`): retry with a
  smaller chunk (the number the server names, else half the members sent).
Anything else is not about the members (None): the write fails as before.

`LearnedLimit` says how long a member-count limit learned from such a refusal is kept (`PROBE_AFTER`)
before a cycle tries the configured member chunk again, and what a refusal during that try falls back to.

`missing_members` reads a 400 that says members do not exist (one deleted on the destination behind our
back: our destination id for it is stale), and `with_members_renamed` rewrites a group PATCH for the
member ids that replace them (or without them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from replicator.pipeline.answers import kind_mismatch_reason, members_of_another_kind
from replicator.pipeline.value_order import sort_values

_LIMIT = re.compile(
    r"\b(?:more than|greater than|at most|up to|maximum|max\.?|limit(?:ed)?|exceed(?:s|ed|ing)?)"
    r"\D{0,25}?(\d+)", re.IGNORECASE)
_TOO_MANY = re.compile(r"too (?:many|large)", re.IGNORECASE)
_MEMBER_PATH = re.compile(r"members?\s*(?:\.|\[)\s*(\d+)\s*\]?(?:\s*\.\s*([A-Za-z$]+))?", re.IGNORECASE)
_GROUP_AS_MEMBER = re.compile(r"\bgroups?\b", re.IGNORECASE)
_SHORTEST_NAMED_VALUE = 4  # shorter values would match words of the detail by chance
PROBE_AFTER = 7 * 24 * 3600.0  # seconds a learned member-count limit is kept before a cycle tries the setting
_MISSING = re.compile(r"\b(?:do(?:es)? ?n[o']t exist|not found|no such|unknown|non-?existent|cannot be found)\b",
                      re.IGNORECASE)


@dataclass(frozen=True)
class MemberRefusal:
    """What to change before retrying: members to leave out and/or a smaller member chunk."""

    reason: str
    refused_values: frozenset[str] = frozenset()
    refused_type: str | None = None  # every member of this `type` (compared without case)
    chunk: int | None = None  # the member chunk to use from now on for this destination

    def refuses(self, member: dict[str, Any]) -> bool:
        """Whether this member is to be left out."""
        if member.get("value") in self.refused_values:
            return True
        kind = member.get("type")
        return self.refused_type is not None and isinstance(kind, str) and kind.lower() == self.refused_type.lower()

    def split(self, members: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(members kept, members refused), each in the given order."""
        kept: list[dict[str, Any]] = []
        refused: list[dict[str, Any]] = []
        for member in members:
            (refused if self.refuses(member) else kept).append(member)
        return kept, refused


def member_refusal(scim_type: str | None, detail: str | None, sent: list[dict[str, Any]],
                   chunk: int) -> MemberRefusal | None:
    """What a 400 to a write carrying the members `sent` (at most `chunk` of them) asks us to change;
    None when it is not about those members (or names nothing we could leave out)."""
    text = detail or ""
    if not sent or ("member" not in text.lower() and scim_type != "tooMany"):
        return None
    named = _member_at_path(text, sent)
    if named is not None:
        member, attribute = named
        kind = member.get("type")
        if attribute == "type" and isinstance(kind, str):
            return MemberRefusal(reason=f"the destination refuses members of type {kind}: {text}", refused_type=kind)
        return MemberRefusal(reason=f"the destination refuses member {member['value']}: {text}",
                             refused_values=frozenset({member["value"]}))
    limit = member_limit(scim_type, text)
    if limit is not None:
        new_chunk = smaller_chunk(limit, len(sent), chunk)
        return None if new_chunk is None else MemberRefusal(
            reason=f"the destination takes at most {new_chunk} members per request", chunk=new_chunk)
    values = frozenset(m["value"] for m in sent
                       if len(m["value"]) >= _SHORTEST_NAMED_VALUE and m["value"] in text)
    if values:
        return MemberRefusal(reason=f"the destination refuses {len(values)} member(s): {text}", refused_values=values)
    if _GROUP_AS_MEMBER.search(text) and any(str(m.get("type", "")).lower() == "group" for m in sent):
        return MemberRefusal(reason=f"the destination refuses groups as members: {text}", refused_type="Group")
    return None


@dataclass(frozen=True)
class LearnedLimit:
    """A member-count limit learned for a destination (`value` members per request) at `learned_at`
    (epoch seconds). Kept for `PROBE_AFTER`; from then on each cycle sends the configured member chunk
    again (probes): a request the destination takes with more members raises it (`raised`: at once due
    again, as the setting is still untried), one of the setting's count forgets it, and a 400 about the
    count learns it anew (kept another `PROBE_AFTER`)."""

    value: int
    learned_at: float  # when `value` was learned, or raised to
    raised: bool = False  # what a probe found the destination takes, not what it refused

    @property
    def probe_at(self) -> float:
        """From when a cycle tries the configured member chunk again."""
        return self.learned_at if self.raised else self.learned_at + PROBE_AFTER

    def due(self, now: float) -> bool:
        return now >= self.probe_at

    def chunk_after_refusal(self, chunk: int, sent: int) -> int:
        """The member chunk after a probe's request of `sent` members was refused for its count
        (`chunk`: what the refusal asks for): no smaller than this limit, which the destination took
        before, unless a request of at most this limit was refused too."""
        return max(chunk, self.value) if sent > self.value else chunk


def missing_members(detail: str | None, sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sent members a 400's detail says do not exist (named by a member path or by value); none
    when the detail says no such thing of members."""
    text = detail or ""
    if "member" not in text.lower() or not _MISSING.search(text):
        return []
    named = _member_at_path(text, sent)
    if named is not None:
        return [named[0]]
    return [m for m in sent if len(m["value"]) >= _SHORTEST_NAMED_VALUE and m["value"] in text]


def changed_members(operations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The members a PATCH body's operations add, and one nameless entry per member removed by path:
    what its member count is."""
    removed = [{"value": ""} for op in operations if str(op.get("path", "")).lower().startswith("members[")]
    return added_members(operations) + removed


def added_members(operations: Iterable[dict[str, Any]]) -> list[Any]:
    """The members a group's PATCH operations add (or set)."""
    found: list[Any] = []
    for operation in operations:
        value = operation.get("value")
        if str(operation.get("path", "")).lower() == "members" and isinstance(value, list):
            found.extend(member for member in value if isinstance(member, Mapping) and "value" in member)
    return found


def with_members_renamed(form: dict[str, Any], operations: list[dict[str, Any]],
                         renamed: dict[str, str | None]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A group's desired form and PATCH operations with members named by their new ids (`renamed`: old
    value -> new value, None to leave the member out); an add left empty is dropped."""
    rest = {key: value for key, value in form.items() if key != "members"}
    members = sort_values(_renamed_members(form.get("members", []), renamed))
    new_operations = []
    for operation in operations:
        value = operation.get("value")
        if str(operation.get("path", "")).lower() == "members" and isinstance(value, list):
            value = _renamed_members(value, renamed)
            if not value:
                continue
            operation = {**operation, "value": value}
        new_operations.append(operation)
    return ({**rest, "members": members} if members else rest), new_operations


def _renamed_members(members: list[Any], renamed: dict[str, str | None]) -> list[Any]:
    out = []
    for member in members:
        value = member.get("value") if isinstance(member, Mapping) else None
        if value not in renamed:
            out.append(member)
        elif renamed[value] is not None:
            out.append({**member, "value": renamed[value]})
    return out


def member_limit(scim_type: str | None, detail: str) -> int | None:
    """The most members per request a refusal speaks of: the number it names (0: none named), or None
    when it names no limit at all."""
    match = _LIMIT.search(detail)
    if match is not None:
        return int(match.group(1))
    if scim_type == "tooMany" or _TOO_MANY.search(detail):
        return 0
    return None


def smaller_chunk(limit: int, sent: int, chunk: int) -> int | None:
    """The member chunk after a refusal of `sent` members as too many: the server's `limit` when it is
    below what was sent, else half of what was sent; None when one member was sent (nothing smaller)."""
    current = min(sent, chunk)
    if current <= 1:
        return None
    if 1 <= limit < current:
        return limit
    return max(1, current // 2)


def _member_at_path(detail: str, sent: list[dict[str, Any]]) -> tuple[dict[str, Any], str | None] | None:
    """The sent member a path in the detail names (`members.3.type`), with the attribute named."""
    match = _MEMBER_PATH.search(detail)
    if match is None:
        return None
    index = int(match.group(1))
    if index >= len(sent):
        return None
    attribute = match.group(2).lower() if match.group(2) else None
    return sent[index], attribute


@dataclass
class MembersNotWritten:
    """The members of one group write that the destination refused (or may not hold), and why: the
    group is recorded without them and the write counts as a failure of its membership."""

    values: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    # members deleted on the destination: old destination id -> the re-created one (None: left out)
    renamed: dict[str, str | None] = field(default_factory=dict)

    @property
    def changes(self) -> bool:
        """The group the destination holds differs from the one planned (refused or renamed members)."""
        return bool(self.values or self.renamed)

    def rename(self, members: list[dict[str, Any]], renamed: dict[str, str | None]) -> list[dict[str, Any]]:
        """Members with their re-created ids (`renamed`), noted; those without one are left out."""
        self.renamed.update(renamed)
        return _renamed_members(members, renamed)

    def add(self, members: list[dict[str, Any]], reason: str) -> None:
        known = set(self.values)
        self.values.extend(m["value"] for m in members if m["value"] not in known)
        if reason not in self.reasons:
            self.reasons.append(reason)

    def add_held_as_another_kind(self, sent: list[dict[str, Any]], answer: dict[str, Any] | None) -> None:
        """Sent members the answer holds as another kind (a server ignoring member type took a group
        for the user with the same id): not written as sent."""
        confused = members_of_another_kind(sent, answer)
        if confused:
            values = {value for value, _, _ in confused}
            self.add([m for m in sent if m["value"] in values], kind_mismatch_reason(confused))

    def without_them(self, form: dict[str, Any]) -> dict[str, Any]:
        """The group's form with these members left out (as the destination holds it)."""
        left_out = set(self.values)
        members = sort_values(_renamed_members([m for m in form.get("members", []) if m["value"] not in left_out],
                                               self.renamed))
        rest = {key: value for key, value in form.items() if key != "members"}
        return {**rest, "members": members} if members else rest

    def summary(self, examples: int = 3) -> str:
        """One line: how many, a few of them, and the destination's reasons."""
        shown = ", ".join(self.values[:examples]) + (", ..." if len(self.values) > examples else "")
        return f"{len(self.values)} member(s) not written ({shown}): {'; '.join(self.reasons)}"

    def __bool__(self) -> bool:
        return bool(self.values)
