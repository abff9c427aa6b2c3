"""A big group's members, held compactly (`Member`). Pure; no I/O.

A group member is `{"type": ..., "value": ...}`. As a dict it costs 184 bytes, which a group of a million
members pays a million times, in its source form and again in its translated form. A `Member` is a
two-field struct of 32 bytes that reads as that mapping (`member["value"]`, `member.get("type")`,
`{**member}`, `isinstance(member, Mapping)`), compares equal to it, and encodes to the same JSON (`type`
left out when it has none). Only the members of a group above `COMPACT_FROM` are held so; code that
reads members takes any Mapping. `decode_form_json` decodes a stored form with such members (the state
uses it for its big forms: this module imports nothing of replicator).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import msgspec

# a group of more members than this holds them as `Member`s
COMPACT_FROM = 8192

_BOTH = ("type", "value")
_VALUE_ONLY = ("value",)


class Member(msgspec.Struct, gc=False, omit_defaults=True, kw_only=True):
    """A group member: its `value` (the id it names) and its `type` ("User", "Group"; None: not said)."""

    type: str | None = None
    value: str

    def keys(self) -> tuple[str, ...]:
        return _VALUE_ONLY if self.type is None else _BOTH

    def __getitem__(self, key: str) -> str:
        if key == "value":
            return self.value
        if key == "type" and self.type is not None:
            return self.type
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        if key == "value":
            return self.value
        if key == "type" and self.type is not None:
            return self.type
        return default

    def items(self) -> list[tuple[str, str]]:
        return [(key, self[key]) for key in self.keys()]

    def values(self) -> list[str]:
        return [self[key] for key in self.keys()]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return 1 if self.type is None else 2

    def __contains__(self, key: object) -> bool:
        return key == "value" or (key == "type" and self.type is not None)

    def __eq__(self, other: object) -> bool:
        if type(other) is Member:
            return self.value == other.value and self.type == other.type
        if isinstance(other, Mapping):
            return len(other) == len(self) and all(other.get(key) == self[key] for key in self.keys())
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None  # type: ignore[assignment]  # (like the dict it stands for)


Mapping.register(Member)


def value_and_type(member: Any) -> tuple[Any, Any]:
    """A member's value and type (None: not said); a `Member` read by attribute (hot path: a big group's
    members are looked up one by one)."""
    if type(member) is Member:
        return member.value, member.type
    return member["value"], member.get("type")


def with_value(member: Any, value: Any) -> Any:
    """The member naming `value` instead: a Member stays one, a dict stays a dict (its other keys kept)."""
    if type(member) is Member:
        return Member(type=member.type, value=value)
    return {**member, "value": value}


class _StoredMember(msgspec.Struct, gc=False, forbid_unknown_fields=True):
    """A canonical member as stored, of the usual types: each one's `type` the one string object."""

    value: str
    type: Literal["User", "Group"] | None = None


class _StoredAnyMember(msgspec.Struct, gc=False, forbid_unknown_fields=True):
    """A canonical member as stored, of any type."""

    value: str
    type: str | None = None


# a member of another key, or of a value or type not a string, is decoded as it is written (a dict)
_stored_members_decoders = (msgspec.json.Decoder(list[_StoredMember]), msgspec.json.Decoder(list[_StoredAnyMember]))
decode_fields = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode  # an object's attributes, each its JSON
decode_value = msgspec.json.Decoder().decode


def first_decoded(decoders: tuple[msgspec.json.Decoder[Any], ...], raw: msgspec.Raw) -> Any:
    """`raw` decoded by the first of `decoders` it is valid for; None when it is valid for none."""
    for decoder in decoders:
        try:
            return decoder.decode(raw)
        except msgspec.ValidationError:
            continue
    return None


def decode_form_json(json: bytes) -> Any:
    """A stored canonical form's JSON, decoded as it is written, except the members of a group of more
    than COMPACT_FROM of them, each `{"type", "value"}` strings or `{"value"}`: those as `Member`s."""
    try:
        fields = decode_fields(json)
    except msgspec.ValidationError:  # (not an object)
        return decode_value(json)
    out: dict[str, Any] = {}
    for key, raw in fields.items():
        members = _stored_members(raw) if key == "members" else None
        out[key] = decode_value(raw) if members is None else members
    return out


def _stored_members(raw: msgspec.Raw) -> list[Any] | None:
    """A big group's stored members as `Member`s; None for a small group or a member of another shape."""
    members: list[Any] | None = first_decoded(_stored_members_decoders, raw)
    if members is None or len(members) <= COMPACT_FROM:
        return None
    for index, member in enumerate(members):  # (in place: each one decoded is let go as it is made)
        kind = member.type if member.type is None or type(member) is _StoredMember else sys.intern(member.type)
        members[index] = Member(type=kind, value=member.value)
    return members
