"""Attribute mapping: reshape a source object's canonical form into the destination's. Pure; no I/O.

Rules per resource type, applied in this order:
1. `include` (source paths to keep; empty keeps everything) and `exclude` (source paths to drop);
2. `schema_urns`: move a whole extension from a source URN to a destination URN
   (PingOne's "Custom Attribute Schema URNs");
3. `rename`: move a value from a source path to a destination path (e.g. `title` to
   `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department`);
4. `constants`: set a destination path to a fixed value.

A path is `attr`, `attr.sub`, `urn:...:Type:attr` or `urn:...:Type:attr.sub`; an extension URN on its own
names the whole extension. Mapping runs before digests are taken, so a change of rules re-plans only
the attributes it touches.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any

import msgspec

from replicator.errors import ConfigError
from replicator.pipeline.canonical import CANON_VERSION
from replicator.scim.attributes import get_first_ci, key_ci, keys_ci


@dataclass(frozen=True)
class Rules:
    """The mapping of one resource type."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    rename: tuple[tuple[str, str], ...] = ()
    constants: tuple[tuple[str, Any], ...] = ()
    schema_urns: tuple[tuple[str, str], ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.include or self.exclude or self.rename or self.constants or self.schema_urns)


def make_rules(
    *,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    rename: dict[str, str] | None = None,
    constants: dict[str, Any] | None = None,
    schema_urns: dict[str, str] | None = None,
    where: str = "mapping",
) -> Rules:
    """Validated rules; a path that cannot be parsed fails with its place in the configuration."""
    paths = [*(include or ()), *(exclude or ()), *(rename or {}), *(rename or {}).values(), *(constants or {})]
    for path in paths:
        if not path or path.strip() != path or ".." in path or path.endswith((".", ":")):
            raise ConfigError(f"{where}: invalid attribute path {path!r}")
    for source, target in (schema_urns or {}).items():
        if not source.startswith("urn:") or not target.startswith("urn:"):
            raise ConfigError(f"{where}.schema_urns: both sides must be URNs ({source!r} -> {target!r})")
    return Rules(
        include=tuple(include or ()),
        exclude=tuple(exclude or ()),
        rename=tuple((rename or {}).items()),
        constants=tuple((constants or {}).items()),
        schema_urns=tuple((schema_urns or {}).items()),
    )


def rules_key(rules: Rules) -> bytes:
    """A 16-byte key that changes when the rules or the canonical recipe change, and only then: it salts
    the zero-change digests, so it must be the same in every process (a deterministic encoding, not a
    repr, whose order can follow the hash seed)."""
    encoded = msgspec.json.encode([CANON_VERSION, dataclasses.asdict(rules)], order="deterministic")
    return hashlib.blake2b(encoded, digest_size=16).digest()


def apply(canonical: dict[str, Any], rules: Rules) -> dict[str, Any]:
    """The destination form of a canonical source form under `rules` (a new dict; input untouched)."""
    if rules.empty:
        return canonical
    out = copy.deepcopy(canonical)
    if rules.include:
        kept: dict[str, Any] = {}
        for path in rules.include:
            value = _get(out, path)
            if value is not None:
                _set(kept, _split(out, path), copy.deepcopy(value))
        out = kept
    for path in rules.exclude:
        _delete(out, _split(out, path))
    for source, target in rules.schema_urns:
        if source in out:
            moved = out.pop(source)
            merged = out.setdefault(target, {})
            if isinstance(merged, dict) and isinstance(moved, dict):
                merged.update(moved)
    for source, target in rules.rename:
        value = _get(out, source)
        if value is not None:
            _delete(out, _split(out, source))
            _set(out, _split(out, target), value)
    for target, value in rules.constants:
        _set(out, _split(out, target), copy.deepcopy(value))
    pruned: dict[str, Any] = _prune(out)
    return pruned


def _split(resource: dict[str, Any], path: str) -> list[str]:
    """Keys leading to a path: ["urn:...:User", "manager", "value"], ["name", "givenName"], or
    [urn] for an extension named whole (it is a key of the resource)."""
    if path in resource:
        return [path]
    if path.startswith("urn:"):
        urn, _, rest = path.rpartition(":")
        return [urn, *rest.split(".")]
    return path.split(".")


def _get(resource: dict[str, Any], path: str) -> Any:
    value: Any = resource
    for key in _split(resource, path):
        if not isinstance(value, dict):
            return None
        value = get_first_ci(value, key)
    return value


def _set(resource: dict[str, Any], keys: list[str], value: Any) -> None:
    target = resource
    for key in keys[:-1]:
        existing = key_ci(target, key) or key
        if not isinstance(target.get(existing), dict):
            target[existing] = {}
        target = target[existing]
    existing = key_ci(target, keys[-1]) or keys[-1]
    target[existing] = value


def _delete(resource: dict[str, Any], keys: list[str]) -> None:
    target: Any = resource
    for key in keys[:-1]:
        target = get_first_ci(target, key)
        if not isinstance(target, dict):
            return
    for key in keys_ci(target, keys[-1]):
        del target[key]


def _prune(value: Any) -> Any:
    """Drop dicts left empty by moves (an extension whose last attribute moved away)."""
    if isinstance(value, dict):
        out = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in ({}, None, "", [])}
    return value
