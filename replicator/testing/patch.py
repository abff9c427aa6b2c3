"""The server side of SCIM PATCH (RFC 7644 section 3.5.2): parse an operation's ``path`` and apply
``add``/``replace``/``remove`` with plain, dotted, extension-URN and value-filter paths.

:func:`apply_patch` returns a patched copy and leaves the stored resource as it was; the first bad
operation raises :class:`ScimProblem`, so a PATCH is applied whole or not at all.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from replicator.testing.filter import Clause, matches_filter, parse_filter
from replicator.testing.protocol import (
    ENTERPRISE_USER_SCHEMA,
    PATCH_OP_SCHEMA,
    READ_ONLY_ATTRIBUTES,
    USER,
    ResourceKind,
    ScimProblem,
    find_key,
)


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
            raise ScimProblem(400, f"path {path!r} names no attribute", "invalidPath")
        if _is_extension_urn(path, resource, kind):
            return PatchPath(urn=path, attr=None, value_filter=None, sub=None)
        # The URN is everything up to the last colon before the attribute name.
        cut = path.split("[", 1)[0].rfind(":")
        urn, path = path[:cut], path[cut + 1 :]
        if urn.lower() == kind.core_schema.lower():
            urn = None
    match = _PATH_RE.fullmatch(path)
    if match is None:
        raise ScimProblem(400, f"cannot parse path {path!r}", "invalidPath")
    value_filter = None
    if match["filter"] is not None:
        try:
            value_filter = parse_filter(match["filter"])
        except ScimProblem:
            raise ScimProblem(400, f"unsupported value filter in {path!r}", "invalidPath") from None
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

    Raises :class:`ScimProblem` on the first bad operation, so nothing is applied.
    """
    schemas = body.get(find_key(body, "schemas") or "schemas")
    if not isinstance(schemas, list) or PATCH_OP_SCHEMA not in schemas:
        raise ScimProblem(400, f"schemas must contain {PATCH_OP_SCHEMA}", "invalidSyntax")
    operations = body.get(find_key(body, "Operations") or "Operations")
    if not isinstance(operations, list) or not operations:
        raise ScimProblem(400, "Operations must be a non-empty array", "invalidSyntax")
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
        raise ScimProblem(400, "each operation must be an object", "invalidSyntax")
    fields = {key.lower(): value for key, value in operation.items()}
    op = fields.get("op")
    if not isinstance(op, str) or op.lower() not in ("add", "replace", "remove"):
        raise ScimProblem(400, f"unknown op {op!r}", "invalidSyntax")
    op = op.lower()
    path = fields.get("path")
    value = fields.get("value")
    if op != "remove" and "value" not in fields:
        raise ScimProblem(400, f"{op} needs a value", "invalidValue")
    if path is None or path == "":
        _apply_without_path(resource, op, value, kind)
    elif isinstance(path, str):
        _apply_at_path(resource, op, path, value, kind)
    else:
        raise ScimProblem(400, "path must be a string", "invalidPath")


def _apply_without_path(resource: dict[str, Any], op: str, value: Any, kind: ResourceKind) -> None:
    """No path: the value is an object of attributes, each applied as if it were the path."""
    if op == "remove":
        raise ScimProblem(400, "remove needs a path", "noTarget")
    if not isinstance(value, dict):
        raise ScimProblem(400, f"{op} without a path needs an object value", "invalidValue")
    for name, item in value.items():
        _apply_at_path(resource, op, name, item, kind)


def _apply_at_path(
    resource: dict[str, Any], op: str, path: str, value: Any, kind: ResourceKind
) -> None:
    target = parse_patch_path(path, resource, kind)
    if target.urn is None and (target.attr or "").lower() in READ_ONLY_ATTRIBUTES:
        raise ScimProblem(400, f"{target.attr} is read-only", "mutability")
    if target.attr is None:  # a whole extension object, e.g. {"department": "x"}
        if op != "remove" and not isinstance(value, dict):
            raise ScimProblem(400, f"{target.urn} needs an object value", "invalidValue")
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
        raise ScimProblem(400, f"{urn} is not an object", "invalidPath")
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


def replacing_complex_whole(operations: Any) -> Any:
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
        raise ScimProblem(400, f"{name}.{sub}: use a value filter, {name}[...].{sub}", "invalidPath")
    if parent is None:
        parent = container[key or name] = {}
    if not isinstance(parent, dict):
        raise ScimProblem(400, f"{name} is not a complex attribute", "invalidPath")
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
        raise ScimProblem(400, f"no value of {target.attr} matches the filter", "noTarget")
    for index in hits:
        if target.sub is not None:
            _apply_to_attribute(items[index], target.sub, op, value)
        elif not isinstance(value, dict):
            raise ScimProblem(400, f"{op} on {target.attr}[...] needs an object", "invalidValue")
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

