"""Attribute mapping: reshape a source object's canonical form into the destination's. Pure; no I/O.

Rules per resource type, applied in this order:
1. `include` (source paths to keep; empty keeps everything) and `exclude` (source paths to drop);
2. `schema_urns`: move a whole extension from a source URN to a destination URN
   (PingOne's "Custom Attribute Schema URNs");
3. `rename`: move a value from a source path to a destination path (e.g. `title` to
   `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department`);
4. `constants`: set a destination path to a fixed value.

A path is `attr`, `attr.sub`, `urn:...:Type:attr` or `urn:...:Type:attr.sub`; an extension URN on its own
names the whole extension. Through a multi-valued attribute (`emails.type`), `include` and `exclude`
apply to each of its values; a value left without its `value` sub-attribute is dropped (as the canonical
form drops one whose `value` is empty), and so are values made exact duplicates. `rename` and
`constants` take multi-valued attributes whole: `make_rules` refuses their paths into a core one
(RFC 7643 `emails.type`), and `apply` leaves an object unchanged where one of their paths meets the values
of a multi-valued extension attribute (nothing at start can tell those apart). Mapping runs before digests
are taken, so a change of rules re-plans only the attributes it touches.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from replicator.errors import ConfigError
from replicator.pipeline.canonical import CANON_VERSION, primary_first
from replicator.pipeline.member import Member
from replicator.scim.attributes import get_first_ci, key_ci, keys_ci

# RFC 7643 4.1, 4.2 and 4.3: the multi-valued attributes of the core User and Group schemas (lower case)
CORE_MULTI_VALUED = frozenset(name.lower() for name in (
    "emails", "phoneNumbers", "ims", "photos", "addresses", "groups", "entitlements", "roles",
    "x509Certificates", "members",
))


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

    @functools.cached_property
    def edited_names(self) -> frozenset[str]:
        """The top-level attributes (lower case) that `exclude`, `schema_urns`, `rename` and `constants` may
        edit in place, a superset, worked out once (apply runs per object): for each of their paths, the
        path itself (an attribute or extension named whole), its first `.` part and its extension URN,
        whichever `_split` makes its first key. `apply` copies these and shares every other attribute with
        its input (`include` makes new containers down to the parts it keeps whole, and those it shares too)."""
        paths = [*self.exclude, *(name for pair in (*self.schema_urns, *self.rename) for name in pair),
                 *(target for target, _ in self.constants)]
        names: set[str] = set()
        for path in paths:
            names.update((path, path.split(".")[0]))
            if path.startswith("urn:"):
                names.add(path.rpartition(":")[0])
        return frozenset(name.lower() for name in names)


def make_rules(
    *,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    rename: dict[str, str] | None = None,
    constants: dict[str, Any] | None = None,
    schema_urns: dict[str, str] | None = None,
    where: str = "mapping",
) -> Rules:
    """Validated rules; a path that cannot be parsed, or cannot take effect, fails with its place in the
    configuration."""
    paths = [*(include or ()), *(exclude or ()), *(rename or {}), *(rename or {}).values(), *(constants or {})]
    for path in paths:
        if not path or path.strip() != path or ".." in path or path.endswith((".", ":")):
            raise ConfigError(f"{where}: invalid attribute path {path!r}")
        if "[" in path or "]" in path:
            raise ConfigError(f"{where}: invalid attribute path {path!r} (a mapping path takes no value filter: "
                              f"`emails.type` applies to every email)")
    for field, names in (("rename", [*(rename or {}), *(rename or {}).values()]), ("constants", [*(constants or {})])):
        for path in names:
            multi_valued = core_multi_valued_parent(path)
            if multi_valued:
                raise ConfigError(f"{where}.{field}: {path!r} is inside the multi-valued attribute {multi_valued!r}, "
                                  f"whose values have no single place to take it from or put it ({field} takes "
                                  f"{multi_valued!r} whole; include and exclude take its sub-attributes)")
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


def core_multi_valued_parent(path: str) -> str | None:
    """The core multi-valued attribute (as spelled in `path`) that a path goes inside, or None: `emails`
    for `emails.type`, None for `emails` itself, `name.givenName` or an extension path."""
    if path.startswith("urn:"):
        return None
    attribute, dot, _ = path.partition(".")
    return attribute if dot and attribute.lower() in CORE_MULTI_VALUED else None


def rules_key(rules: Rules) -> bytes:
    """A 16-byte key that changes when the rules or the canonical recipe change, and only then: it salts
    the zero-change digests, so it must be the same in every process (a deterministic encoding, not a
    repr, whose order can follow the hash seed)."""
    encoded = msgspec.json.encode([CANON_VERSION, dataclasses.asdict(rules)], order="deterministic")
    return hashlib.blake2b(encoded, digest_size=16).digest()


def apply(canonical: dict[str, Any], rules: Rules) -> dict[str, Any]:
    """The destination form of a canonical source form under `rules` (a new dict; input untouched). What
    no rule can change is shared with the input, not copied (memory: a group's members under group rules
    that do not name `members`), so the caller must not edit the result in place where it would not edit
    the input (none does: the input is the canonical form made for this call)."""
    if rules.empty:
        return canonical
    if rules.include:
        out = _keep(canonical, _include_tree([_split(canonical, path) for path in rules.include])) or {}
    else:
        out = dict(canonical)
    edited = rules.edited_names
    for name in out:  # memory: only the attributes a rule may edit in place are copied (not a group's members)
        if name.lower() in edited:
            out[name] = copy.deepcopy(out[name])
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
        if value is not None and _settable(out, _split(out, target)):
            _delete(out, _split(out, source))
            _set(out, _split(out, target), value)
    for target, value in rules.constants:
        if _settable(out, _split(out, target)):
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


_WHOLE: dict[str, Any] = {}  # an include tree's leaf: the value is kept whole (compared by identity)


def _include_tree(paths: list[list[str]]) -> dict[str, Any]:
    """The include paths as a tree of lower-case keys; a path under one kept whole adds nothing."""
    tree: dict[str, Any] = {}
    for keys in paths:
        node = tree
        for key in keys[:-1]:
            node = node.setdefault(key.lower(), {})
            if node is _WHOLE:
                break
        else:
            node[keys[-1].lower()] = _WHOLE
    return tree


def _keep(value: Any, tree: dict[str, Any]) -> Any:
    """The part of `value` that an include tree names (None when nothing): new containers down to the
    parts kept whole, which are shared with `value`, not copied; through a list, the part of each of its
    values."""
    if isinstance(value, list):
        return _each_value(value, lambda item: _keep(item, tree))
    if not isinstance(value, Mapping):  # (a dict, or a big group's `Member`)
        return None
    kept: dict[str, Any] = {}
    for name, subtree in tree.items():
        key = key_ci(value, name)
        if key is not None:
            part = value[key] if subtree is _WHOLE else _keep(value[key], subtree)
            if part is not None:
                kept[key] = part
    return kept or None


def _each_value(values: list[Any], reshape: Callable[[Any], Any]) -> list[Any] | None:
    """A multi-valued attribute with `reshape` applied to each value: values left empty, or without the
    `value` sub-attribute they had, are dropped, and so are exact duplicates (None when none is left)."""
    out = []
    for item in values:
        had_value = isinstance(item, Mapping) and key_ci(item, "value") is not None  # before: reshape may edit item
        shaped = _prune(reshape(item))
        if shaped is None or shaped == {} or (had_value and key_ci(shaped, "value") is None):
            continue
        out.append(shaped)
    return primary_first(out) if out else None


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


def _settable(resource: dict[str, Any], keys: list[str]) -> bool:
    """`_set` can place a value at `keys` without replacing the values of a multi-valued attribute."""
    target: Any = resource
    for key in keys[:-1]:
        target = get_first_ci(target, key)
        if isinstance(target, list):
            return False
        if not isinstance(target, dict):
            return True
    return True


def _delete(resource: dict[str, Any], keys: list[str]) -> None:
    """Remove what `keys` lead to (in place); through a multi-valued attribute, from each of its values."""
    target: Any = resource
    for depth, key in enumerate(keys[:-1]):
        parent, target = target, get_first_ci(target, key)
        if isinstance(target, list):
            name = key_ci(parent, key)
            values = _each_value(target, functools.partial(_without, keys=keys[depth + 1:]))
            if values is None:
                del parent[name]
            else:
                parent[name] = values
            return
        if not isinstance(target, dict):
            return
    for key in keys_ci(target, keys[-1]):
        del target[key]


def _without(value: Any, keys: list[str]) -> Any:
    """`value` with what `keys` lead to removed (a value that is not an object has nothing to remove; a
    big group's `Member` becomes the dict it stands for, which can lose a key)."""
    if type(value) is Member:
        value = dict(value)
    if isinstance(value, dict):
        _delete(value, keys)
    return value


def _prune(value: Any) -> Any:
    """Drop dicts left empty by moves (an extension whose last attribute moved away)."""
    if isinstance(value, dict):
        out = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in ({}, None, "", [])}
    return value
