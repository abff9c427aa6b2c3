"""Where each setting came from, and configuration errors a person can act on: the setting, its value
(never a secret's) and its origin.

`explain_invalid` turns msgspec's ``Expected `int`, got `str` - at `$.sync.member_chunk` `` into
`sync.member_chunk: expected an integer, got "abc" (from env SCIMREP_SYNC_MEMBER_CHUNK)`; `with_value`
adds the value and its origin to a validation error that starts with a setting's name.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

from replicator.config import Config
from replicator.settings_help import choices, is_secret, iter_settings

KINDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
         "array": "a list", "object": "a table"}
UNKNOWN = re.compile(r"Object contains unknown field `([^`]+)`(?: - at `\$\.?([^`]*)`)?")
LOCATED = re.compile(r"(.*) - at `\$\.([^`]+)`$")
EXPECTED = re.compile(r"Expected `([^`]+)`, got `([^`]+)`")


def paths_in(tree: Mapping[str, Any], struct: type[msgspec.Struct] = Config, prefix: str = "") -> Iterator[str]:
    """The dotted paths of the settings a TOML tree sets (tables such as `rename` are one setting)."""
    sections = {info.name: info.type for info in msgspec.structs.fields(struct)
                if isinstance(info.type, type) and issubclass(info.type, msgspec.Struct)}
    for key, value in tree.items():
        if key in sections and isinstance(value, Mapping):
            yield from paths_in(value, sections[key], f"{prefix}{key}.")
        else:
            yield prefix + key


def derived_paths(given: Config, effective: Config) -> Iterator[str]:
    """The side settings the PingOne preset filled in (replicator.config.apply_presets)."""
    for side in ("source", "destination"):
        for name in ("url", "token_url", "api_url", "auth_url", "scim_url", "auth"):
            if getattr(getattr(given, side), name) != getattr(getattr(effective, side), name):
                yield f"{side}.{name}"


def shown(path: str, value: Any) -> str | None:
    """A value as an error may show it: `***` for a secret; None (not shown) for a URL setting, whose
    user:password@ or query may carry a credential (as redirects never show a query)."""
    if is_secret(path):
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


def explain_invalid(message: str, tree: Mapping[str, Any], origins: Mapping[str, str]) -> str:
    """msgspec's validation message in the setting's words."""
    unknown = UNKNOWN.match(message)
    if unknown:
        parent = unknown.group(2) or ""
        path = f"{parent + '.' if parent else ''}{unknown.group(1)}"
        likely = difflib.get_close_matches(unknown.group(1), _field_names(parent), n=1)
        hint = f" (did you mean {parent + '.' if parent else ''}{likely[0]}?)" if likely else ""
        origin = origin_label(path, origins)
        return f"unknown setting {path}{hint}" + (f" in {origin}" if origin else "")
    located = LOCATED.match(message)
    if not located:
        return message
    problem, where = located.groups()
    path = re.sub(r"\[\d+\]", "", where)
    got = shown(path, _value_at(tree, where)) or "a value not shown"
    expected = EXPECTED.match(problem)
    if expected:
        wanted = [KINDS.get(kind.strip(), kind.strip()) for kind in expected.group(1).split("|")
                  if kind.strip() != "null"]
        return f"{path}: expected {' or '.join(wanted)}, got {got}{origin_of(path, origins)}"
    if problem.startswith("Invalid enum value"):
        listed = ", ".join(choices(dict((p, a) for p, a, _ in iter_settings()).get(path)))
        return f"{path}: expected one of {listed}, got {got}{origin_of(path, origins)}"
    return f"{path}: {problem}, got {got}{origin_of(path, origins)}"


def with_value(message: str, config: Config, origins: Mapping[str, str]) -> str:
    """`concurrency must be between 1 and 1024` + ` (got 0 from flag --concurrency)`, when the message
    starts with a setting that was set (a default needs no origin)."""
    path = message.split(" ", 1)[0].rstrip(":")
    if path not in origins or path not in {p for p, _, _ in iter_settings()}:
        return message
    value: Any = config
    for part in path.split("."):
        value = getattr(value, part)
    got = None if isinstance(value, dict) else shown(path, value)
    if isinstance(value, dict):
        return f"{message}{origin_of(path, origins)}"
    return f"{message} (got {got} from {origins[path]})" if got else message


def _field_names(section: str) -> list[str]:
    struct: Any = Config
    for part in filter(None, section.split(".")):
        struct = next((f.type for f in msgspec.structs.fields(struct) if f.name == part), None)
        if not (isinstance(struct, type) and issubclass(struct, msgspec.Struct)):
            return []
    return [f.name for f in msgspec.structs.fields(struct)]


def _value_at(tree: Any, where: str) -> Any:
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", where):
        if part.startswith("[") and isinstance(tree, list):
            tree = tree[int(part[1:-1])]
        elif isinstance(tree, Mapping):
            tree = tree.get(part)
        else:
            return None
    return tree
