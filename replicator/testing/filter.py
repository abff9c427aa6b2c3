"""The filters the in-memory server understands: ``ATTR eq VALUE`` joined by ``and`` (RFC 7644 3.4.2.2),
parsed into clauses and evaluated against a resource or one value of a multi-valued attribute.

Anything else is refused with ``invalidFilter``; pure functions, no state.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from replicator.testing.protocol import ScimProblem, find_key

Clause = tuple[str, Any]  # (attribute path, expected value) of one `eq` comparison

# Attribute paths (lower case) whose filter comparisons ignore case (caseExact false).
CASE_INSENSITIVE_ATTRIBUTES = frozenset({"username"})

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


def _invalid_filter(text: str) -> ScimProblem:
    return ScimProblem(400, f"unsupported or malformed filter: {text!r}", "invalidFilter")


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
