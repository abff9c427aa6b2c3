"""Minimal RFC 7644 PatchOp between two canonical forms, and a reference applier. Pure; no I/O.

`compute_operations(current, desired)` lists the operations that turn `current` into `desired`:
- an attribute gone from `desired` is removed (`remove`), which is how a cleared source value propagates;
- a changed simple or multi-valued attribute is replaced whole (`replace` on a multi-valued path replaces
  all its values, RFC 7644 3.5.2.3), with the values in the desired form's order (primary first); the
  order of a multi-valued attribute's values alone is no change (canonical.same);
- a changed complex attribute changes sub-attribute by sub-attribute: each changed one is replaced and
  each vanished one removed by its own `attr.sub` path (a replace of `name` with only its changed parts
  should merge, RFC 7644 3.5.2.3, but some servers replace the whole `name` and lose the other parts,
  and some accept only `name.givenName` paths);
- extension attributes are addressed as `urn:...:attr`; a changed complex one is replaced whole;
- group `members` change by delta only: `add` of the new values, `remove` of `members[value eq "ID"]`.

`chunk_requests` splits operations into PATCH bodies with a bounded number of member changes each.
`apply_operations` is the reference semantics we rely on, used by property tests.
"""

from __future__ import annotations

import copy
from typing import Any

from replicator.pipeline.canonical import same
from replicator.scim.filters import quote
from replicator.scim.urns import PATCH_OP

Operation = dict[str, Any]


def compute_operations(
    current: dict[str, Any],
    desired: dict[str, Any],
    *,
    removable_members: set[str] | None = None,
) -> list[Operation]:
    """Operations turning `current` into `desired`.

    `removable_members`: member values we may remove (membership `merge` mode: those we manage);
    None means any member of `current` not in `desired` is removed (`overwrite`).
    """
    ops: list[Operation] = []
    for key in _keys(current, desired):
        old, new = current.get(key), desired.get(key)
        if old == new or (key != "members" and same(old, new)):
            continue
        if key == "members":
            ops.extend(_member_operations(old or [], new or [], removable_members))
        elif key.startswith("urn:") and isinstance(new, dict) and isinstance(old, dict):
            for sub in _keys(old, new):
                ops.extend(_attribute_operations(f"{key}:{sub}", old.get(sub), new.get(sub), whole=True))
        elif key.startswith("urn:") and isinstance(new, dict):
            # a new extension: set each attribute by its full path
            for sub in new:
                ops.append({"op": "replace", "path": f"{key}:{sub}", "value": new[sub]})
        elif key.startswith("urn:") and isinstance(old, dict) and new is None:
            ops.extend({"op": "remove", "path": f"{key}:{sub}"} for sub in old)
        else:
            ops.extend(_attribute_operations(key, old, new))
    return ops


def _keys(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(set(a) | set(b))


def _attribute_operations(path: str, old: Any, new: Any, *, whole: bool = False) -> list[Operation]:
    """`whole`: a changed complex attribute is replaced by its whole new value (after its removal when
    sub-attributes vanished), which merging and whole-replacing servers read alike; used for extension
    attributes, whose `urn:...:2.0:User:attr.sub` paths some servers split at the wrong dot."""
    if same(old, new):
        return []
    if new is None:
        return [{"op": "remove", "path": path}]
    if isinstance(old, dict) and isinstance(new, dict):
        vanished = sorted(sub for sub in old if sub not in new)
        if whole:
            removal = [{"op": "remove", "path": path}] if vanished else []
            return [*removal, {"op": "replace", "path": path, "value": new}]
        ops: list[Operation] = [{"op": "remove", "path": f"{path}.{sub}"} for sub in vanished]
        ops.extend({"op": "replace", "path": f"{path}.{sub}", "value": value}
                   for sub, value in sorted(new.items()) if not same(old.get(sub), value))
        return ops
    return [{"op": "replace", "path": path, "value": new}]


def _member_operations(
    old: list[dict[str, Any]], new: list[dict[str, Any]], removable: set[str] | None
) -> list[Operation]:
    old_values = {m["value"] for m in old}
    new_values = {m["value"] for m in new}
    added = [m for m in new if m["value"] not in old_values]
    removed = sorted(v for v in old_values - new_values if removable is None or v in removable)
    ops: list[Operation] = []
    if added:
        ops.append({"op": "add", "path": "members", "value": added})
    ops.extend({"op": "remove", "path": f"members[value eq {quote(v)}]"} for v in removed)
    return ops


def _member_count(op: Operation) -> int:
    if op["path"] == "members" and op["op"] == "add":
        return len(op["value"])
    return 1 if op["path"].startswith("members[") else 0


def chunk_requests(ops: list[Operation], max_members: int) -> list[dict[str, Any]]:
    """PATCH bodies carrying all `ops`, none with more than `max_members` member changes.

    Attribute operations ride in the first body; member additions are split across bodies.
    """
    max_members = max(1, max_members)
    bodies: list[list[Operation]] = [[]]
    budget = max_members
    for op in ops:
        if not _member_count(op):
            bodies[0].append(op)
            continue
        pieces = (
            [{**op, "value": op["value"][i : i + max_members]} for i in range(0, len(op["value"]), max_members)]
            if op["op"] == "add"
            else [op]
        )
        for piece in pieces:
            size = _member_count(piece)
            if size > budget:
                bodies.append([])
                budget = max_members
            bodies[-1].append(piece)
            budget -= size
    return [{"schemas": [PATCH_OP], "Operations": body} for body in bodies if body]


def apply_operations(resource: dict[str, Any], ops: list[Operation]) -> dict[str, Any]:
    """Apply operations of the forms `compute_operations` emits, with RFC 7644 semantics."""
    out = copy.deepcopy(resource)
    for op in ops:
        kind, path = op["op"], op["path"]
        if path.startswith("members["):
            value = path[len('members[value eq '):-1]
            target = _unquote(value)
            out["members"] = [m for m in out.get("members", []) if m["value"] != target]
            if not out["members"]:
                del out["members"]
            continue
        container, attr, sub = _locate(out, path)
        if kind == "remove":
            if sub is None:
                container.pop(attr, None)
            elif isinstance(container.get(attr), dict):
                container[attr].pop(sub, None)
                if not container[attr]:
                    del container[attr]
        elif kind == "add" and attr == "members":
            known = {m["value"] for m in container.get("members", [])}
            container.setdefault("members", []).extend(m for m in op["value"] if m["value"] not in known)
        elif isinstance(op["value"], dict) and isinstance(container.get(attr), dict) and sub is None:
            container[attr].update(copy.deepcopy(op["value"]))
        elif sub is None:
            container[attr] = copy.deepcopy(op["value"])
        else:
            container.setdefault(attr, {})[sub] = copy.deepcopy(op["value"])
        _drop_empty_extension(out, path)
    return out


def _locate(resource: dict[str, Any], path: str) -> tuple[dict[str, Any], str, str | None]:
    container = resource
    if path.startswith("urn:"):
        urn, _, path = path.rpartition(":")
        container = resource.setdefault(urn, {})
    attr, _, sub = path.partition(".")
    return container, attr, sub or None


def _drop_empty_extension(resource: dict[str, Any], path: str) -> None:
    if path.startswith("urn:"):
        urn = path.rpartition(":")[0]
        if resource.get(urn) == {}:
            del resource[urn]


def _unquote(literal: str) -> str:
    import json

    value: str = json.loads(literal)  # a JSON string literal
    return value
