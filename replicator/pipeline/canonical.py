"""Canonical form and digest of a SCIM resource. Pure; no I/O.

The canonical form is what we replicate: the client-owned attributes of a resource with server-owned
ones (`id`, `meta`, `schemas`, `User.groups`, every `$ref`, `members[].display`) dropped, empty values
dropped (and entries of multi-valued attributes whose `value` is empty, and exact duplicates).

A multi-valued attribute keeps the source's order with its primary value moved to the front: that is the
order we send, since some servers (PingOne) keep only the first value they get. Its order means nothing
else: `comparable` gives the form with every multi-valued attribute sorted (what two servers holding the
same data agree on), and `digest` and `same` look only at that, so a reordering is never a change. Group
`members` have no primary and stay sorted. The digest is a 128-bit BLAKE2b of the deterministic JSON
encoding of the comparable form, salted with CANON_VERSION so that a change of recipe re-baselines
instead of looking like a change of every object; the comparable form is the form that recipe 1 stored
(sorted), so digests recorded before multi-valued order was kept are the digests of the same data now.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal

import msgspec

from replicator import deterministic_json
from replicator.pipeline.member import COMPACT_FROM, Member, decode_fields, decode_value, first_decoded
from replicator.pipeline.value_order import sort_members, sort_values
from replicator.scim.attributes import key_folded
from replicator.scim.urns import CORE_GROUP, CORE_USER

# demo.py, sample_data.py and snapshot.py (outside the scim part of issue 14) still import it from here
from replicator.scim.urns import ENTERPRISE_USER as ENTERPRISE_USER

CANON_VERSION = 1


class Kind(StrEnum):
    """The resource types we replicate; the value is the SCIM resource type name, as the state stores it
    (`resources.kind`) and the reports print it."""

    USER = "User"
    GROUP = "Group"


# the members, typed str while replicator/cycle/ passes kinds as str: its dicts built from them are keyed by str
USER: str = Kind.USER
GROUP: str = Kind.GROUP
KINDS = (USER, GROUP)

CORE_SCHEMAS = {USER: CORE_USER, GROUP: CORE_GROUP}

_SERVER_OWNED_TOP = {"id", "meta", "schemas", "$ref"}
_SERVER_OWNED_BY_KIND = {USER: {"groups", "password"}, GROUP: set()}
_DROPPED_EVERYWHERE = {"$ref"}
encode = deterministic_json.encode  # deterministic JSON bytes (sorted keys) of a canonical value


def canonicalise(resource: dict[str, Any], kind: str) -> dict[str, Any]:
    """Return the canonical form of a resource as read from a SCIM server."""
    dropped = _SERVER_OWNED_TOP | _SERVER_OWNED_BY_KIND[kind]
    out: dict[str, Any] = {}
    for key, value in resource.items():
        if key in dropped:
            continue
        if kind == GROUP and key == "members":
            members = _canonical_members(value)
            if members:
                out[key] = members
            continue
        clean = _clean(value)
        if clean is not None:
            out[key] = clean
    return out


def _canonical_members(value: Any) -> list[Any]:
    if not isinstance(value, list):
        return []
    members: list[Any] = []
    for item in value:
        if type(item) is Member:
            members.append(item)  # (as `decode_for_canonical` made it, or a canonical form's own)
            continue
        if not isinstance(item, dict):
            continue
        # memory: a member `decode_for_canonical` made is the canonical one already, and is kept as it is
        member = item if _is_canonical_member(item) else canonical_member(item.get("value"), item.get("type"))
        if member is not None:
            members.append(member)
    if len({member.get("type") for member in members}) > 1:
        # one member per value, the first (a value typed both User and Group is one member); of one type,
        # the members of a value are all the same, and `sort_members` keeps one (memory: no dict of them)
        by_value: dict[str, Any] = {}
        for member in members:
            by_value.setdefault(member["value"], member)
        members = list(by_value.values())
    return sort_members(members)


def canonical_member(value: Any, kind: Any, *, compact: bool = False) -> Any:
    """What the canonical form keeps of a group member with this `value` and `type` (a numbered id as
    a string, the type only when it is a non-empty string), as a dict (a `Member` when `compact`); None
    when its value is empty or no id."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # numbered ids
    if not isinstance(value, str) or not value:
        return None
    if not (isinstance(kind, str) and kind):
        return Member(value=value) if compact else {"value": value}
    kind = sys.intern(kind) if type(kind) is str else kind  # memory: one "User" for all the members, not one each
    return Member(type=kind, value=value) if compact else {"value": value, "type": kind}


def _is_canonical_member(item: dict[str, Any]) -> bool:
    """A member as `canonical_member` makes it (its type string the interned one)."""
    value, kind = item.get("value"), item.get("type")
    return (len(item) == (1 if kind is None else 2) and type(value) is str and value != ""
            and (kind is None or (type(kind) is str and kind != "" and sys.intern(kind) is kind)))


class _Member(msgspec.Struct, gc=False):
    """A group member as `decode_for_canonical` reads it: only what the canonical form keeps."""

    value: Any = None
    type: Any = None


class _TypedMember(msgspec.Struct, gc=False):
    """`_Member` of the usual types, each member's `type` the one string object (memory: not a "User"
    string of each of a million members while they are decoded)."""

    value: Any = None
    type: Literal["User", "Group"] | None = None


# the members as `_TypedMember`s, or when one has another type, as `_Member`s
_members_decoders = (msgspec.json.Decoder(list[_TypedMember]), msgspec.json.Decoder(list[_Member]))
_whole_decoder = msgspec.json.Decoder(dict)
decode_whole = _whole_decoder.decode  # a resource's JSON object, every attribute as sent


RawJson = bytes | msgspec.Raw  # a resource's JSON as read: bytes, or a view into the payload of its page


def decode_for_canonical(raw: RawJson, kind: str) -> dict[str, Any]:
    """A resource's JSON object, decoded for `canonicalise`, which gives the same canonical form as from
    the whole decoding: a group's `members` are decoded to their canonical form at once (memory: a group
    of a million members is not held as dicts of every attribute, display and $ref strings included,
    beside its canonical form). Members that are not all objects are decoded whole."""
    if kind != GROUP:
        return decode_whole(raw)
    fields = decode_fields(raw)
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key != "members":
            out[key] = decode_value(value)
            continue
        members = first_decoded(_members_decoders, value)
        if members is None:  # (not all objects)
            out[key] = decode_value(value)
            continue
        compact = len(members) > COMPACT_FROM  # (memory: a big group's members as `Member`s)
        for index, member in enumerate(members):  # (in place: each member read is let go as it is made)
            members[index] = canonical_member(member.value, member.type, compact=compact)
        out[key] = members
    return out


def _clean(value: Any) -> Any:
    """Drop empty values and server-owned sub-attributes; primary values first in lists. None means 'absent'.

    Hot path (every attribute of every object read): exact type checks, no generators."""
    kind = type(value)
    if kind is str:
        return value or None
    if kind is dict:
        out = {}
        for key, sub in value.items():
            if key in _DROPPED_EVERYWHERE:
                continue
            clean = _clean(sub)
            if clean is not None:
                out[key] = clean
        manager = out.get("manager")
        if type(manager) is dict and "displayName" in manager:
            # manager.displayName is read-only (RFC 7643 4.3): the value is what we replicate
            manager = {k: v for k, v in manager.items() if k != "displayName"}
            if manager:
                out["manager"] = manager
            else:
                del out["manager"]
        return out or None
    if kind is list:
        items = []
        for item in value:
            clean = _clean(item)
            if clean is None or (type(item) is dict and "value" in item and "value" not in clean):
                continue  # an entry whose value is empty (`{"value": "", "primary": true}`) says nothing
            items.append(clean)
        if len(items) > 1:
            items = primary_first(items)
        return items or None
    return value


def primary_first(items: list[Any]) -> list[Any]:
    """A multi-valued attribute in the order to send: exact duplicates dropped (the first kept), the
    primary value (`primary: true`) first, the others in the source's order."""
    unique: dict[bytes, Any] = {}
    for item in items:
        unique.setdefault(encode(item), item)
    kept = list(unique.values())
    primary = [item for item in kept if type(item) is dict and item.get("primary") is True]
    if not primary or (len(primary) == 1 and kept[0] is primary[0]):
        return kept
    return [*primary, *(item for item in kept if not (type(item) is dict and item.get("primary") is True))]


def comparable(value: Any) -> Any:
    """A canonical value with every multi-valued attribute sorted (and deduplicated): what `digest` and
    `same` compare, so that the order of its values is no difference. Parts without a list are shared,
    not copied."""
    kind = type(value)
    if kind is dict:
        out = None
        for key, sub in value.items():
            sub_kind = type(sub)
            if sub_kind is dict or sub_kind is list:
                view = comparable(sub)
                if view is not sub:
                    if out is None:
                        out = dict(value)
                    out[key] = view
        return value if out is None else out
    if kind is list:
        if len(value) == 1:
            only = comparable(value[0])
            return value if only is value[0] else [only]
        return sort_members([comparable(item) for item in value])  # (sort_values' order: a group's members fast)
    return value


def same(a: Any, b: Any) -> bool:
    """Two canonical values hold the same data (multi-valued attributes compared as sets)."""
    return bool(a == b or comparable(a) == comparable(b))


def digest(canonical: dict[str, Any]) -> str:
    """128-bit hex digest of a canonical form (salted with CANON_VERSION), blind to the order of the
    values of its multi-valued attributes."""
    view = comparable(canonical)
    members = view.get("members")
    if type(members) is list and len(members) > _DIGEST_CHUNK:
        return digest_in_parts(view, _DIGEST_CHUNK)
    h = hashlib.blake2b(encode(view), digest_size=16, person=b"scimrep-v%d" % CANON_VERSION)
    return h.hexdigest()


_DIGEST_CHUNK = 1024  # members encoded at a time for the digest of a larger group


def digest_in_parts(view: dict[str, Any], chunk: int) -> str:
    """`digest` of a comparable form whose longest list (a group's `members`) is hashed `chunk` entries
    at a time, not encoded whole (a group of a million members is tens of megabytes of JSON): the same
    bytes go through the hash, so the digest is the same."""
    h = hashlib.blake2b(digest_size=16, person=b"scimrep-v%d" % CANON_VERSION)
    for part in deterministic_json.encoded_in_parts(view, chunk):
        h.update(part)
    return h.hexdigest()


def schemas_for(canonical: dict[str, Any], kind: str) -> list[str]:
    """The `schemas` list a resource needs on the wire: its core schema plus each extension it carries."""
    return [CORE_SCHEMAS[kind], *sorted(k for k in canonical if k.startswith("urn:"))]


def match_value(canonical: dict[str, Any], attribute: str) -> str | None:
    """The value of a (dotted) attribute used to find an existing object on the destination: each part
    under the first key equal to it ignoring case (`get_first_ci`, each part folded once: `key_folded`).

    Hot path (every object read, recorded, looked up): the parts lower-cased once per attribute."""
    value: Any = canonical
    for folded in _match_parts.get(attribute) or _folded_parts(attribute):
        if not isinstance(value, dict):
            return None
        key = key_folded(value, folded)
        if key is None:
            return None
        value = value[key]
    return value if isinstance(value, str) and value else None


_match_parts: dict[str, tuple[str, ...]] = {}


def _folded_parts(attribute: str) -> tuple[str, ...]:
    parts = _match_parts[attribute] = tuple(part.lower() for part in attribute.split("."))
    return parts


def project(live: dict[str, Any], *templates: dict[str, Any]) -> dict[str, Any]:
    """Keep only the parts of a live destination form that some template (desired or previous) has.

    Attributes the destination adds on its own (defaults, computed values) are then not seen as drift,
    and nothing we never managed is ever removed.
    """
    out: dict[str, Any] = {}
    # attribute names are case-insensitive (RFC 7643 2.1): a server answering `username` for `userName`
    # is not drift, so live keys take the templates' spelling
    spelling = {k.lower(): k for t in templates for k in t}
    for live_key, value in live.items():
        key = spelling.get(live_key.lower(), live_key)
        subs = [t[key] for t in templates if key in t]
        if not subs:
            continue
        if isinstance(value, dict) and all(isinstance(s, dict) for s in subs):
            projected = project(value, *subs)
            if projected:
                out[key] = projected
        elif isinstance(value, list) and all(isinstance(s, list) for s in subs):
            item_keys = {k.lower(): k for s in subs for item in s if isinstance(item, Mapping) for k in item}
            items = [
                {item_keys[k.lower()]: v for k, v in item.items() if k.lower() in item_keys}
                if isinstance(item, dict) else item
                for item in value
            ]
            items = [i for i in items if i != {}]
            if items:
                out[key] = sort_values(items)
        else:
            out[key] = value
    return out
