"""The deterministic order of a multi-valued attribute's values (`sort_values`: by their JSON
encodings, exact duplicates dropped), and the same order for a group's members without encoding each
of them (`sort_members`). Pure; no I/O."""

from __future__ import annotations

import operator
import re
from typing import Any

from replicator.deterministic_json import encode
from replicator.pipeline.member import Member


def sort_values(items: list[Any]) -> list[Any]:
    """Sort a multi-valued attribute deterministically and drop exact duplicates."""
    unique = {encode(item): item for item in items}
    return [unique[key] for key in sorted(unique)]


def sort_members(members: list[Any]) -> list[Any]:
    """`sort_values` for a group's members, in the same order, without an encoding of every member held
    beside them (a group can hold a million): members of `value` and `type` strings that JSON spells as
    they are are sorted by type, then value (the order of their encodings); any other list as
    `sort_values` sorts it. Hot path (a big group is sorted as it is read, hashed and translated): what
    is done per member is done by C code (the sort's key, the checks on each sorted run of values)."""
    buckets: dict[str | None, list[Any]] = {}
    compact = True  # every member a `Member` (its value an attribute)
    for member in members:
        if type(member) is Member:
            kind = member.type
        elif type(member) is dict and len(member) == (1 if (kind := member.get("type")) is None else 2):
            compact = False
        else:
            return sort_values(members)
        if kind is not None and type(kind) is not str:
            return sort_values(members)
        bucket = buckets.get(kind)
        if bucket is None:
            buckets[kind] = [member]
        else:
            bucket.append(member)
    if any(kind is not None and _NOT_PLAIN.search(kind) for kind in buckets):
        return sort_values(members)
    value_of = _member_attribute if compact else _member_value
    # `{"type":...` sorts before `{"value":...`: the typed members first, by type
    kinds = sorted(kind for kind in buckets if kind is not None) + ([None] if None in buckets else [])
    out: list[Any] = []
    for kind in kinds:
        bucket = buckets.pop(kind)
        try:
            strings = set(map(type, map(value_of, bucket))) == _STRINGS  # (before sorting: only strings are sorted)
        except KeyError:  # a member without a value
            strings = False
        if not strings:
            return sort_values(members)
        ordered = sorted(bucket, key=value_of)
        duplicates = _plain_and_duplicated(ordered, value_of)
        if duplicates is None:
            return sort_values(members)
        out += _without_duplicates(ordered, value_of) if duplicates else ordered
    return out


def _plain_and_duplicated(ordered: list[Any], value_of: Any) -> bool | None:
    """Of members sorted by value: None when a value is one JSON escapes or that sorts before a closing
    quote (their encodings would sort otherwise); else whether two of them have the same value. The
    values (strings) are checked a run at a time, joined."""
    duplicated = False
    for start in range(0, len(ordered), _RUN):
        values = list(map(value_of, ordered[start:start + _RUN + 1]))  # (one more: a pair across runs)
        if _NOT_PLAIN.search("#".join(values)):
            return None
        duplicated = duplicated or any(map(operator.eq, values, values[1:]))
    return duplicated


def _without_duplicates(ordered: list[Any], value_of: Any) -> list[Any]:
    """Members sorted by value, the first of each value kept."""
    out: list[Any] = []
    previous = None
    for member in ordered:
        value = value_of(member)
        if value != previous:
            out.append(member)
            previous = value
    return out


_STRINGS = {str}  # the type of every value sorted here (a subclass of str is sort_values' to judge)
_RUN = 4096  # members whose values are checked at a time (memory: not a list of a million values at once)
# characters that JSON escapes, or that sort before the closing quote (`"a!"` < `"a"`): a string
# holding one may not be ordered as its encoding is
_NOT_PLAIN = re.compile(r'[\x00-\x22\\]')
_member_value = operator.itemgetter("value")
_member_attribute = operator.attrgetter("value")
