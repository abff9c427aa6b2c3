"""Attribute names are case-insensitive (RFC 7643 2.1): the one place JSON keys are matched that way.

Two readings exist on purpose. `get_ci` prefers the exact spelling, then the first key equal to the name
ignoring case (reading what a server sent: wire records, filters). `get_first_ci`, `key_ci` and
`keys_ci` go by the object's key order only, so that a read, a write and a delete through them address
the same key (mapping rules). They differ only for an object holding one name in two spellings. Keys
that are not strings never match. Pure; stdlib only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def key_ci(obj: Mapping[Any, Any], name: str) -> str | None:
    """The first key of `obj` (in its order) equal to `name` ignoring case, or None."""
    return key_folded(obj, name.lower())


def key_folded(obj: Mapping[Any, Any], folded: str) -> str | None:
    """`key_ci` for a name already lower-cased (a caller matching one name against many objects folds it
    once). Hot path: a plain loop, no generator."""
    for key in obj:
        if isinstance(key, str) and key.lower() == folded:
            return key
    return None


def keys_ci(obj: Mapping[Any, Any], name: str) -> list[str]:
    """Every key of `obj` equal to `name` ignoring case, in its order (a list: safe to delete them by)."""
    folded = name.lower()
    return [key for key in obj if isinstance(key, str) and key.lower() == folded]


def get_first_ci(obj: object, name: str) -> Any:
    """The value under `key_ci(obj, name)`; None when there is none or `obj` is not a mapping."""
    if not isinstance(obj, Mapping):
        return None
    key = key_ci(obj, name)
    return None if key is None else obj[key]


def get_ci(obj: object, name: str) -> Any:
    """The value of attribute `name`: under that exact spelling when present, else as `get_first_ci`;
    None when absent or `obj` is not a mapping."""
    if not isinstance(obj, Mapping):
        return None
    if name in obj:
        return obj[name]
    return get_first_ci(obj, name)
