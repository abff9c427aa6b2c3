"""Translation of references (group members, enterprise manager, the groups a PingOne dynamic group's
userFilter names) from source ids to destination ids.

Pure; no I/O. A reference whose target has no destination id yet is dropped from the translated form
and reported as unresolved, so that the caller can try again once the target exists; a userFilter
cannot drop a term, so one naming such a group keeps the source's id, which the PingOne writer refuses
to send (replicator/pingone/writing.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

from replicator.pipeline import user_filters
from replicator.pipeline.canonical import GROUP, USER
from replicator.pipeline.member import value_and_type, with_value
from replicator.pipeline.pingone import GROUP_EXTENSION
from replicator.pipeline.value_order import sort_members
from replicator.scim.urns import ENTERPRISE_USER


def translate(
    canonical: dict[str, Any],
    kind: str,
    user_ids: Mapping[str, str],
    group_ids: Mapping[str, str],
    *,
    consume: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """Return (destination form, unresolved source ids). `consume`: when every member resolves, the
    members are taken from `canonical` as they are translated (memory: a group of a million members is
    not held twice); its `members` is then `TAKEN`, which refuses to be read. Only for a canonical form
    that nothing reads again; one with unresolved members is left whole."""
    unresolved: list[str] = []
    out = dict(canonical)
    if kind == GROUP and "members" in canonical:
        source = canonical["members"]
        dests = [_lookup(member, user_ids, group_ids) for member in source]
        members = []
        if consume and None not in dests:
            canonical["members"] = TAKEN
            while source:
                members.append(with_value(source.pop(), dests.pop()))
        for member, dest in zip(source, dests, strict=True):
            if dest is None:
                unresolved.append(member["value"])
            else:
                members.append(with_value(member, dest))
        if members:
            out["members"] = sort_members(members)
        else:
            del out["members"]
    if kind == GROUP and (text := _user_filter(canonical)) is not None:
        translation = user_filters.translated(text, {user_filters.GROUP: group_ids})
        unresolved += [r.value for r in translation.untranslated if r.whole]
        out[GROUP_EXTENSION] = {**canonical[GROUP_EXTENSION], "userFilter": translation.text}
    elif kind == USER and isinstance(canonical.get(ENTERPRISE_USER), dict):
        extension = dict(canonical[ENTERPRISE_USER])
        manager = extension.get("manager")
        if isinstance(manager, dict) and isinstance(manager.get("value"), str):
            dest = user_ids.get(manager["value"])
            if dest is None:
                unresolved.append(manager["value"])
                del extension["manager"]
            else:
                extension["manager"] = {**manager, "value": dest}
        if extension:
            out[ENTERPRISE_USER] = extension
        else:
            del out[ENTERPRISE_USER]
    return out, unresolved


class _Taken:
    """The members of a canonical form that `translate(consume=True)` took: reading them is a bug (it
    would see a group without members), so it fails loudly."""

    def __iter__(self) -> Iterator[Any]:
        raise RuntimeError(_TAKEN_WORDS)

    def __len__(self) -> int:
        raise RuntimeError(_TAKEN_WORDS)


_TAKEN_WORDS = "a group's members were taken by translate(consume=True) and cannot be read again"

TAKEN = _Taken()


def _user_filter(canonical: dict[str, Any]) -> str | None:
    """A group form's PingOne userFilter (a dynamic group's, between two PingOne environments), when it
    names groups by id; else None."""
    extension = canonical.get(GROUP_EXTENSION)
    text = extension.get("userFilter") if isinstance(extension, dict) else None
    return text if isinstance(text, str) and user_filters.named_ids(text, user_filters.GROUP) else None


def translatable_in_chunks(canonical: dict[str, Any], kind: str, chunk: int) -> bool:
    """Whether a form's references may be looked up and translated `chunk` members at a time (each
    chunk a form of only those members, given to `translate`): a group of more members than `chunk`,
    whose members are all that it refers to (no userFilter)."""
    members = canonical.get("members") if kind == GROUP else None
    return type(members) is list and len(members) > chunk and _user_filter(canonical) is None


def all_resolve(members: list[dict[str, Any]], user_ids: Mapping[str, str], group_ids: Mapping[str, str]) -> bool:
    """Whether every one of these members has a destination id among these targets."""
    return all(_lookup(member, user_ids, group_ids) is not None for member in members)


def referenced_ids(canonical: dict[str, Any], kind: str) -> tuple[list[str], list[str]]:
    """(user source ids, group source ids) that `translate` may look up for this object."""
    users: list[str] = []
    groups: list[str] = []
    if kind == GROUP:
        for member in canonical.get("members", ()):
            value, member_kind = value_and_type(member)
            if member_kind != GROUP:
                users.append(value)
            if member_kind != USER:
                groups.append(value)
        if (text := _user_filter(canonical)) is not None:
            groups += user_filters.named_ids(text, user_filters.GROUP)
    elif kind == USER and isinstance(canonical.get(ENTERPRISE_USER), dict):
        manager = canonical[ENTERPRISE_USER].get("manager")
        if isinstance(manager, dict) and isinstance(manager.get("value"), str):
            users.append(manager["value"])
    return users, groups


def reference_values(form: dict[str, Any], kind: str) -> set[str]:
    """The ids a form refers to (its members' values, its manager's value)."""
    if kind == GROUP:
        return {member["value"] for member in form.get("members", ()) if isinstance(member.get("value"), str)}
    extension = form.get(ENTERPRISE_USER)
    manager = extension.get("manager") if isinstance(extension, dict) else None
    return {manager["value"]} if isinstance(manager, dict) and isinstance(manager.get("value"), str) else set()


def value_fragments(ids: set[str]) -> list[bytes]:
    """The JSON fragments (`"value":"<id>"`, as a stored canonical form spells them) that a form naming
    one of these ids as a member or a manager holds, in id order: what to look for in the state's
    written forms (a superset of the forms naming them: `reference_values` narrows it)."""
    return [b'"value":' + msgspec.json.encode(ref_id) for ref_id in sorted(ids)]


def _lookup(member: dict[str, Any], user_ids: Mapping[str, str], group_ids: Mapping[str, str]) -> str | None:
    value, kind = value_and_type(member)
    if kind == USER:
        return user_ids.get(value)
    if kind == GROUP:
        return group_ids.get(value)
    return user_ids.get(value) or group_ids.get(value)


def dropped_references_note(dropped: dict[tuple[str, str], tuple[str, list[str]]], *, examples: int = 3) -> str | None:
    """A note for references that name nothing the source has ((kind, source id) -> (label, the target
    ids)): how many, and a few of them by object and target; None when there are none."""
    if not dropped:
        return None
    count = sum(len(targets) for _, targets in dropped.values())
    shown = [f"{kind} {label or source_id} -> {', '.join(repr(t) for t in targets[:examples])}"
             for (kind, source_id), (label, targets) in sorted(dropped.items())[:examples]]
    more = f" and {len(dropped) - examples} more objects" if len(dropped) > examples else ""
    return (f"{count} references name objects the source does not have, and were not written: "
            + "; ".join(shown) + more)



def required_kinds(canonical: dict[str, Any], kind: str, values: list[str]) -> dict[str, str]:
    """Of these referenced values, the kind of object each must name: a member's `type` (when it has
    one), a manager a User."""
    wanted = set(values)
    if kind == USER:
        return {value: USER for value in wanted}
    named = user_filters.named_ids(text, user_filters.GROUP) if (text := _user_filter(canonical)) else []
    return {value: GROUP for value in named if value in wanted} | {
        member["value"]: member["type"] for member in canonical.get("members", ())
        if member.get("value") in wanted and member.get("type") in (USER, GROUP)}


WrongKind = dict[tuple[str, str], tuple[str, list[tuple[str, str, str]]]]


def wrong_kind_references(
    unresolved: Mapping[tuple[str, str], tuple[str, list[str]]], required: Mapping[tuple[str, str], dict[str, str]],
    users: set[str], groups: set[str],
) -> WrongKind:
    """References not written because they name an object of the other kind than they must ((kind,
    source id) -> (label, [(target, the kind required, the kind it names)])): a member typed User
    naming a group, typed Group naming a user, a manager naming a group. `users`, `groups`: the
    targets the source has of each kind."""
    out: WrongKind = {}
    for key, (label, targets) in unresolved.items():
        wrong = []
        for target in targets:
            must = required.get(key, {}).get(target)
            if must == USER and target in groups and target not in users:
                wrong.append((target, USER, GROUP))
            elif must == GROUP and target in users and target not in groups:
                wrong.append((target, GROUP, USER))
        if wrong:
            out[key] = (label, wrong)
    return out


def wrong_kind_note(wrong: WrongKind, *, examples: int = 3) -> str | None:
    """A note for references that name an object of another kind than they must: how many, and a few
    of them by object, target and kinds; None when there are none."""
    if not wrong:
        return None
    count = sum(len(targets) for _, targets in wrong.values())

    def why(kind: str, must: str, names: str) -> str:
        return f"a manager must be a {must}, names a {names}" if kind == USER else f"typed {must}, names a {names}"

    shown = [f"{kind} {label or source_id} -> " + ", ".join(f"{target!r} ({why(kind, must, names)})"
                                                            for target, must, names in targets[:examples])
             for (kind, source_id), (label, targets) in sorted(wrong.items())[:examples]]
    more = f" and {len(wrong) - examples} more objects" if len(wrong) > examples else ""
    return f"{count} references name an object of another kind than they must, and were not written: " + \
        "; ".join(shown) + more
