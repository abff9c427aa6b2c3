"""Where each setting came from, and configuration errors a person can act on: the setting, its value
(never a secret's) and its origin.

`explain_invalid` turns msgspec's ``Expected `int`, got `str` - at `$.sync.member_chunk` `` into
`sync.member_chunk: expected an integer, got "abc" (from env SCIMREP_SYNC_MEMBER_CHUNK)`; `with_value`
adds the value and its origin to a validation error that starts with a setting's name. It knows the
schema only through its arguments (replicator.config calls it), so it imports nothing of the project.
"""

from __future__ import annotations

import difflib
import json
import re
import typing
from collections.abc import Collection, Iterator, Mapping
from typing import Any

import msgspec

KINDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
         "array": "a list", "object": "a table"}
UNKNOWN = re.compile(r"Object contains unknown field `([^`]+)`(?: - at `\$\.?([^`]*)`)?")
LOCATED = re.compile(r"(.*) - at `\$\.([^`]+)`$")
EXPECTED = re.compile(r"Expected `([^`]+)`, got `([^`]+)`")


def choices(annotation: Any) -> tuple[str, ...]:
    """The choices of a Literal setting (also inside `X | None`), else ()."""
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    for arg in typing.get_args(annotation):
        if typing.get_origin(arg) is typing.Literal:
            return typing.get_args(arg)
    return ()


def annotation_at(schema: type[msgspec.Struct], path: str) -> Any:
    """The annotation of the setting at a dotted path (a section's struct type), or None."""
    found: Any = schema
    for part in path.split("."):
        if not (isinstance(found, type) and issubclass(found, msgspec.Struct)):
            return None
        found = next((f.type for f in msgspec.structs.fields(found) if f.name == part), None)
    return found


def unknown_settings(tree: Mapping[str, Any], struct: type[msgspec.Struct], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every key of a settings tree that its section does not have: (dotted section, key), in the tree's order."""
    fields = {info.encode_name: info.type for info in msgspec.structs.fields(struct)}
    for key, value in tree.items():
        if key not in fields:
            yield prefix.rstrip("."), key
        elif isinstance(fields[key], type) and issubclass(fields[key], msgspec.Struct) and isinstance(value, Mapping):
            yield from unknown_settings(value, fields[key], f"{prefix}{key}.")


def _unknown_named(parent: str, key: str, schema: type[msgspec.Struct], origins: Mapping[str, str]) -> str:
    """An unknown setting by its path, with the likeliest known name of its section and where it came from."""
    path = f"{parent + '.' if parent else ''}{key}"
    section = annotation_at(schema, parent) if parent else schema
    names = [f.name for f in msgspec.structs.fields(section)] if isinstance(section, type) else []
    likely = difflib.get_close_matches(key, names, n=1)
    hint = f" (did you mean {parent + '.' if parent else ''}{likely[0]}?)" if likely else ""
    origin = origin_label(path, origins)
    return f"{path}{hint}" + (f" in {origin}" if origin else "")


def paths_in(tree: Mapping[str, Any], struct: type[msgspec.Struct], prefix: str = "") -> Iterator[str]:
    """The dotted paths of the settings a TOML tree sets (tables such as `rename` are one setting)."""
    sections = {info.name: info.type for info in msgspec.structs.fields(struct)
                if isinstance(info.type, type) and issubclass(info.type, msgspec.Struct)}
    for key, value in tree.items():
        if key in sections and isinstance(value, Mapping):
            yield from paths_in(value, sections[key], f"{prefix}{key}.")
        else:
            yield prefix + key


def derived_paths(given: Any, effective: Any) -> Iterator[str]:
    """The side settings the PingOne preset filled in (replicator.config.apply_presets)."""
    for side in ("source", "destination"):
        for name in ("url", "token_url", "api_url", "auth_url", "scim_url", "auth"):
            if getattr(getattr(given, side), name) != getattr(getattr(effective, side), name):
                yield f"{side}.{name}"


def shown(path: str, value: Any, secret_fields: Collection[str]) -> str | None:
    """A value as an error may show it: `***` for a secret; None (not shown) for a URL setting, whose
    user:password@ or query may carry a credential (as redirects never show a query)."""
    if path.rsplit(".", 1)[-1] in secret_fields:
        return "***"
    if path.endswith("url") or (isinstance(value, str) and "@" in value.split("://", 1)[-1].split("/", 1)[0]):
        return None
    return json.dumps(value, ensure_ascii=False, default=str)


def origin_label(path: str, origins: Mapping[str, str]) -> str | None:
    """Where a setting (or the table holding it) came from: `env NAME`, `file PATH`, `flag --name`."""
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        origin = origins.get(".".join(parts[:end]))
        if origin:
            return origin
    return None


def origin_of(path: str, origins: Mapping[str, str]) -> str:
    origin = origin_label(path, origins)
    return f" (from {origin})" if origin else ""


def explain_invalid(message: str, tree: Mapping[str, Any], origins: Mapping[str, str], schema: type[msgspec.Struct],
                    secret_fields: Collection[str]) -> str:
    """msgspec's validation message in the setting's words."""
    unknown = UNKNOWN.match(message)
    if unknown:
        first = (unknown.group(2) or "", unknown.group(1))
        found = list(unknown_settings(tree, schema))
        every = found if first in found else [first]  # (msgspec's own finding, should the walk miss it)
        named = [_unknown_named(parent, key, schema, origins) for parent, key in every]
        return f"unknown setting {named[0]}" if len(named) == 1 else f"unknown settings {'; '.join(named)}"
    located = LOCATED.match(message)
    if not located:
        return message
    problem, where = located.groups()
    path = re.sub(r"\[\d+\]", "", where)
    got = shown(path, _value_at(tree, where), secret_fields) or "a value not shown"
    expected = EXPECTED.match(problem)
    if expected:
        wanted = [KINDS.get(kind.strip(), kind.strip()) for kind in expected.group(1).split("|")
                  if kind.strip() != "null"]
        return f"{path}: expected {' or '.join(wanted)}, got {got}{origin_of(path, origins)}"
    if problem.startswith("Invalid enum value"):
        listed = ", ".join(choices(annotation_at(schema, path)))
        return f"{path}: expected one of {listed}, got {got}{origin_of(path, origins)}"
    return f"{path}: {problem}, got {got}{origin_of(path, origins)}"


def with_value(message: str, config: msgspec.Struct, origins: Mapping[str, str], secret_fields: Collection[str]) -> str:
    """`concurrency must be between 1 and 1024` + ` (got 0 from flag --concurrency)`, when the message
    starts with a setting that was set (a default needs no origin)."""
    path = message.split(" ", 1)[0].rstrip(":")
    annotation = annotation_at(type(config), path)
    if path not in origins or annotation is None or (isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)):
        return message
    value: Any = config
    for part in path.split("."):
        value = getattr(value, part)
    got = None if isinstance(value, dict) else shown(path, value, secret_fields)
    # a table, or a value not shown (a URL): where it came from, without the value
    return f"{message} (got {got} from {origins[path]})" if got else f"{message}{origin_of(path, origins)}"


def _value_at(tree: Any, where: str) -> Any:
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", where):
        if part.startswith("[") and isinstance(tree, list):
            tree = tree[int(part[1:-1])]
        elif isinstance(tree, Mapping):
            tree = tree.get(part)
        else:
            return None
    return tree
