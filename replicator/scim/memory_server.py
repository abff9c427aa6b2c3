"""In-memory SCIM 2.0 server for the demo, fault-injection tests and benchmarks.

This module owns a small SCIM 2.0 service provider built on ``aiohttp.web``:

* ``/v2/Users`` and ``/v2/Groups`` (create, read, replace, patch, delete, list)
  and ``/v2/ServiceProviderConfig``, answering ``application/scim+json``;
* the subset of RFC 7643/7644 a replicator exercises: index paging, RFC 9865
  cursor paging, ``eq`` filters joined by ``and``, PATCH ``add``/``replace``/
  ``remove`` with plain, dotted, extension-URN and value-filter paths, and SCIM
  error bodies (RFC 7644 section 3.12);
* fault injection (:class:`Faults`): latency, 429/503/500 answers, dropped
  connections, capped pages, one failing list page and lying ``totalResults``.

Resources are kept as the client sent them (no schema validation) plus ``id``
and ``meta``, in insertion order.  Not supported: sorting, ETags, bulk,
``/Schemas``, ``/ResourceTypes``, ``attributes``/``excludedAttributes``.

Seed and mutate resources through HTTP or :meth:`MemoryScimServer.add_user` /
:meth:`MemoryScimServer.add_group`: they keep the uniqueness index that backs
the 409 checks and ``userName``/``displayName`` ``eq`` lookups.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import copy
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web

BASE_PATH = "/v2"
SCIM_JSON = "application/scim+json"

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_RESPONSE_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK_RESPONSE_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
SERVICE_PROVIDER_CONFIG_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

# Attribute paths (lower case) whose filter comparisons ignore case (caseExact false).
CASE_INSENSITIVE_ATTRIBUTES = frozenset({"username"})

# Attributes the client can never write.
READ_ONLY_ATTRIBUTES = frozenset({"id", "meta"})


@dataclass
class Faults:
    """Faults the server injects; every field may be changed while it runs.

    ``seed`` is read when the Faults are given to the server (built with them, or assigned to its
    ``faults``): the same Faults give the same faults in the same order.
    """

    latency: float = 0.0
    rate_429: float = 0.0
    retry_after: str = "1"
    rate_503: float = 0.0
    rate_500: float = 0.0
    rate_reset: float = 0.0
    page_cap: int | None = None
    fail_list_page: int | None = None
    truncate_total: bool = False
    # totalResults reported at most this (a server under-stating its total)
    total_cap: int | None = None
    seed: int | None = None
    # probability that a write (POST/PUT/PATCH/DELETE) is carried out and then its answer is lost
    rate_reset_after_write: float = 0.0
    # answer these statuses (with Retry-After for 429/503) to the next requests, in order; 0 = no fault
    script: list[int] = field(default_factory=list)
    # a write whose JSON body contains one of these strings is refused with 400 invalidValue
    refuse_values: set[str] = field(default_factory=set)
    # the refusal's detail echoes the request's Authorization header (as careless servers do)
    echo_authorization: bool = False
    # at most this many requests per second (one second of burst); beyond: 429 with Retry-After
    rate_cap: float | None = None


class ScimError(Exception):
    """An answer in the SCIM error format (RFC 7644 section 3.12)."""

    def __init__(
        self,
        status: int,
        detail: str,
        scim_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(self.status)}
        if self.scim_type is not None:
            body["scimType"] = self.scim_type
        body["detail"] = self.detail
        return body


@dataclass(frozen=True)
class ResourceKind:
    """What differs between Users and Groups."""

    name: str  # meta.resourceType
    endpoint: str  # URL segment under /v2
    core_schema: str
    unique_attribute: str  # required, and unique among resources of this kind
    unique_case_exact: bool


USER = ResourceKind("User", "Users", USER_SCHEMA, "userName", unique_case_exact=False)
GROUP = ResourceKind("Group", "Groups", GROUP_SCHEMA, "displayName", unique_case_exact=True)


# --------------------------------------------------------------------------- helpers


def find_key(obj: Mapping[str, Any], name: str) -> str | None:
    """The key of ``obj`` equal to ``name`` ignoring case (SCIM names are case-insensitive)."""
    if name in obj:
        return name
    lowered = name.lower()
    for key in obj:
        if key.lower() == lowered:
            return key
    return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _next_version(version: str) -> str:
    number = int(version.removeprefix('W/"').removesuffix('"'))
    return f'W/"{number + 1}"'


def _json_response(
    status: int, body: Any, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, body=msgspec.json.encode(body), content_type=SCIM_JSON, headers=headers
    )


def _error_response(error: ScimError) -> web.Response:
    return _json_response(error.status, error.body(), headers=error.headers)


async def _read_json_object(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise ScimError(400, f"request body is not JSON: {exc}", "invalidSyntax") from None
    if not isinstance(body, dict):
        raise ScimError(400, "request body must be a JSON object", "invalidSyntax")
    return body


def _require_schemas(body: Mapping[str, Any]) -> None:
    key = find_key(body, "schemas")
    schemas = body.get(key) if key else None
    if not isinstance(schemas, list) or not schemas:
        raise ScimError(400, "the 'schemas' attribute is required", "invalidSyntax")


def _client_attributes(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body without the attributes only the server assigns."""
    return {key: value for key, value in body.items() if key.lower() not in READ_ONLY_ATTRIBUTES}


def _int_param(query: Mapping[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ScimError(400, f"{name} must be an integer, got {raw!r}", "invalidValue") from None


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    """The offset an opaque cursor stands for; the empty cursor is the first page."""
    if cursor == "":
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        text = ""
    label, _, number = text.partition(":")
    if label != "offset" or not number.isdigit():
        raise ScimError(400, f"unknown cursor {cursor!r}", "invalidCursor")
    return int(number)


# --------------------------------------------------------------------------- filters

Clause = tuple[str, Any]  # (attribute path, expected value) of one `eq` comparison

_LITERAL = r'"(?:[^"\\]|\\.)*"|true|false|null|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?'
_CLAUSE_RE = re.compile(
    rf"\s*(?P<attr>[A-Za-z][\w$.:-]*)\s+eq\s+(?P<value>{_LITERAL})", re.IGNORECASE
)
_AND_RE = re.compile(r"\s+and\s+", re.IGNORECASE)
_TRAILING_SPACE_RE = re.compile(r"\s*")


def parse_filter(text: str) -> list[Clause]:
    """Parse ``ATTR eq VALUE [and ATTR eq VALUE]...``; anything else is ``invalidFilter``."""
    clauses: list[Clause] = []
    position = 0
    while True:
        clause = _CLAUSE_RE.match(text, position)
        if clause is None:
            raise _invalid_filter(text)
        clauses.append((clause["attr"], _decode_literal(clause["value"], text)))
        position = clause.end()
        if _TRAILING_SPACE_RE.fullmatch(text, position):
            return clauses
        conjunction = _AND_RE.match(text, position)
        if conjunction is None:
            raise _invalid_filter(text)
        position = conjunction.end()


def _decode_literal(raw: str, text: str) -> Any:
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise _invalid_filter(text) from None


def _invalid_filter(text: str) -> ScimError:
    return ScimError(400, f"unsupported or malformed filter: {text!r}", "invalidFilter")


def matches_filter(
    obj: Mapping[str, Any], clauses: list[Clause], core_schema: str | None = None, prefix: str = ""
) -> bool:
    """Whether ``obj`` satisfies every clause.

    ``prefix`` names the multi-valued attribute ``obj`` is an element of (for value
    filters such as ``emails[value eq "x"]``), so case rules see the full path.
    """
    return all(
        _clause_matches(obj, attr, expected, core_schema, prefix) for attr, expected in clauses
    )


def _clause_matches(
    obj: Mapping[str, Any], attr: str, expected: Any, core_schema: str | None, prefix: str
) -> bool:
    root, path = _split_schema(obj, attr, core_schema)
    if root is None:
        return False
    ignore_case = f"{prefix}{path}".lower() in CASE_INSENSITIVE_ATTRIBUTES
    return any(_equal(actual, expected, ignore_case) for actual in _values_at(root, path))


def _split_schema(
    obj: Mapping[str, Any], attr: str, core_schema: str | None
) -> tuple[Mapping[str, Any] | None, str]:
    """Resolve an optional schema URN prefix: (object holding the attribute, dotted path)."""
    if not attr.lower().startswith("urn:"):
        return obj, attr
    urn, _, path = attr.rpartition(":")
    if core_schema is not None and urn.lower() == core_schema.lower():
        return obj, path
    key = find_key(obj, urn)
    extension = obj.get(key) if key else None
    return (extension if isinstance(extension, dict) else None), path


def _values_at(obj: Mapping[str, Any], dotted: str) -> list[Any]:
    """Every value at a dotted path; multi-valued attributes contribute each element."""
    current: list[Any] = [obj]
    for part in dotted.split("."):
        found: list[Any] = []
        for item in current:
            key = find_key(item, part) if isinstance(item, dict) else None
            if key is not None:
                value = item[key]
                found.extend(value if isinstance(value, list) else [value])
        current = found
    # Comparing a multi-valued complex attribute itself compares its "value" sub-attribute.
    return [item.get("value") if isinstance(item, dict) else item for item in current]


def _equal(actual: Any, expected: Any, ignore_case: bool) -> bool:
    if isinstance(actual, str) and isinstance(expected, str):
        return actual.casefold() == expected.casefold() if ignore_case else actual == expected
    # Keep JSON's true from equalling 1.
    return isinstance(actual, bool) == isinstance(expected, bool) and actual == expected


# --------------------------------------------------------------------------- PATCH


@dataclass(frozen=True)
class PatchPath:
    """A parsed PATCH ``path`` (RFC 7644 section 3.5.2)."""

    urn: str | None  # extension schema holding the attribute; None for the core schema
    attr: str | None  # None when the path names a whole extension object
    value_filter: list[Clause] | None  # from attr[...]
    sub: str | None  # from attr.sub or attr[...].sub


_STRING = r'"(?:[^"\\]|\\.)*"'
_PATH_RE = re.compile(
    r"(?P<attr>[A-Za-z][\w$-]*)"
    rf"(?:\[(?P<filter>(?:{_STRING}|[^\]\"])*)\])?"
    r"(?:\.(?P<sub>[A-Za-z][\w$-]*))?"
)


_PLAIN_NAME = re.compile(r"[A-Za-z][\w$-]*")


def parse_patch_path(path: str, resource: Mapping[str, Any], kind: ResourceKind) -> PatchPath:
    urn: str | None = None
    if path.lower().startswith("urn:"):
        if path.lower() == kind.core_schema.lower():
            raise ScimError(400, f"path {path!r} names no attribute", "invalidPath")
        if _is_extension_urn(path, resource, kind):
            return PatchPath(urn=path, attr=None, value_filter=None, sub=None)
        # The URN is everything up to the last colon before the attribute name.
        cut = path.split("[", 1)[0].rfind(":")
        urn, path = path[:cut], path[cut + 1 :]
        if urn.lower() == kind.core_schema.lower():
            urn = None
    match = _PATH_RE.fullmatch(path)
    if match is None:
        raise ScimError(400, f"cannot parse path {path!r}", "invalidPath")
    value_filter = None
    if match["filter"] is not None:
        try:
            value_filter = parse_filter(match["filter"])
        except ScimError:
            raise ScimError(400, f"unsupported value filter in {path!r}", "invalidPath") from None
    return PatchPath(urn=urn, attr=match["attr"], value_filter=value_filter, sub=match["sub"])


def _is_extension_urn(urn: str, resource: Mapping[str, Any], kind: ResourceKind) -> bool:
    """Whether ``urn`` is a schema extension of ``resource`` rather than ``urn:...:attr``."""
    known = {ENTERPRISE_USER_SCHEMA.lower()} if kind is USER else set()
    schemas = resource.get(find_key(resource, "schemas") or "schemas")
    if isinstance(schemas, list):
        known.update(schema.lower() for schema in schemas if isinstance(schema, str))
    known.update(key.lower() for key in resource if key.lower().startswith("urn:"))
    return urn.lower() in known


def apply_patch(
    resource: Mapping[str, Any], body: Mapping[str, Any], kind: ResourceKind
) -> dict[str, Any]:
    """Return a patched deep copy of ``resource``.

    Raises :class:`ScimError` on the first bad operation, so nothing is applied.
    """
    schemas = body.get(find_key(body, "schemas") or "schemas")
    if not isinstance(schemas, list) or PATCH_OP_SCHEMA not in schemas:
        raise ScimError(400, f"schemas must contain {PATCH_OP_SCHEMA}", "invalidSyntax")
    operations = body.get(find_key(body, "Operations") or "Operations")
    if not isinstance(operations, list) or not operations:
        raise ScimError(400, "Operations must be a non-empty array", "invalidSyntax")
    # copy on write: only the attributes the operations touch are copied, so `resource` stays as it
    # was; a list under a plain path (`members`) is not copied at all, because add, replace and
    # remove there build a new list and leave its values alone (a PATCH adding 100 members to a
    # group of 100k costs a set of ids, not 100k dict copies)
    patched = dict(resource)
    copied: set[str] = set()
    for operation in operations:
        replaces_list = _replaces_list(patched, operation)
        if replaces_list is None:
            _LAST_BUILT.clear()  # this operation may change lists in place: their identities may go stale
        for key in _touched_keys(patched, operation):
            if key not in copied and key in patched and key != replaces_list:
                patched[key] = _copy_attribute(patched[key])
                copied.add(key)
        _apply_operation(patched, operation, kind)
    return patched


def _replaces_list(resource: Mapping[str, Any], operation: Any) -> str | None:
    """The key of a list attribute the operation names by a plain path (no filter, sub-attribute or
    URN): such an operation puts a new list in its place and mutates none of the old list's values."""
    path = operation.get(find_key(operation, "path") or "path") if isinstance(operation, dict) else None
    if not isinstance(path, str) or not _PLAIN_NAME.fullmatch(path):
        return None
    key = find_key(resource, path)
    return key if key is not None and isinstance(resource[key], list) else None


def _touched_keys(resource: Mapping[str, Any], operation: Any) -> set[str]:
    """Top-level keys an operation may change (all of them when that cannot be told)."""
    if not isinstance(operation, dict):
        return set()
    path = operation.get(find_key(operation, "path") or "path")
    if not isinstance(path, str) or not path:
        value = operation.get(find_key(operation, "value") or "value")
        return set(resource) | (set(value) if isinstance(value, dict) else set())
    if path.lower().startswith("urn:"):
        return set(resource)  # extension paths: copy everything, they are small
    head = re.split(r"[.\[]", path, maxsplit=1)[0]
    return {key for key in resource if key.lower() == head.lower()} | {"schemas"}


def _copy_attribute(value: Any) -> Any:
    """A copy deep enough for PATCH: lists of flat dicts (members) get a copy of each dict."""
    if isinstance(value, list) and all(isinstance(v, dict) and not any(
            isinstance(x, dict | list) for x in v.values()) for v in value):
        return [dict(v) for v in value]
    return copy.deepcopy(value)


def _apply_operation(resource: dict[str, Any], operation: Any, kind: ResourceKind) -> None:
    if not isinstance(operation, dict):
        raise ScimError(400, "each operation must be an object", "invalidSyntax")
    fields = {key.lower(): value for key, value in operation.items()}
    op = fields.get("op")
    if not isinstance(op, str) or op.lower() not in ("add", "replace", "remove"):
        raise ScimError(400, f"unknown op {op!r}", "invalidSyntax")
    op = op.lower()
    path = fields.get("path")
    value = fields.get("value")
    if op != "remove" and "value" not in fields:
        raise ScimError(400, f"{op} needs a value", "invalidValue")
    if path is None or path == "":
        _apply_without_path(resource, op, value, kind)
    elif isinstance(path, str):
        _apply_at_path(resource, op, path, value, kind)
    else:
        raise ScimError(400, "path must be a string", "invalidPath")


def _apply_without_path(resource: dict[str, Any], op: str, value: Any, kind: ResourceKind) -> None:
    """No path: the value is an object of attributes, each applied as if it were the path."""
    if op == "remove":
        raise ScimError(400, "remove needs a path", "noTarget")
    if not isinstance(value, dict):
        raise ScimError(400, f"{op} without a path needs an object value", "invalidValue")
    for name, item in value.items():
        _apply_at_path(resource, op, name, item, kind)


def _apply_at_path(
    resource: dict[str, Any], op: str, path: str, value: Any, kind: ResourceKind
) -> None:
    target = parse_patch_path(path, resource, kind)
    if target.urn is None and (target.attr or "").lower() in READ_ONLY_ATTRIBUTES:
        raise ScimError(400, f"{target.attr} is read-only", "mutability")
    if target.attr is None:  # a whole extension object, e.g. {"department": "x"}
        if op != "remove" and not isinstance(value, dict):
            raise ScimError(400, f"{target.urn} needs an object value", "invalidValue")
        _apply_to_attribute(resource, target.urn or "", op, value)
        _sync_extension(resource, target.urn or "")
        return
    container = _extension_container(resource, target.urn, create=op != "remove")
    if container is None:
        return  # removing from an extension the resource does not have
    if target.value_filter is not None:
        _apply_to_matching_values(container, target, op, value)
    elif target.sub is not None:
        _apply_to_sub_attribute(container, target.attr, target.sub, op, value)
    else:
        _apply_to_attribute(container, target.attr, op, value)
    if target.urn is not None:
        _sync_extension(resource, target.urn)


def _extension_container(
    resource: dict[str, Any], urn: str | None, create: bool
) -> dict[str, Any] | None:
    """The object attributes of ``urn`` live in (the resource itself for the core schema)."""
    if urn is None:
        return resource
    key = find_key(resource, urn)
    if key is None:
        if not create:
            return None
        key = urn
        resource[key] = {}
    container = resource[key]
    if not isinstance(container, dict):
        raise ScimError(400, f"{urn} is not an object", "invalidPath")
    return container


def _sync_extension(resource: dict[str, Any], urn: str) -> None:
    """Drop an emptied extension object and keep ``schemas`` listing the extensions present."""
    key = find_key(resource, urn)
    if key is not None and resource[key] in ({}, None):
        del resource[key]
        key = None
    schemas_key = find_key(resource, "schemas") or "schemas"
    schemas = resource.setdefault(schemas_key, [])
    if not isinstance(schemas, list):
        return
    listed = [schema for schema in schemas if str(schema).lower() == urn.lower()]
    if key is not None and not listed:
        schemas.append(urn)
    if key is None:
        for schema in listed:
            schemas.remove(schema)


def _replacing_complex_whole(operations: Any) -> Any:
    """The operations with each replace of a complex attribute by an object preceded by its removal."""
    if not isinstance(operations, list):
        return operations
    out = []
    for operation in operations:
        if (isinstance(operation, dict) and str(operation.get("op", "")).lower() == "replace"
                and isinstance(operation.get("path"), str) and "." not in operation["path"].rpartition(":")[2]
                and "[" not in operation["path"] and isinstance(operation.get("value"), dict)):
            out.append({"op": "remove", "path": operation["path"]})
        out.append(operation)
    return out


def _apply_to_attribute(container: dict[str, Any], name: str, op: str, value: Any) -> None:
    """add/replace/remove on ``container[name]`` (RFC 7644 sections 3.5.2.1-3.5.2.3)."""
    key = find_key(container, name) or name
    current = container.get(key)
    if op == "remove":
        if value is not None and isinstance(current, list):
            # Common client extension: remove only the listed values of a multi-valued attribute.
            listed = {
                _identity(item, key) for item in (value if isinstance(value, list) else [value])
            }
            _set_or_drop(container, key, [i for i in current if _identity(i, key) not in listed])
        else:
            container.pop(key, None)
        return
    if value is None:  # null is "unassigned" (RFC 7643 section 2.5)
        container.pop(key, None)
    elif op == "add" and (isinstance(current, list) or isinstance(value, list)):
        existing = current if isinstance(current, list) else []
        added = value if isinstance(value, list) else [value]
        _set_or_drop(container, key, _append_new(existing, added, key))
    elif isinstance(current, dict) and isinstance(value, dict):
        _merge(current, value)  # complex attribute: sub-attributes not given stay unchanged
    elif isinstance(value, list):
        _set_or_drop(container, key, value)
    else:
        container[key] = value


def _apply_to_sub_attribute(
    container: dict[str, Any], name: str, sub: str, op: str, value: Any
) -> None:
    key = find_key(container, name)
    parent = container.get(key) if key else None
    if op == "remove":
        for item in parent if isinstance(parent, list) else [parent]:
            if isinstance(item, dict):
                item.pop(find_key(item, sub) or sub, None)
        return
    if isinstance(parent, list):
        raise ScimError(400, f"{name}.{sub}: use a value filter, {name}[...].{sub}", "invalidPath")
    if parent is None:
        parent = container[key or name] = {}
    if not isinstance(parent, dict):
        raise ScimError(400, f"{name} is not a complex attribute", "invalidPath")
    _apply_to_attribute(parent, sub, op, value)


def _apply_to_matching_values(
    container: dict[str, Any], target: PatchPath, op: str, value: Any
) -> None:
    """Operations on ``attr[filter]`` and ``attr[filter].sub``."""
    assert target.attr is not None and target.value_filter is not None
    key = find_key(container, target.attr)
    items = container.get(key) if key else None
    if not isinstance(items, list):
        items = []
    prefix = f"{target.attr}."
    hits = [
        index
        for index, item in enumerate(items)
        if isinstance(item, dict) and matches_filter(item, target.value_filter, prefix=prefix)
    ]
    if op == "remove":
        if key is not None and target.sub is None:
            kept = [item for index, item in enumerate(items) if index not in hits]
            _set_or_drop(container, key, kept)
        elif target.sub is not None:
            for index in hits:
                items[index].pop(find_key(items[index], target.sub) or target.sub, None)
        return
    if not hits:
        raise ScimError(400, f"no value of {target.attr} matches the filter", "noTarget")
    for index in hits:
        if target.sub is not None:
            _apply_to_attribute(items[index], target.sub, op, value)
        elif not isinstance(value, dict):
            raise ScimError(400, f"{op} on {target.attr}[...] needs an object", "invalidValue")
        elif op == "replace":
            items[index] = copy.deepcopy(value)
        else:
            _merge(items[index], value)


def _merge(target: dict[str, Any], values: Mapping[str, Any]) -> None:
    for name, value in values.items():
        key = find_key(target, name) or name
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value


def _set_or_drop(container: dict[str, Any], key: str, items: list[Any]) -> None:
    """An empty multi-valued attribute is unassigned (RFC 7643 section 2.4)."""
    if items:
        container[key] = items
    else:
        container.pop(key, None)


def _identity(item: Any, attribute: str) -> bytes:
    """What makes two values of a multi-valued attribute the same value.

    Group members are the same member when their ``value`` is; other values when equal.
    """
    if attribute.lower() == "members" and isinstance(item, dict):
        value = item.get("value")
        if isinstance(value, str):
            return value.encode()  # the common case, without an encode per member
        item = value
    return msgspec.json.encode(item, order="sorted")


def _append_new(existing: list[Any], added: list[Any], attribute: str) -> list[Any]:
    """``existing`` followed by the values of ``added`` it does not hold yet (RFC 7644 3.5.2.1)."""
    result = list(existing)
    present = _identities_of(existing, attribute)
    for item in added:
        identity = _identity(item, attribute)
        if identity not in present:
            result.append(item)
            present.add(identity)
    _LAST_BUILT[id(result)] = (result, attribute.lower(), present)
    while len(_LAST_BUILT) > _LAST_BUILT_KEPT:
        del _LAST_BUILT[next(iter(_LAST_BUILT))]
    return result


# The identities of the lists _append_new built last, so that a chain of PATCH adds to one large
# group costs each add its own values, not a pass over every member. Plain-path operations on a list
# build a new list; any other operation may change a list in place later in the same PATCH, so it
# empties this cache (a stored list is never changed in place: PATCH copies first). The entry holds
# the list itself, so an id cannot be reused while its entry lives.
_LAST_BUILT: dict[int, tuple[list[Any], str, set[bytes]]] = {}
_LAST_BUILT_KEPT = 16


def _identities_of(items: list[Any], attribute: str) -> set[bytes]:
    """A set of the identities of ``items`` that the caller may change."""
    known = _LAST_BUILT.pop(id(items), None)
    if known is not None and known[0] is items and known[1] == attribute.lower():
        return known[2]
    return {_identity(item, attribute) for item in items}


def _resolve_bulk_ids(value: Any, created: Mapping[str, str]) -> Any:
    """Replace `bulkId:x` references (in a path or anywhere in data) by the ids created so far; a
    reference to no resource created so far is a 409 (RFC 7644 3.7.2)."""
    if isinstance(value, str):
        if "bulkId:" not in value:
            return value

        def created_id(match: re.Match[str]) -> str:
            if match.group(1) not in created:
                raise ScimError(409, f"no resource was created with bulkId {match.group(1)}", "invalidValue")
            return created[match.group(1)]

        return re.sub(r"bulkId:([^/\s\"]+)", created_id, value)
    if isinstance(value, list):
        return [_resolve_bulk_ids(v, created) for v in value]
    if isinstance(value, dict):
        return {k: _resolve_bulk_ids(v, created) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------- server


class MemoryScimServer:
    """A SCIM 2.0 service provider keeping Users and Groups in dicts."""

    def __init__(
        self,
        *,
        bearer_token: str | None = None,
        faults: Faults | None = None,
        patch_supported: bool = True,
        filter_supported: bool = True,
        cursor_paging: bool = False,
        max_page_size: int = 1000,
        patch_returns_resource: bool = True,
        create_returns_body: bool = True,
        list_omits_members: bool = False,
        bulk_max_operations: int = 0,
        bulk_max_payload: int = 1_048_576,
        bulk_resolves_references: bool = True,
        unique_group_names: bool = True,
        pages_by_number: bool = False,
        replace_complex_whole: bool = False,
        create_ignores_members: bool = False,
        case_exact_filters: bool = False,
        patch_refusals: dict[str, tuple[int, str | None]] | None = None,
        put_ignores_members: bool = False,
    ) -> None:
        self.bearer_token = bearer_token
        self.faults = faults if faults is not None else Faults()  # (seeds the faults' random stream)
        self.patch_supported = patch_supported
        self.filter_supported = filter_supported
        self.cursor_paging = cursor_paging
        self.max_page_size = max_page_size
        self.patch_returns_resource = patch_returns_resource
        self.create_returns_body = create_returns_body  # False: 201 with only a Location header
        self.list_omits_members = list_omits_members  # True: group listings leave `members` out
        self.bulk_max_operations = bulk_max_operations  # 0: no Bulk endpoint (RFC 7644 3.7)
        self.bulk_max_payload = bulk_max_payload
        # False: a quirk of some servers: `bulkId:x` in an operation's data is stored as given
        self.bulk_resolves_references = bulk_resolves_references
        self.unique_group_names = unique_group_names  # False: two groups may share a displayName
        # True: a quirk of some servers: they list page number (startIndex-1) // count, so a page
        # starts at a multiple of count whatever startIndex asked for
        self.pages_by_number = pages_by_number
        # True: a quirk of some servers (against RFC 7644 3.5.2.3): a replace of a complex attribute
        # (`name`) replaces it whole, dropping the sub-attributes it does not give
        self.replace_complex_whole = replace_complex_whole
        # True: a quirk of some servers (django-scim2): a group POST stores no members and answers
        # `members: []`; members come only by PATCH (RFC 7644 3.3 lets a server ignore POSTed content)
        self.create_ignores_members = create_ignores_members
        # True: a quirk of some servers (SCIMMY): `userName eq "x"` compares case-exactly, though
        # userName is caseExact=false (RFC 7643 4.1.1, RFC 7644 3.4.2.2); uniqueness still ignores case
        self.case_exact_filters = case_exact_filters
        # a quirk of some servers (django-scim2): a PATCH with an operation whose path starts with a key
        # of this (`displayName`, `members[`) is answered its (status, scimType), say (501, None) or
        # (400, "invalidPath"), though PATCH is advertised
        self.patch_refusals = patch_refusals or {}
        self.put_ignores_members = put_ignores_members  # True: a group PUT keeps the members it had (django-scim2)
        self.bulk_bodies: list[dict[str, Any]] | None = None  # a list: keep every Bulk request's body
        self.users: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.request_log: list[tuple[str, str]] = []
        self.request_times: list[float] = []  # time.monotonic() of each request, in order
        self._cap_bucket: tuple[float, float] = (0.0, 0.0)  # (tokens, last refill) of Faults.rate_cap
        self.base_url: str | None = None
        self._list_requests: collections.Counter[str] = collections.Counter()
        # kind name -> normalised userName/displayName -> id
        self._unique_index: dict[str, dict[str, str]] = {USER.name: {}, GROUP.name: {}}
        self._runner: web.AppRunner | None = None

    # ---------------------------------------------------------------- public API

    def counts(self) -> collections.Counter[str]:
        """Requests received so far, by HTTP method."""
        return collections.Counter(method for method, _ in self.request_log)

    def add_user(self, resource: dict[str, Any]) -> dict[str, Any]:
        """Store a User without HTTP (same rules as POST); return the stored resource."""
        return self._seed(USER, resource)

    def add_group(self, resource: dict[str, Any]) -> dict[str, Any]:
        """Store a Group without HTTP (same rules as POST); return the stored resource."""
        return self._seed(GROUP, resource)

    def make_app(self) -> web.Application:
        @web.middleware
        async def scim_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
            return await self._around_handler(request, handler)

        app = web.Application(middlewares=[scim_middleware])
        app.router.add_get(f"{BASE_PATH}/ServiceProviderConfig", self._service_provider_config)
        app.router.add_post(f"{BASE_PATH}/Bulk", self._bulk)
        for kind in (USER, GROUP):
            self._add_routes(app, kind)
        return app

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._faults = faults
        self._random = random.Random(faults.seed)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 picks a free port); return the base URL ending in /v2."""
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_port = runner.addresses[0][1]
        url_host = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{url_host}:{bound_port}{BASE_PATH}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---------------------------------------------------------------- plumbing

    def _add_routes(self, app: web.Application, kind: ResourceKind) -> None:
        collection = f"{BASE_PATH}/{kind.endpoint}"
        one = f"{collection}/{{id}}"

        async def list_(request: web.Request) -> web.Response:
            return self._list(request.query, kind)

        async def search(request: web.Request) -> web.Response:
            # RFC 7644 3.4.3: the query of a GET, as a SearchRequest body
            body = await _read_json_object(request)
            query = {key: str(body[key]) for key in ("filter", "startIndex", "count", "cursor") if key in body}
            return self._list(query, kind)

        async def create(request: web.Request) -> web.Response:
            return self._create(request, kind, await _read_json_object(request))

        async def get(request: web.Request) -> web.Response:
            return _json_response(200, self._existing(kind, request.match_info["id"]))

        async def replace(request: web.Request) -> web.Response:
            return self._replace(request, kind, await _read_json_object(request))

        async def patch(request: web.Request) -> web.Response:
            if not self.patch_supported:
                raise ScimError(501, "PATCH is not supported by this server")
            body = await _read_json_object(request)
            for operation in body.get("Operations") or []:
                path = operation.get("path") if isinstance(operation, dict) else None
                for prefix, (status, scim_type) in self.patch_refusals.items():
                    if isinstance(path, str) and path.startswith(prefix):
                        raise ScimError(status, f"PATCH of {path} is not supported", scim_type)
            return self._patch(request, kind, body)

        async def delete(request: web.Request) -> web.Response:
            self._delete(kind, request.match_info["id"])
            return web.Response(status=204)

        app.router.add_get(collection, list_)
        app.router.add_post(f"{collection}/.search", search)
        app.router.add_post(collection, create)
        app.router.add_get(one, get)
        app.router.add_put(one, replace)
        app.router.add_patch(one, patch)
        app.router.add_delete(one, delete)

    async def _around_handler(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Log, inject faults, check authentication, then run the handler."""
        if request.path.startswith("/_admin/"):  # control routes a test harness may add
            return await handler(request)
        self.request_log.append((request.method, request.path))
        self.request_times.append(time.monotonic())
        try:
            if self.faults.latency > 0:
                await asyncio.sleep(self.faults.latency)
            if self._roll(self.faults.rate_reset):
                return self._drop_connection(request)
            if self.faults.rate_cap and not self._within_rate_cap(self.faults.rate_cap):
                raise ScimError(429, "rate cap exceeded", headers={"Retry-After": self.faults.retry_after})
            if self.faults.script and (status := self.faults.script.pop(0)):
                headers = {"Retry-After": self.faults.retry_after} if status in (429, 503) else None
                raise ScimError(status, "scripted fault", headers=headers)
            self._raise_injected_error()
            self._check_authorization(request)
            if request.method in ("POST", "PUT", "PATCH") and not request.path.endswith("/Bulk"):
                self._refuse_values((await request.read()).decode("utf-8", "replace"),
                                    request.headers.get("Authorization", ""))
            response = await handler(request)
            if request.method in ("POST", "PUT", "PATCH", "DELETE") and self._roll(self.faults.rate_reset_after_write):
                return self._drop_connection(request)
            return response
        except ScimError as error:
            return _error_response(error)
        except web.HTTPException as exc:  # unknown route (404), wrong method (405)
            headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            return _error_response(ScimError(exc.status, exc.reason, headers=headers))

    def _within_rate_cap(self, rate: float) -> bool:
        """Token bucket of `rate` per second with a burst of one second's worth."""
        now = time.monotonic()
        tokens, stamp = self._cap_bucket
        tokens = min(rate, tokens + (now - stamp) * rate) if stamp else rate
        allowed = tokens >= 1
        self._cap_bucket = (tokens - 1 if allowed else tokens, now)
        return allowed

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self._random.random() < rate

    @staticmethod
    def _drop_connection(request: web.Request) -> web.Response:
        """Abort the TCP connection; aiohttp then drops the returned response quietly."""
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)

    def _raise_injected_error(self) -> None:
        retry_after = {"Retry-After": self.faults.retry_after}
        if self._roll(self.faults.rate_429):
            raise ScimError(429, "injected fault: too many requests", headers=retry_after)
        if self._roll(self.faults.rate_503):
            raise ScimError(503, "injected fault: service unavailable", headers=retry_after)
        if self._roll(self.faults.rate_500):
            raise ScimError(500, "injected fault: internal server error")

    def _check_authorization(self, request: web.Request) -> None:
        if self.bearer_token is None:
            return
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or credentials.strip() != self.bearer_token:
            raise ScimError(
                401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
            )

    def _store(self, kind: ResourceKind) -> dict[str, dict[str, Any]]:
        return self.users if kind is USER else self.groups

    def _base_for(self, request: web.Request) -> str:
        return self.base_url or f"{request.scheme}://{request.host}{BASE_PATH}"

    def _existing(self, kind: ResourceKind, resource_id: str) -> dict[str, Any]:
        resource = self._store(kind).get(resource_id)
        if resource is None:
            raise ScimError(404, f"{kind.name} {resource_id} not found")
        return resource

    # ---------------------------------------------------------------- validation

    def _refuse_values(self, text: str, authorization: str = "") -> None:
        """Faults.refuse_values: a write containing one of them is refused with 400 invalidValue."""
        if self.faults.refuse_values and any(value in text for value in self.faults.refuse_values):
            echo = f" (request had Authorization: {authorization})" if self.faults.echo_authorization else ""
            raise ScimError(400, "value refused by this server" + echo, scim_type="invalidValue")

    def _unique_token(self, kind: ResourceKind, resource: Mapping[str, Any]) -> str | None:
        key = find_key(resource, kind.unique_attribute)
        value = resource.get(key) if key else None
        if not isinstance(value, str):
            return None
        return value if kind.unique_case_exact else value.casefold()

    def _validate(
        self, kind: ResourceKind, resource: Mapping[str, Any], own_id: str | None
    ) -> None:
        """Required ``userName``/``displayName`` present and unique (else 400 / 409)."""
        token = self._unique_token(kind, resource)
        if token is None or not token.strip():
            raise ScimError(400, f"{kind.unique_attribute} is required", "invalidValue")
        holder = self._holder_of(kind, token) if kind is USER or self.unique_group_names else None
        if holder is not None and holder != own_id:
            taken = resource[find_key(resource, kind.unique_attribute) or kind.unique_attribute]
            raise ScimError(
                409, f"{kind.unique_attribute} {taken!r} is already taken", "uniqueness"
            )

    def _holder_of(self, kind: ResourceKind, token: str) -> str | None:
        """The id of the stored resource whose userName/displayName normalises to ``token``."""
        holder = self._unique_index[kind.name].get(token)
        store = self._store(kind)
        if holder in store and self._unique_token(kind, store[holder]) == token:
            return holder
        return None

    def _save(self, kind: ResourceKind, resource: dict[str, Any]) -> None:
        store = self._store(kind)
        previous = store.get(resource["id"])
        if previous is not None:
            self._unindex(kind, previous)
        store[resource["id"]] = resource
        token = self._unique_token(kind, resource)
        if token is not None:
            self._unique_index[kind.name][token] = resource["id"]

    def _unindex(self, kind: ResourceKind, resource: Mapping[str, Any]) -> None:
        index = self._unique_index[kind.name]
        token = self._unique_token(kind, resource)
        if token is not None and index.get(token) == resource["id"]:
            del index[token]

    # ---------------------------------------------------------------- operations

    def _seed(self, kind: ResourceKind, resource: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(resource)
        if find_key(body, "schemas") is None:
            body["schemas"] = [kind.core_schema]
        return self._insert(kind, body, self.base_url or BASE_PATH)

    def _insert(self, kind: ResourceKind, body: dict[str, Any], base: str) -> dict[str, Any]:
        _require_schemas(body)
        attributes = _client_attributes(body)
        self._validate(kind, attributes, own_id=None)
        resource_id = uuid.uuid4().hex
        now = _now()
        meta = {
            "resourceType": kind.name,
            "created": now,
            "lastModified": now,
            "location": f"{base}/{kind.endpoint}/{resource_id}",
            "version": 'W/"1"',
        }
        resource = {"id": resource_id, **attributes, "meta": meta}
        self._save(kind, resource)
        return resource

    def _create(
        self, request: web.Request, kind: ResourceKind, body: dict[str, Any]
    ) -> web.Response:
        if self.create_ignores_members and kind is GROUP:
            body = {key: value for key, value in body.items() if key != "members"}
        stored = self._insert(kind, body, self._base_for(request))
        if self.create_ignores_members and kind is GROUP:
            stored = {**stored, "members": []}
        if not self.create_returns_body:
            return web.Response(status=201, headers={"Location": stored["meta"]["location"]})
        return _json_response(201, stored, headers={"Location": stored["meta"]["location"]})

    def _replace(
        self, request: web.Request, kind: ResourceKind, body: dict[str, Any]
    ) -> web.Response:
        old = self._existing(kind, request.match_info["id"])
        _require_schemas(body)
        attributes = _client_attributes(body)
        if self.put_ignores_members and kind is GROUP:
            attributes = {k: v for k, v in attributes.items() if k != "members"}
            if "members" in old:
                attributes["members"] = old["members"]
        self._validate(kind, attributes, own_id=old["id"])
        resource = {"id": old["id"], **attributes, "meta": self._touched(old["meta"])}
        self._save(kind, resource)
        return _json_response(200, resource)

    def _patch(
        self, request: web.Request, kind: ResourceKind, body: dict[str, Any]
    ) -> web.Response:
        old = self._existing(kind, request.match_info["id"])
        if self.replace_complex_whole:
            body = {**body, "Operations": _replacing_complex_whole(body.get("Operations"))}
        patched = apply_patch(old, body, kind)
        if patched != old:
            self._validate(kind, patched, own_id=old["id"])
            patched["meta"] = self._touched(old["meta"])
            self._save(kind, patched)
        else:
            patched = old  # nothing changed: keep lastModified and version
        if self.patch_returns_resource:
            return _json_response(200, patched)
        return web.Response(status=204)

    def _delete(self, kind: ResourceKind, resource_id: str) -> None:
        resource = self._existing(kind, resource_id)
        del self._store(kind)[resource_id]
        self._unindex(kind, resource)

    @staticmethod
    def _touched(meta: Mapping[str, Any]) -> dict[str, Any]:
        return {**meta, "lastModified": _now(), "version": _next_version(meta["version"])}

    # ---------------------------------------------------------------- queries

    def _list(self, query: Mapping[str, str], kind: ResourceKind) -> web.Response:
        self._list_requests[kind.name] += 1
        if self._list_requests[kind.name] == self.faults.fail_list_page:
            raise ScimError(500, f"injected fault: list request {self.faults.fail_list_page}")
        matched = self._select(kind, query.get("filter"))
        count = self._page_size(query)
        if self.cursor_paging and "cursor" in query:
            return self._cursor_page(matched, query["cursor"], count)
        start_index = max(_int_param(query, "startIndex", 1), 1)
        if self.pages_by_number and count:
            start_index = (start_index - 1) // count * count + 1
        page = matched[start_index - 1 : start_index - 1 + count]
        if self.list_omits_members and kind is GROUP:
            page = [{k: v for k, v in item.items() if k != "members"} for item in page]
        return _json_response(
            200,
            {
                "schemas": [LIST_RESPONSE_SCHEMA],
                "totalResults": self._reported_total(len(matched)),
                "startIndex": start_index,
                "itemsPerPage": len(page),
                "Resources": page,
            },
        )

    def _cursor_page(self, matched: list[dict[str, Any]], cursor: str, count: int) -> web.Response:
        """One page of RFC 9865 cursor paging; ``nextCursor`` only when more remain."""
        offset = _decode_cursor(cursor)
        page = matched[offset : offset + count]
        body: dict[str, Any] = {
            "schemas": [LIST_RESPONSE_SCHEMA],
            "totalResults": self._reported_total(len(matched)),
            "itemsPerPage": len(page),
            "Resources": page,
        }
        if page and offset + len(page) < len(matched):
            body["nextCursor"] = _encode_cursor(offset + len(page))
        return _json_response(200, body)

    def _page_size(self, query: Mapping[str, str]) -> int:
        count = min(_int_param(query, "count", self.max_page_size), self.max_page_size)
        if self.faults.page_cap is not None:
            count = min(count, self.faults.page_cap)
        return max(count, 0)

    def _reported_total(self, total: int) -> int:
        if self.faults.total_cap is not None:
            total = min(total, self.faults.total_cap)
        return total + 5 if self.faults.truncate_total else total

    def _select(self, kind: ResourceKind, filter_text: str | None) -> list[dict[str, Any]]:
        store = self._store(kind)
        if filter_text is None:
            return list(store.values())
        if not self.filter_supported:
            raise ScimError(400, "filtering is not supported", "invalidFilter")
        clauses = parse_filter(filter_text)
        candidates = self._indexed_candidates(kind, clauses)
        if candidates is None:
            candidates = list(store.values())
        found = [r for r in candidates if matches_filter(r, clauses, core_schema=kind.core_schema)]
        if self.case_exact_filters:
            found = [r for r in found if all(r.get(attr) == expected for attr, expected in clauses if attr in r)]
        return found

    def _indexed_candidates(
        self, kind: ResourceKind, clauses: list[Clause]
    ) -> list[dict[str, Any]] | None:
        """For ``userName eq "x"`` / ``displayName eq "x"``: the one candidate from the index.

        Keeps a replicator's per-resource lookups O(1) in benchmarks; None means scan.
        """
        if len(clauses) != 1:
            return None
        attr, expected = clauses[0]
        if attr.lower() != kind.unique_attribute.lower() or not isinstance(expected, str):
            return None
        token = expected if kind.unique_case_exact else expected.casefold()
        holder = self._holder_of(kind, token)
        return [self._store(kind)[holder]] if holder is not None else []

    # ---------------------------------------------------------------- bulk (RFC 7644 3.7)

    async def _bulk(self, request: web.Request) -> web.Response:
        if not self.bulk_max_operations:
            raise ScimError(501, "Bulk is not supported by this server")
        raw = await request.read()
        if len(raw) > self.bulk_max_payload:
            raise ScimError(413, f"payload of {len(raw)} bytes over maxPayloadSize {self.bulk_max_payload}")
        body = await _read_json_object(request)
        if self.bulk_bodies is not None:
            self.bulk_bodies.append(body)
        operations = body.get("Operations")
        if not isinstance(operations, list):
            raise ScimError(400, "Operations must be an array", "invalidSyntax")
        if len(operations) > self.bulk_max_operations:
            raise ScimError(413, f"{len(operations)} operations over maxOperations {self.bulk_max_operations}")
        fail_on_errors = body.get("failOnErrors")
        base = self._base_for(request)
        created: dict[str, str] = {}  # bulkId -> id
        results, errors = [], 0
        for operation in operations:
            if isinstance(fail_on_errors, int) and fail_on_errors > 0 and errors >= fail_on_errors:
                break
            result = self._bulk_operation(operation, created, base)
            if int(result["status"]) >= 400:
                errors += 1
            results.append(result)
        return _json_response(200, {"schemas": [BULK_RESPONSE_SCHEMA], "Operations": results})

    def _bulk_operation(self, operation: Any, created: dict[str, str], base: str) -> dict[str, Any]:
        if not isinstance(operation, dict):
            return {"status": "400", "response": ScimError(400, "not an operation", "invalidSyntax").body()}
        method = str(operation.get("method", "")).upper()
        bulk_id = operation.get("bulkId")
        result: dict[str, Any] = {"method": method}
        if bulk_id is not None:
            result["bulkId"] = bulk_id
        try:
            path = _resolve_bulk_ids(str(operation.get("path", "")), created)
            data = operation.get("data")
            if self.faults.refuse_values:  # Bulk refuses operation by operation
                self._refuse_values(msgspec.json.encode(data).decode())
            if self.bulk_resolves_references:
                data = _resolve_bulk_ids(data, created)
            segments = [p for p in path.split("/") if p]
            kind = {"Users": USER, "Groups": GROUP}.get(segments[0] if segments else "")
            if kind is None:
                raise ScimError(400, f"unknown path {path!r}", "invalidPath")
            if method == "POST" and len(segments) == 1:
                if not isinstance(data, dict):
                    raise ScimError(400, "data must be an object", "invalidSyntax")
                stored = self._insert(kind, data, base)
                if bulk_id is not None:
                    created[str(bulk_id)] = stored["id"]
                result.update(status="201", location=stored["meta"]["location"], response=stored)
            elif method == "PATCH" and len(segments) == 2:
                if not self.patch_supported:
                    raise ScimError(501, "PATCH is not supported by this server")
                old = self._existing(kind, segments[1])
                patched = apply_patch(old, data, kind)
                if patched != old:
                    self._validate(kind, patched, own_id=old["id"])
                    patched["meta"] = self._touched(old["meta"])
                    self._save(kind, patched)
                result.update(status="200", location=old["meta"]["location"])
            elif method == "DELETE" and len(segments) == 2:
                self._delete(kind, segments[1])
                result.update(status="204")
            else:
                raise ScimError(400, f"unsupported bulk operation {method} {path}", "invalidSyntax")
        except ScimError as error:
            result.update(status=str(error.status), response=error.body())
        return result

    async def _service_provider_config(self, request: web.Request) -> web.Response:
        return _json_response(200, self._config_body(self._base_for(request)))

    def _config_body(self, base: str) -> dict[str, Any]:
        schemes = []
        if self.bearer_token is not None:
            schemes.append(
                {
                    "type": "oauthbearertoken",
                    "name": "OAuth Bearer Token",
                    "description": "Authentication with a bearer token (RFC 6750)",
                    "primary": True,
                }
            )
        config: dict[str, Any] = {
            "schemas": [SERVICE_PROVIDER_CONFIG_SCHEMA],
            "patch": {"supported": self.patch_supported},
            "bulk": {
                "supported": self.bulk_max_operations > 0,
                "maxOperations": self.bulk_max_operations,
                "maxPayloadSize": self.bulk_max_payload if self.bulk_max_operations else 0,
            },
            "filter": {"supported": self.filter_supported, "maxResults": self.max_page_size},
            "changePassword": {"supported": False},
            "sort": {"supported": False},
            "etag": {"supported": False},
            "authenticationSchemes": schemes,
            "meta": {
                "resourceType": "ServiceProviderConfig",
                "location": f"{base}/ServiceProviderConfig",
            },
        }
        if self.cursor_paging:
            config["pagination"] = {
                "cursor": True,
                "index": True,
                "defaultPaginationMethod": "index",
                "defaultPageSize": self.max_page_size,
                "maxPageSize": self.max_page_size,
            }
        return config


@contextlib.asynccontextmanager
async def serve(
    host: str = "127.0.0.1", port: int = 0, **kwargs: Any
) -> AsyncIterator[tuple[MemoryScimServer, str]]:
    """``async with serve(bearer_token="t") as (server, base_url): ...``

    Keyword arguments other than ``host``/``port`` go to :class:`MemoryScimServer`.
    """
    server = MemoryScimServer(**kwargs)
    base_url = await server.start(host, port)
    try:
        yield server, base_url
    finally:
        await server.stop()
