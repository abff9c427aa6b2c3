"""SCIM ⇄ PingOne Platform API translation. Pure; no I/O.

Owns the one mapping between the SCIM-shaped forms the cycle sees (the PingOne plan, issue 15) and the
bodies of the PingOne Platform API (`components.schemas.User` / `Group` of its OpenAPI document):
what a Platform user or group reads as, what body creates or replaces one, what PingOne can hold of
a SCIM form (`storable`), the Platform filter for a match lookup, and the words of an error body.

What the document says, and this module follows:
- `enabled` is read-only on a user: it is never in a user body; `enabled_body` is the body of
  `PUT users/{id}/enabled`.
- `population.id` is set on create only ("cannot be updated using PUT users/{id}"; a user moves
  with `PUT users/{id}/population` `{"id": ...}`); a group's population is chosen at creation.
- `email` and `username` are required in a user body; `name` is required in a group body.
- A group body carries no members (memberships are written per user, `users/{id}/memberOfGroups`).
Values are passed as they are: PingOne's 400 INVALID_DATA names the target of a value it refuses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from replicator.pipeline.canonical import GROUP, USER
from replicator.pipeline.filter_eval import And, Compare, FilterError, Node, Or, parse_filter
from replicator.scim.filters import quote

USER_EXTENSION = "urn:pingidentity:schemas:extension:2.0:PingOneUser"
GROUP_EXTENSION = "urn:pingidentity:schemas:extension:2.0:PingOneGroup"

# SCIM name -> Platform name, for the string attributes that map one to one
_USER_STRINGS = {"userName": "username", "externalId": "externalId", "nickName": "nickname", "title": "title",
                 "preferredLanguage": "preferredLanguage", "locale": "locale", "timezone": "timezone",
                 "userType": "type"}
_NAME_PARTS = {"givenName": "given", "familyName": "family", "middleName": "middle", "formatted": "formatted",
               "honorificPrefix": "honorificPrefix", "honorificSuffix": "honorificSuffix"}
_ADDRESS_PARTS = {"streetAddress": "streetAddress", "locality": "locality", "region": "region",
                  "postalCode": "postalCode", "country": "countryCode"}
_GROUP_STRINGS = {"displayName": "name", "externalId": "externalId"}
# a group's definition beyond SCIM's Group (which has no description, no userFilter): in the PingOneGroup
# extension, read and written only when the other side is PingOne too
_GROUP_DEFINITION = ("description", "userFilter")
# what the cycle's match lookups may ask, per kind: lower-cased SCIM path -> Platform attribute
_FILTER_ATTRIBUTES = {
    USER: {"id": "id", "username": "username", "externalid": "externalId", "emails": "email",
           "emails.value": "email", "name.givenname": "name.given", "name.familyname": "name.family",
           "usertype": "type"},
    GROUP: {"id": "id", "displayname": "name", "externalid": "externalId"},
}
_FILTER_OPERATORS = frozenset({"eq", "sw"})
_SERVER_OWNED = frozenset({"id", "meta", "schemas"})
_MAX_DETAIL = 300


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _ci(form: Mapping[str, Any]) -> dict[str, Any]:
    """The form's attributes keyed by their lower-cased names (SCIM names are case-insensitive)."""
    return {key.lower(): value for key, value in form.items() if isinstance(key, str)}


def _entries(value: Any) -> list[Any]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _chosen(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The primary entry of a multi-valued attribute, else the first (PingOne keeps one value)."""
    return next((e for e in entries if _ci(e).get("primary") is True), entries[0] if entries else None)


def _is_mobile(entry: Mapping[str, Any]) -> bool:
    kind = _ci(entry).get("type")
    return isinstance(kind, str) and kind.lower() == "mobile"


def _phones(scim_user: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(primaryPhone, mobilePhone): the primary (else first) non-mobile number, and of the mobile ones."""
    phones = [e for e in _entries(_ci(scim_user).get("phonenumbers")) if _text(_ci(e).get("value"))]
    work = _chosen([e for e in phones if not _is_mobile(e)])
    mobile = _chosen([e for e in phones if _is_mobile(e)])
    return (_ci(work)["value"] if work else None), (_ci(mobile)["value"] if mobile else None)


def _chosen_value(scim_user: Mapping[str, Any], attribute: str) -> str | None:
    entry = _chosen([e for e in _entries(_ci(scim_user).get(attribute)) if _text(_ci(e).get("value"))])
    return _ci(entry)["value"] if entry else None


def _address(scim_user: Mapping[str, Any]) -> dict[str, str]:
    """The primary (else first) address, in Platform names; only its string parts."""
    entry = _chosen(_entries(_ci(scim_user).get("addresses")))
    parts = _ci(entry or {})
    return {p1: value for scim, p1 in _ADDRESS_PARTS.items() if (value := _text(parts.get(scim.lower())))}


def population_name(scim_form: Mapping[str, Any]) -> str | None:
    """The population a user or group form names (its PingOneUser / PingOneGroup extension), or None."""
    attributes = _ci(scim_form)
    for urn in (USER_EXTENSION, GROUP_EXTENSION):
        population = _ci(_object(attributes.get(urn.lower()))).get("population")
        if isinstance(population, Mapping) and (name := _text(_ci(population).get("name"))):
            return name
    return None


def _with_population(form: dict[str, Any], urn: str, population: Any,
                     population_names: Mapping[str, str] | None) -> dict[str, Any]:
    """Add the population extension when populations are replicated and the id is a known population
    (an id missing from `population_names` is left out rather than named wrongly)."""
    if population_names is None or not isinstance(population, Mapping):
        return form
    name = population_names.get(population.get("id") or "")
    if name:
        form[urn] = {"population": {"name": name}}
    return form


def user_to_scim(platform_user: Mapping[str, Any], *, population_names: Mapping[str, str] | None) -> dict[str, Any]:
    """The SCIM-shaped form of a Platform user (the plan's list; empty values left out).

    The population extension is there only when `population_names` (population id -> name) is given.
    """
    user = platform_user
    form: dict[str, Any] = {}
    if _text(user.get("id")):
        form["id"] = user["id"]
    form.update({scim: user[p1] for scim, p1 in _USER_STRINGS.items() if _text(user.get(p1))})
    name = _object(user.get("name"))
    parts = {scim: name[p1] for scim, p1 in _NAME_PARTS.items() if _text(name.get(p1))}
    if parts:
        form["name"] = parts
    if isinstance(user.get("enabled"), bool):
        form["active"] = user["enabled"]
    if _text(user.get("email")):
        form["emails"] = [{"value": user["email"], "primary": True}]
    phones = []
    if _text(user.get("primaryPhone")):
        phones.append({"value": user["primaryPhone"], "type": "work", "primary": True})
    if _text(user.get("mobilePhone")):
        phones.append({"value": user["mobilePhone"], "type": "mobile"})
    if phones:
        form["phoneNumbers"] = phones
    address = _object(user.get("address"))
    if parts := {scim: address[p1] for scim, p1 in _ADDRESS_PARTS.items() if _text(address.get(p1))}:
        form["addresses"] = [{**parts, "primary": True}]
    photo = _object(user.get("photo"))
    if _text(photo.get("href")):
        form["photos"] = [{"value": photo["href"], "type": "photo"}]
    return _with_population(form, USER_EXTENSION, user.get("population"), population_names)


def user_to_platform(scim_user: Mapping[str, Any], *, population_id: str | None) -> dict[str, Any]:
    """The Platform body creating (POST users) or replacing (PUT users/{id}) a user.

    Only writable attributes: never `id`, `enabled` (read-only: see `enabled_body`) or other server-set
    ones. The email is the primary email (else the first), `primaryPhone` the primary (else first)
    phone not typed mobile, `mobilePhone` that of the mobile ones, the address the primary (else
    first) one. `population_id` belongs to a create: PUT does not move a user (the document:
    `PUT users/{id}/population` `{"id": ...}` does); pass None when replacing.
    """
    attributes = _ci(scim_user)
    body: dict[str, Any] = {p1: value for scim, p1 in _USER_STRINGS.items()
                            if (value := _text(attributes.get(scim.lower())))}
    name = _ci(_object(attributes.get("name")))
    if parts := {p1: value for scim, p1 in _NAME_PARTS.items() if (value := _text(name.get(scim.lower())))}:
        body["name"] = parts
    if email := _chosen_value(scim_user, "emails"):
        body["email"] = email
    primary_phone, mobile_phone = _phones(scim_user)
    if primary_phone:
        body["primaryPhone"] = primary_phone
    if mobile_phone:
        body["mobilePhone"] = mobile_phone
    if address := _address(scim_user):
        body["address"] = address
    if photo := _chosen_value(scim_user, "photos"):
        body["photo"] = {"href": photo}
    if population_id:
        body["population"] = {"id": population_id}
    return body


def missing_required(platform_user_body: Mapping[str, Any]) -> str | None:
    """Why PingOne would refuse this user body (its document: `email` and `username` required), or None."""
    absent = [name for name in ("username", "email") if not _text(platform_user_body.get(name))]
    if not absent:
        return None
    return f"PingOne requires {' and '.join(absent)} on every user and this one has none (not sent)"


def enabled_body(scim_user: Mapping[str, Any]) -> dict[str, bool] | None:
    """The body of `PUT users/{id}/enabled` for the form's `active`, or None when the form has none."""
    active = _ci(scim_user).get("active")
    return {"enabled": active} if isinstance(active, bool) else None


def group_to_scim(platform_group: Mapping[str, Any], *, user_members: Iterable[str], group_members: Iterable[str],
                  population_names: Mapping[str, str] | None) -> dict[str, Any]:
    """The SCIM-shaped form of a Platform group with its DIRECT members (user ids, group ids).

    `population_names` given (the other side is PingOne too): the PingOneGroup extension carries the
    population's name (a population-bound group), the description and the `userFilter` of a dynamic
    group; without it a form holds only what a SCIM Group has (RFC 7643 section 4.2).
    """
    group = platform_group
    form: dict[str, Any] = {}
    if _text(group.get("id")):
        form["id"] = group["id"]
    form.update({scim: group[p1] for scim, p1 in _GROUP_STRINGS.items() if _text(group.get(p1))})
    members = [{"value": m, "type": "User"} for m in user_members if m]
    members += [{"value": m, "type": "Group"} for m in group_members if m]
    if members:
        form["members"] = members
    form = _with_population(form, GROUP_EXTENSION, group.get("population"), population_names)
    if population_names is not None and (definition := {k: group[k] for k in _GROUP_DEFINITION if _text(group.get(k))}):
        form[GROUP_EXTENSION] = {**form.get(GROUP_EXTENSION, {}), **definition}
    return form


def group_definition(scim_form: Mapping[str, Any]) -> dict[str, str]:
    """The description and userFilter a group form's PingOneGroup extension holds."""
    extension = _ci(_object(_ci(scim_form).get(GROUP_EXTENSION.lower())))
    return {key: value for key in _GROUP_DEFINITION if (value := _text(extension.get(key.lower())))}


def group_to_platform(scim_group: Mapping[str, Any], *, population_id: str | None) -> dict[str, Any]:
    """The Platform body creating (POST groups) or replacing (PUT groups/{id}) a group: no members.

    `population_id` binds a new group to a population (None: environment-wide); a group's population
    is chosen at creation and never changed, so pass None when replacing.
    """
    attributes = _ci(scim_group)
    body: dict[str, Any] = {p1: value for scim, p1 in _GROUP_STRINGS.items()
                            if (value := _text(attributes.get(scim.lower())))}
    body.update(group_definition(scim_group))
    if population_id:
        body["population"] = {"id": population_id}
    return body


def unreplicable_group(platform_group: Mapping[str, Any], *, definitions: bool = False) -> str | None:
    """Why a Platform group is not replicated (PingOne computes its members), or None. A dynamic
    group is replicated as its definition (its userFilter, never its members) when `definitions` (the
    other side is PingOne); an external group never is (`sourceType` is read-only)."""
    if _text(platform_group.get("userFilter")) and not definitions:
        return "a dynamic group: PingOne adds its members by its userFilter"
    source_type, source_id = _text(platform_group.get("sourceType")), _text(platform_group.get("sourceId"))
    if source_type or source_id:
        return f"an external group (sourceType {source_type or 'not given'}): its members come from its source"
    return None


def is_dynamic(group: Mapping[str, Any]) -> bool:
    """A Platform group whose members PingOne computes from its userFilter."""
    return _text(group.get("userFilter")) is not None


def _storable_user(form: Mapping[str, Any]) -> dict[str, Any]:
    body = user_to_platform(form, population_id=None)
    kept = user_to_scim(body, population_names=None)
    if (active := enabled_body(form)) is not None:
        kept["active"] = active["enabled"]
    return kept


def storable(kind: str, scim_form: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """What PingOne can hold of a SCIM form (a canonical form: `id`, `meta`, `schemas` are ignored), and
    the sorted names of the top-level attributes (or extension URNs) it could not keep whole.

    A user keeps the plan's attributes: one email (the primary, else the first), one work and one
    mobile phone, one address, one photo, `active`, and the population's name; not the enterprise
    extension (so no manager), `displayName`, x509, ims, roles, entitlements, nor a type on the email.
    A group keeps displayName, externalId, members (value and type), and in the PingOneGroup extension its
    population, description and userFilter.
    Idempotent: `storable(kind, storable(kind, x)[0])` is `(storable(kind, x)[0], [])`. Comparing the
    storable part of the desired form with the destination keeps what PingOne cannot hold from being
    re-written every cycle.
    """
    if kind == USER:
        kept, urn = _storable_user(scim_form), USER_EXTENSION
    elif kind == GROUP:
        kept = group_to_scim(group_to_platform(scim_form, population_id=None), user_members=(), group_members=(),
                             population_names=None)
        members = [{k: v for k, v in m.items() if k in ("value", "type") and _text(v)}
                   for m in _entries(_ci(scim_form).get("members")) if _text(m.get("value"))]
        if members:
            kept["members"] = members
        urn = GROUP_EXTENSION
    else:
        raise ValueError(f"unknown kind {kind!r}: expected {USER!r} or {GROUP!r}")
    if population := population_name(scim_form):
        kept[urn] = {"population": {"name": population}}
    if kind == GROUP and (definition := group_definition(scim_form)):
        kept[urn] = {**kept.get(urn, {}), **definition}
    kept_ci = _ci(kept)
    dropped = {key for key, value in scim_form.items()
               if key.lower() not in _SERVER_OWNED and kept_ci.get(key.lower()) != value}
    return kept, sorted(dropped)


def scim_read_user(scim_user: Mapping[str, Any], *, population_names: Mapping[str, str] | None) -> dict[str, Any]:
    """A user read through PingOne's SCIM API, in the form a Platform read gives: what PingOne stores
    (`storable`), its population by name when `population_names` is given."""
    extension = _ci(_object(_ci(scim_user).get(USER_EXTENSION.lower())))
    kept, _ = storable(USER, {k: v for k, v in scim_user.items() if k.lower() != USER_EXTENSION.lower()})
    form = {"id": scim_user["id"], **kept} if _text(scim_user.get("id")) else kept
    return _with_population(form, USER_EXTENSION, extension.get("population"), population_names)


def platform_filter(kind: str, scim_filter_expression: str) -> str | None:
    """The Platform API filter (`GET users?filter=` / `groups?filter=`) for a SCIM filter, or None when
    it does not translate: only `eq` / `sw` on a string, joined by `and` / `or`, on the attributes a
    match lookup uses (`userName eq "x"` -> `username eq "x"`, `displayName eq "x"` -> `name eq "x"`).
    String values keep their JSON quoting and escapes."""
    try:
        node = parse_filter(scim_filter_expression)
    except FilterError:
        return None
    return _translated(node, _FILTER_ATTRIBUTES.get(kind, {}))


def _translated(node: Node, attributes: Mapping[str, str]) -> str | None:
    if isinstance(node, And | Or):
        left, right = _translated(node.left, attributes), _translated(node.right, attributes)
        if left is None or right is None:
            return None
        word = "and" if isinstance(node, And) else "or"
        if isinstance(node, And):  # `or` binds looser than `and`
            left = f"({left})" if isinstance(node.left, Or) else left
            right = f"({right})" if isinstance(node.right, Or) else right
        return f"{left} {word} {right}"
    if not isinstance(node, Compare) or node.op not in _FILTER_OPERATORS or not isinstance(node.value, str):
        return None
    path = node.path
    if path.urn is not None:
        return None
    name = attributes.get((path.name + (f".{path.sub}" if path.sub else "")).lower())
    return None if name is None else f"{name} {node.op} {quote(node.value)}"


def platform_error_words(body: Any) -> tuple[str | None, str]:
    """(code, one-line detail) of a Platform error body `{id, code, message, details: [{code, target,
    message}]}`. A uniqueness violation PingOne reports in the details of a 400 INVALID_DATA comes back
    as UNIQUENESS_VIOLATION, as a 409 has it. The detail names each target; no body: (None, "")."""
    if not isinstance(body, Mapping):
        return None, ""
    details = [d for d in body["details"] if isinstance(d, Mapping)] if isinstance(body.get("details"), list) else []
    code = _text(body.get("code"))
    detail_codes = [c for d in details if (c := _text(d.get("code")))]
    if code in (None, "INVALID_DATA") and "UNIQUENESS_VIOLATION" in detail_codes:
        code = "UNIQUENESS_VIOLATION"
    elif code is None and detail_codes:
        code = detail_codes[0]
    words = [_text(body.get("message")) or ""]
    for d in details:
        target, message, sub_code = _text(d.get("target")), _text(d.get("message")), _text(d.get("code"))
        words.append(": ".join(w for w in (target, message or sub_code) if w))
    detail = " ".join(" ".join(w for w in words if w).split())  # one line
    return code, detail if len(detail) <= _MAX_DETAIL else detail[: _MAX_DETAIL - 1] + "…"


_MEMBER_PATH = re.compile(r'^\s*members\s*\[\s*value\s+eq\s+(".*")\s*\]\s*$', re.IGNORECASE)


def member_filter_value(path: str) -> str | None:
    """The member a PatchOp path `members[value eq "x"]` names (its literal unquoted), or None when the
    path is not that."""
    found = _MEMBER_PATH.match(path)
    if found is None:
        return None
    try:
        value = json.loads(found.group(1))
    except ValueError:
        return None
    return value if isinstance(value, str) else None

