"""Server-independent snapshots of a directory, to check that a destination equals its source. Pure.

Ids differ between servers, so references (group members, manager) are replaced by the referenced
object's userName or displayName; the rest is the canonical form. Some servers keep a deleted user
among a group's members or as a manager: such dangling references are left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from replicator.pipeline.canonical import ENTERPRISE_USER, GROUP, USER, canonicalise, same
from replicator.pipeline.value_order import sort_values


def snapshot(users: Iterable[dict[str, Any]], groups: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{"User:<userName>": form, "Group:<displayName>": form} with ids replaced by names."""
    users, groups = list(users), list(groups)
    names = {u["id"]: f"User:{u.get('userName')}" for u in users}
    names.update({g["id"]: f"Group:{g.get('displayName')}" for g in groups})
    out: dict[str, dict[str, Any]] = {}
    for kind, resources in ((USER, users), (GROUP, groups)):
        for resource in resources:
            form = canonicalise(resource, kind)
            if kind == GROUP and "members" in form:
                # a member that is no object of this directory (a dangling reference) means nothing
                members = [names[m["value"]] for m in form["members"] if m["value"] in names]
                form["members"] = sort_values(members)
                if not members:
                    del form["members"]
            extension = form.get(ENTERPRISE_USER)
            if isinstance(extension, dict) and isinstance(extension.get("manager"), dict):
                manager = extension["manager"].get("value")
                rest = {k: v for k, v in extension.items() if k != "manager"}
                form[ENTERPRISE_USER] = {**rest, "manager": names[manager]} if manager in names else rest
            out[names[resource["id"]]] = form
    return out


def differences(source: dict[str, dict[str, Any]], destination: dict[str, dict[str, Any]]) -> list[str]:
    """Readable differences between two snapshots (empty when equal; multi-valued attributes compare as
    sets, as the replicator compares them: a destination holding the same emails in another order is equal)."""
    lines = []
    for key in sorted(set(source) | set(destination)):
        if key not in destination:
            lines.append(f"missing on destination: {key}")
        elif key not in source:
            lines.append(f"extra on destination: {key}")
        elif not same(source[key], destination[key]):
            lines.append(f"differs: {key}: {source[key]} != {destination[key]}")
    return lines
