"""The guards on removals, pure: the guard on objects (`removal_guard`: a kind's removals in one cycle)
and the membership guard (`hold_member_removals`: one group's member removals), and the membership
guard judged again once a cycle's removals are done (`member_hold_after_removals`), with the removals of
earlier cycles it asks about (`removed_lookups`) and how long they are remembered (`REMOVALS_REMEMBERED`,
`forgotten_removals`). No I/O.

`plan.py` asks them while planning; `replicator.cycle.removals` counts and carries out what they let
through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from replicator.config import SyncConfig
from replicator.pipeline.approvals import approved_removals
from replicator.pipeline.canonical import GROUP, KINDS, USER
from replicator.pipeline.value_order import sort_values

# How long a removal of ours (a destination object we deleted or disabled) is remembered for the groups
# of ours that may still name it (state.removed), when no cycle saw them lose it: a cycle that stopped
# before its member drops, or whose drop failed and whose group then lost the member in a write of its
# own, without a hold that would have asked. A group whose drop failed is tried again within the hour
# (`failure_backoff`) and by every --full, so a day would do while the destination works; 30 days also
# outlast an outage or a group that fails for weeks, after which its hold comes back and an operator
# decides, as before. Remembering longer costs rows, not memory (only held members are looked up); the
# risk is a destination that gives a removed object's id to an object not ours, whose removal from a
# group of ours the guard would then not count (ids our objects hold again are no removal: state.removed).
REMOVALS_REMEMBERED = 30 * 86_400.0


def names_gone(member: dict[str, Any], gone_users: set[str], gone_groups: set[str]) -> bool:
    """Whether a group's member names a destination object we removed (users' and groups' destination
    ids: deleted, or disabled users; this cycle, or an earlier one whose groups still name them): a
    member typed User only a user, typed Group only a group, an untyped one either (`plan_member_drop`
    takes such members out)."""
    value, kind = member["value"], member.get("type")
    if kind == USER:
        return value in gone_users
    if kind == GROUP:
        return value in gone_groups
    return value in gone_users or value in gone_groups


def member_values(canonical: dict[str, Any]) -> set[str]:
    """The values of a canonical group's members."""
    return {m["value"] for m in canonical.get("members", []) if isinstance(m, Mapping)}


def hold_member_removals(
    desired: dict[str, Any], before: dict[str, Any], removable: set[str] | None, policy: SyncConfig,
    leaving: frozenset[str] = frozenset(),
) -> tuple[dict[str, Any], int, str]:
    """The membership guard: (desired form, member removals held, why) for one group.

    `before` is the group as it stands (live, or as we last wrote it) and `removable` the member values
    we may remove (None: any). When the removals exceed `max_delete_count`, or are more than
    `max_delete_percent` of the group's members (ignored for 5 removals or fewer), they are held: the
    members stay in the desired form, so nothing removes them and the form recorded says they are
    there. Members whose own removal the guard on objects let through this cycle (`leaving`: their
    destination ids; they leave the groups we wrote with their removal) are not counted.
    `allow_member_removals` lifts it; `allow_mass_delete` (the guard on objects) does not."""
    desired, held, _, why = member_hold(desired, before, removable, policy, leaving)
    return desired, len(held), why


def member_hold(
    desired: dict[str, Any], before: dict[str, Any], removable: set[str] | None, policy: SyncConfig,
    leaving: frozenset[str],
) -> tuple[dict[str, Any], tuple[Any, ...], int, str]:
    """`hold_member_removals` with the members held (entries of the form returned) and the number of
    the group's members they were judged against (a Step carries both: `member_hold_after_removals`)."""
    if policy.allow_member_removals:
        return desired, (), 0, ""
    members = [m for m in before.get("members", ()) if isinstance(m, Mapping) and isinstance(m.get("value"), str)]
    wanted = member_values(desired)
    removed = [m for m in members if m["value"] not in wanted and m["value"] not in leaving
               and (removable is None or m["value"] in removable)]
    why = _too_many(removals=len(removed), tracked=len(members), seen=len(members), policy=policy, noun="members")
    if why is None:
        return desired, (), 0, ""
    kept = sort_values([*desired.get("members", ()), *removed])
    return {**desired, "members": kept}, tuple(removed), len(members), _held_why(len(removed), why, policy)


def _held_why(count: int, why: str, policy: SyncConfig) -> str:
    """The membership guard's reason for holding `count` removals of one group's members."""
    lift = ("; run with --allow-member-removals (sync.allow_member_removals) if this is intended (a daemon: "
            "`scim-replicator approve --members-up-to N`)")
    if policy.allow_mass_delete:
        lift += " (allow_mass_delete no longer lifts the membership guard)"
    return f"{count} member removals held: {why}{lift}"


def removed_lookups(held: Iterable[dict[str, Any]], gone_users: set[str], gone_groups: set[str]) -> dict[str, list[str]]:
    """Of member removals the membership guard held, the members' values to look for among the objects
    earlier cycles removed (state.removed), per kind: a member typed User among users, typed Group among
    groups, an untyped one among both; those naming an object this cycle removed are known already."""
    out: dict[str, dict[str, None]] = {kind: {} for kind in KINDS}
    for member in held:
        if names_gone(member, gone_users, gone_groups):
            continue
        kind = member.get("type")
        for asked in (kind,) if kind in KINDS else KINDS:
            out[str(asked)][member["value"]] = None
    return {kind: list(values) for kind, values in out.items()}


def forgotten_removals(considered: dict[str, set[str]], still_named: set[str]) -> dict[str, list[str]]:
    """Of the removals a cycle's member drops took into account (per kind, destination ids), those to
    forget: every group of ours naming them was found and lost them, but those whose drop failed or was
    not written (`still_named`: the values they still name), which a later cycle may still hold."""
    return {kind: [dest_id for dest_id in ids if dest_id not in still_named] for kind, ids in considered.items()}


def member_hold_after_removals(
    held: tuple[dict[str, Any], ...], among: int, *, gone_users: set[str], gone_groups: set[str], policy: SyncConfig,
) -> tuple[int, str] | None:
    """A group's member removals the membership guard held while it was planned, once this cycle's
    removals are done: None when they stand as they were; else (how many are still held, why).

    Groups are planned while the groups are read, before the groups' removals are judged, so the guard
    could not tell that some of the members it held were subgroups gone from the source (`leaving`
    tells it only of users), nor that some named objects an earlier cycle removed, whose drop from the
    group failed or was not written then. Members naming an object we removed (`gone_users`,
    `gone_groups`: destination ids, this cycle's and such earlier ones) go with it: `plan_member_drop`
    takes them out of the group, so they were not held. The rest were (the group kept them): judged
    alone, against the group without the members that went (`among - dropped`: what the next cycle
    judges them against), they may be under the guard's limits, and then the reason says so (the group
    is planned again next cycle, and loses them then)."""
    dropped = sum(1 for member in held if names_gone(member, gone_users, gone_groups))
    if not dropped:
        return None
    rest = len(held) - dropped
    if not rest:
        return 0, ""
    left = among - dropped
    why = _too_many(removals=rest, tracked=left, seen=left, policy=policy, noun="members")
    if why is not None:
        return rest, _held_why(rest, why, policy)
    judged = _too_many(removals=len(held), tracked=among, seen=among, policy=policy, noun="members")
    return rest, (f"{rest} member removals held: held with {dropped} removals of members we deleted, "
                  f"which went through ({judged}); alone they are not too many: the group is planned again "
                  "next cycle, and loses them then")


def removal_guard(*, removals: int, tracked: int, seen: int, policy: SyncConfig) -> str | None:
    """The guard on objects: why this cycle's removals of one kind must be held, or None when they may
    proceed (see `_too_many`). `allow_mass_delete` lifts it (not the membership guard)."""
    if policy.allow_mass_delete:
        return None
    return _too_many(removals=removals, tracked=tracked, seen=seen, policy=policy, noun="tracked")


def _too_many(*, removals: int, tracked: int, seen: int, policy: SyncConfig, noun: str) -> str | None:
    """Why these removals are too many, or None: an empty source while we track objects; more than
    `max_delete_count` removals; more than `max_delete_percent` of the tracked objects (ignored for 5
    removals or fewer). `noun` names what `tracked` counts, for the message. Under an operator's approval
    (`approved_removals`), removals held for their number or share go through when they are at most
    what it approved."""
    if removals == 0:
        return None
    if seen == 0 and tracked > 0:
        return f"the source returned no objects while {tracked} are tracked"
    why = None
    if removals > policy.max_delete_count:
        why = f"{removals} removals exceed sync.max_delete_count={policy.max_delete_count}"
    elif removals > 5 and (percent := 100.0 * removals / max(tracked, 1)) > policy.max_delete_percent:
        why = f"{removals} removals are {percent:.0f}% of {tracked} {noun}, over sync.max_delete_percent={policy.max_delete_percent:g}"
    approved = approved_removals(policy)
    if why is None or not approved:
        return why
    return None if removals <= approved else f"{why}, and more than the {approved} approved (`approve`)"


__all__ = [
    "REMOVALS_REMEMBERED",
    "forgotten_removals",
    "hold_member_removals",
    "member_hold",
    "member_hold_after_removals",
    "member_values",
    "names_gone",
    "removal_guard",
    "removed_lookups",
]
