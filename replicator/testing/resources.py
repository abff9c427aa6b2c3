"""The in-memory server's Users and Groups: storage in insertion order, ``id`` and ``meta``, and the
uniqueness index behind the 409 checks and the ``userName``/``displayName`` ``eq`` lookups.

Resources are kept as the client sent them (no schema validation) plus ``id`` and ``meta``. Every write
goes through :class:`ResourceStore`, so the index always names the holder of each unique name; code that
edits a stored dict in place (tests do) bypasses the index, and lookups then check the holder again.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from replicator.testing.patch import apply_patch
from replicator.testing.protocol import (
    GROUP,
    READ_ONLY_ATTRIBUTES,
    USER,
    ResourceKind,
    ScimProblem,
    find_key,
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _next_version(version: str) -> str:
    number = int(version.removeprefix('W/"').removesuffix('"'))
    return f'W/"{number + 1}"'


def _require_schemas(body: Mapping[str, Any]) -> None:
    key = find_key(body, "schemas")
    schemas = body.get(key) if key else None
    if not isinstance(schemas, list) or not schemas:
        raise ScimProblem(400, "the 'schemas' attribute is required", "invalidSyntax")


def _client_attributes(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body without the attributes only the server assigns."""
    return {key: value for key, value in body.items() if key.lower() not in READ_ONLY_ATTRIBUTES}


class ResourceStore:
    """Users and Groups by id, with the index of their unique names.

    ``unique_groups`` says whether two groups may share a displayName (userNames are always unique).
    """

    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        # kind name -> normalised userName/displayName -> id
        self._unique_index: dict[str, dict[str, str]] = {USER.name: {}, GROUP.name: {}}

    def of(self, kind: ResourceKind) -> dict[str, dict[str, Any]]:
        """The resources of ``kind`` by id."""
        return self.users if kind is USER else self.groups

    def existing(self, kind: ResourceKind, resource_id: str) -> dict[str, Any]:
        resource = self.of(kind).get(resource_id)
        if resource is None:
            raise ScimProblem(404, f"{kind.name} {resource_id} not found")
        return resource

    # ---------------------------------------------------------------- writes

    def add(self, kind: ResourceKind, resource: dict[str, Any], base: str, *, unique_groups: bool) -> dict[str, Any]:
        """Store a copy of ``resource`` without HTTP (same rules as POST; ``schemas`` defaults to the core
        schema); return the stored resource."""
        body = copy.deepcopy(resource)
        if find_key(body, "schemas") is None:
            body["schemas"] = [kind.core_schema]
        return self.insert(kind, body, base, unique_groups=unique_groups)

    def insert(self, kind: ResourceKind, body: dict[str, Any], base: str, *, unique_groups: bool,
               numbered: bool = False) -> dict[str, Any]:
        """A POSTed resource: validated, given an id (`numbered`: the next number of its kind, as
        servers numbering users and groups apart do) and meta (location under ``base``), stored."""
        _require_schemas(body)
        attributes = _client_attributes(body)
        self.validate(kind, attributes, own_id=None, unique_groups=unique_groups)
        resource_id = str(1 + max((int(i) for i in self.of(kind) if i.isdigit()), default=0)) if numbered \
            else uuid.uuid4().hex
        now = _now()
        meta = {
            "resourceType": kind.name,
            "created": now,
            "lastModified": now,
            "location": f"{base}/{kind.endpoint}/{resource_id}",
            "version": 'W/"1"',
        }
        resource = {"id": resource_id, **attributes, "meta": meta}
        self.save(kind, resource)
        return resource

    def replace(
        self, kind: ResourceKind, resource_id: str, body: dict[str, Any], *, unique_groups: bool,
        ignore_members: bool,
    ) -> dict[str, Any]:
        """A PUT; ``ignore_members``: a group keeps the members it had (a quirk)."""
        old = self.existing(kind, resource_id)
        _require_schemas(body)
        attributes = _client_attributes(body)
        if ignore_members and kind is GROUP:
            attributes = {k: v for k, v in attributes.items() if k != "members"}
            if "members" in old:
                attributes["members"] = old["members"]
        self.validate(kind, attributes, own_id=old["id"], unique_groups=unique_groups)
        resource = {"id": old["id"], **attributes, "meta": self.touched(old["meta"])}
        self.save(kind, resource)
        return resource

    def patch(
        self, kind: ResourceKind, resource_id: str, body: dict[str, Any], *, unique_groups: bool
    ) -> dict[str, Any]:
        """A PATCH; return the stored resource (unchanged, with its lastModified and version, when the
        operations change nothing)."""
        old = self.existing(kind, resource_id)
        patched = apply_patch(old, body, kind)
        if patched != old:
            self.validate(kind, patched, own_id=old["id"], unique_groups=unique_groups)
            patched["meta"] = self.touched(old["meta"])
            self.save(kind, patched)
            return patched
        return old  # nothing changed: keep lastModified and version

    def delete(self, kind: ResourceKind, resource_id: str) -> None:
        resource = self.existing(kind, resource_id)
        del self.of(kind)[resource_id]
        self._unindex(kind, resource)

    @staticmethod
    def touched(meta: Mapping[str, Any]) -> dict[str, Any]:
        return {**meta, "lastModified": _now(), "version": _next_version(meta["version"])}

    # ---------------------------------------------------------------- uniqueness

    def validate(
        self, kind: ResourceKind, resource: Mapping[str, Any], own_id: str | None, *, unique_groups: bool
    ) -> None:
        """Required ``userName``/``displayName`` present and unique (else 400 / 409)."""
        token = self.unique_token(kind, resource)
        if token is None or not token.strip():
            raise ScimProblem(400, f"{kind.unique_attribute} is required", "invalidValue")
        holder = self.holder_of(kind, token) if kind is USER or unique_groups else None
        if holder is not None and holder != own_id:
            taken = resource[find_key(resource, kind.unique_attribute) or kind.unique_attribute]
            raise ScimProblem(
                409, f"{kind.unique_attribute} {taken!r} is already taken", "uniqueness"
            )

    @staticmethod
    def unique_token(kind: ResourceKind, resource: Mapping[str, Any]) -> str | None:
        """The normalised userName/displayName of ``resource`` (None when it has none)."""
        key = find_key(resource, kind.unique_attribute)
        value = resource.get(key) if key else None
        if not isinstance(value, str):
            return None
        return value if kind.unique_case_exact else value.casefold()

    def holder_of(self, kind: ResourceKind, token: str) -> str | None:
        """The id of the stored resource whose userName/displayName normalises to ``token``."""
        holder = self._unique_index[kind.name].get(token)
        store = self.of(kind)
        if holder in store and self.unique_token(kind, store[holder]) == token:
            return holder
        return None

    def save(self, kind: ResourceKind, resource: dict[str, Any]) -> None:
        store = self.of(kind)
        previous = store.get(resource["id"])
        if previous is not None:
            self._unindex(kind, previous)
        store[resource["id"]] = resource
        token = self.unique_token(kind, resource)
        if token is not None:
            self._unique_index[kind.name][token] = resource["id"]

    def _unindex(self, kind: ResourceKind, resource: Mapping[str, Any]) -> None:
        index = self._unique_index[kind.name]
        token = self.unique_token(kind, resource)
        if token is not None and index.get(token) == resource["id"]:
            del index[token]
