"""What a server with attribute quirks (:class:`~replicator.testing.options.Quirks`) stores of a resource
it is sent: without the attributes it drops (an attribute, an extension's URN, or `attr.sub`: that
sub-attribute of each value of a multi-valued attribute, or of a complex one), and with one value of
those it keeps one of."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from replicator.testing.options import Quirks


def kept_by(resource: dict[str, Any], quirks: Quirks) -> dict[str, Any]:
    """What a server with these quirks stores of a resource: without the attributes it drops, and with
    one value of those it keeps one of."""
    return first_values_only(dropped_by(resource, quirks.drops_attributes), quirks.keeps_first_value_of)


def dropped_by(resource: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The resource without the attributes (and `attr.sub` sub-attributes) named, case-insensitively."""
    whole = {name.lower() for name in names if name.startswith("urn:") or "." not in name}
    subs: dict[str, set[str]] = {}
    for name in names:
        if not name.startswith("urn:") and "." in name:
            head, _, sub = name.lower().partition(".")
            subs.setdefault(head, set()).add(sub)
    if not whole and not subs:
        return resource
    out = {key: _without(value, subs[key.lower()]) if key.lower() in subs else value
           for key, value in resource.items() if key.lower() not in whole}
    if isinstance(out.get("schemas"), list):
        out["schemas"] = [urn for urn in out["schemas"] if not (isinstance(urn, str) and urn.lower() in whole)]
    return out


def _without(value: Any, subs: set[str]) -> Any:
    """A complex value (or each value of a multi-valued one) without the sub-attributes named."""
    if isinstance(value, dict):
        return {key: sub for key, sub in value.items() if key.lower() not in subs}
    if isinstance(value, list):
        return [_without(item, subs) for item in value]
    return value


def first_values_only(resource: dict[str, Any], names: set[str]) -> dict[str, Any]:
    """The resource with only the first value of each multi-valued attribute named (case-insensitively)
    in ``names``: how a server keeping one value of them stores it."""
    if not names:
        return resource
    wanted = {name.lower() for name in names}
    return {key: value[:1] if key.lower() in wanted and isinstance(value, list) else value
            for key, value in resource.items()}
