"""Decisions: what to do with one source object, or one object gone from the source. Pure; no I/O.

`plan_upsert` compares the desired destination form with what we last wrote (incremental) or with what
the destination really holds (full reconcile), and returns a Step. `plan_removal` decides between
DELETE and disable for an object that left the source. Nothing here touches the network or the disk.
The guards these plans ask are in removals.py (`hold_member_removals` and `removal_guard` are
exported from here too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from replicator.config import SyncConfig
from replicator.pipeline.canonical import GROUP, USER, digest, project
from replicator.pipeline.patch import Operation, compute_operations
from replicator.pipeline.removals import hold_member_removals, member_hold, member_values, names_gone, removal_guard
from replicator.scim.urns import ENTERPRISE_USER


class Action(StrEnum):
    """What a Step does; the value is what plans, reports and counts (`create_planned`) print."""

    CREATE = "create"
    PATCH = "patch"
    RECORD = "record"  # the destination already holds the desired form: only the state changes
    NOTHING = "nothing"
    SKIP = "skip"
    DELETE = "delete"
    DISABLE = "disable"


CREATE = Action.CREATE
PATCH = Action.PATCH
RECORD = Action.RECORD
NOTHING = Action.NOTHING
SKIP = Action.SKIP
DELETE = Action.DELETE
DISABLE = Action.DISABLE

RECREATE_REASON = "missing on the destination: re-creating"
ADOPT_REASON = "adopting an existing destination object"  # its writes count as the adoption, not as updates
# a PATCH adding the references of an object created this cycle without them (their targets were written
# after it): counted as its create, not as an update, as the dry-run plans it (one create, final body)
CREATE_REST_REASON = "the rest of its create: references written after it"


@dataclass(frozen=True)
class Stored:
    """What the state says about an object: its destination id and the form we last wrote there."""

    dest_id: str
    digest: str | None
    canonical: dict[str, Any] | None
    disabled: bool = False


@dataclass(frozen=True)
class Step:
    """One planned change to the destination."""

    action: Action
    kind: str
    source_id: str
    label: str
    desired: dict[str, Any] | None = None
    digest: str | None = None
    dest_id: str | None = None
    operations: list[Operation] = field(default_factory=list)
    reason: str = ""
    source_digest: str | None = None  # of the source object's bytes as read (recorded with the write)
    # the members whose removal the membership guard held: entries of `desired`, which keeps them (see
    # `hold_member_removals`); the group's members it judged them against; and why
    held: tuple[dict[str, Any], ...] = ()
    held_among: int = 0
    held_why: str = ""

    @property
    def writes(self) -> bool:
        return self.action in (CREATE, PATCH, DELETE, DISABLE)

    @property
    def held_members(self) -> int:
        """How many member removals the membership guard kept out of this step."""
        return len(self.held)


def plan_upsert(
    *,
    kind: str,
    source_id: str,
    label: str,
    desired: dict[str, Any],
    stored: Stored | None,
    live: dict[str, Any] | None,
    live_known: bool,
    policy: SyncConfig,
    desired_digest: str | None = None,
    source_digest: str | None = None,
    leaving: frozenset[str] = frozenset(),
) -> Step:
    """Plan one object present in the source.

    `live_known`: the destination was listed completely this cycle, so `live` (its canonical form, or
    None when absent) is the truth to compare with; otherwise we compare with what we last wrote.
    `source_digest` (of the source object as read) goes with a step that writes or records, unless the
    membership guard held member removals (then the next cycle plans the group again). `leaving`: the
    destination ids of the users whose own removal the guard on objects let through this cycle (gone
    from the source or out of scope): a group leaves them out of this write, rather than losing them
    in a second PATCH after their removal (`_without_leaving`), and the membership guard does not count
    them (`hold_member_removals`).
    """
    held: tuple[dict[str, Any], ...] = ()
    among, held_why = 0, ""
    if kind == GROUP and (departed := _without_leaving(desired, leaving)) is not None:
        # planned again next cycle while its source names them, as after a member drop
        desired, desired_digest, source_digest = departed, None, None
    if kind == GROUP and stored is not None and not (live_known and live is None):
        before = live if live_known and live is not None else (stored.canonical or {})
        removable = _removable_members(policy, stored.canonical or {}, before) if live_known else None
        desired, held, among, held_why = member_hold(desired, before, removable, policy, leaving)
    want = digest(desired) if held else desired_digest or digest(desired)
    recorded = None if held else source_digest
    base: dict[str, Any] = {"kind": kind, "source_id": source_id, "label": label, "desired": desired, "digest": want,
            "held": held, "held_among": among, "held_why": held_why}
    if stored is None:
        if not policy.create:
            return Step(SKIP, **base, reason="create is switched off")
        return Step(CREATE, **base, source_digest=recorded)
    if live_known and live is None:
        if not policy.create:
            return Step(SKIP, **base, dest_id=stored.dest_id, reason="missing on destination; create is off")
        return Step(CREATE, **base, reason=RECREATE_REASON, source_digest=recorded)
    if live_known and live is not None:
        previous = stored.canonical or {}
        current = project(live, desired, previous)
        removable = _removable_members(policy, previous, live)
        operations = compute_operations(current, desired, removable_members=removable)
        reason = "drift on the destination" if stored.digest == want else "changed in the source"
    else:
        if stored.digest == want and not stored.disabled:
            return Step(NOTHING, **base, dest_id=stored.dest_id)
        operations = compute_operations(stored.canonical or {}, desired)
        reason = "changed in the source"
    if stored.disabled and "active" not in desired:
        # we disabled it when it left the source; it is back, so it is active again
        operations = [op for op in operations if op["path"] != "active"]
        operations.append({"op": "replace", "path": "active", "value": True})
    if not operations:
        if stored.digest == want and not stored.disabled:
            return Step(NOTHING, **base, dest_id=stored.dest_id)
        return Step(RECORD, **base, dest_id=stored.dest_id, source_digest=recorded)
    if not policy.update:
        return Step(SKIP, **base, dest_id=stored.dest_id, reason="update is switched off")
    return Step(PATCH, **base, dest_id=stored.dest_id, operations=operations, reason=reason, source_digest=recorded)


def plan_adoption(
    *,
    step: Step,
    live: dict[str, Any],
    dest_id: str,
    policy: SyncConfig,
    previous: dict[str, Any] | None = None,
    reason: str = ADOPT_REASON,
    leaving: frozenset[str] = frozenset(),
) -> Step:
    """Plan a step against a live destination object: one we adopt, or one we must re-read.

    `previous` is the form we last wrote there (None for an adopted object: we manage nothing of
    it yet, so in `merge` mode none of its members is removed); `leaving` as for `plan_upsert`.
    """
    assert step.desired is not None
    desired, want = step.desired, step.digest
    held: tuple[dict[str, Any], ...] = ()
    among, held_why = 0, ""
    removable = _removable_members(policy, previous or {}, live)
    departed = _without_leaving(desired, leaving) if step.kind == GROUP else None
    if departed is not None:
        desired, want = departed, digest(departed)
    if step.kind == GROUP:
        desired, held, among, held_why = member_hold(desired, live, removable, policy, leaving)
        if held:
            want = digest(desired)
    current = project(live, desired, previous or {})
    operations = compute_operations(current, desired, removable_members=removable)
    return Step(
        PATCH if operations else RECORD,
        kind=step.kind,
        source_id=step.source_id,
        label=step.label,
        desired=desired,
        digest=want,
        dest_id=dest_id,
        operations=operations,
        reason=reason,
        source_digest=None if held or departed is not None else step.source_digest,
        held=held,
        held_among=among,
        held_why=held_why,
    )


def plan_removal(
    *, kind: str, source_id: str, stored: Stored, label: str, policy: SyncConfig
) -> Step:
    """Plan an object we manage that is no longer in the source."""
    base: dict[str, Any] = {"kind": kind, "source_id": source_id, "label": label, "dest_id": stored.dest_id}
    action = policy.remove_action if kind == USER else DELETE
    if action == DISABLE:
        if stored.disabled:
            return Step(NOTHING, **base)
        if not policy.disable:
            return Step(SKIP, **base, reason="disable is switched off")
        desired = {**(stored.canonical or {}), "active": False}
        return Step(
            DISABLE,
            **base,
            desired=desired,
            digest=digest(desired),
            operations=[{"op": "replace", "path": "active", "value": False}],
            reason="gone from the source",
        )
    if not policy.delete:
        return Step(SKIP, **base, reason="delete is switched off")
    return Step(DELETE, **base, reason="gone from the source")


def plan_member_drop(
    *, source_id: str, label: str, written: dict[str, Any], dest_id: str, gone_users: set[str],
    gone_groups: set[str],
) -> Step | None:
    """A group we wrote whose members include destination objects deleted this cycle: the PATCH that
    takes them out, or None. A member typed User or Group matches only deleted objects of its kind (some
    servers number users and groups apart, so a group "1" is not the user "1"); an untyped one any
    deleted id (ids are unique across kinds, RFC 7643 3.1). The step records no source digest, so that
    the group is planned again while its source still names them (some sources keep deleted users as
    members)."""
    members = written.get("members", [])
    kept = [member for member in members if not names_gone(member, gone_users, gone_groups)]
    if len(kept) == len(members):
        return None
    desired = {**written, "members": kept} if kept else {k: v for k, v in written.items() if k != "members"}
    return Step(PATCH, kind=GROUP, source_id=source_id, label=label, desired=desired, digest=digest(desired),
                dest_id=dest_id, operations=compute_operations(written, desired), reason="a member was removed")


def plan_manager_drop(*, source_id: str, label: str, written: dict[str, Any], dest_id: str,
                      gone_users: set[str]) -> Step | None:
    """A user we wrote whose manager is a destination user deleted this cycle: the PATCH that clears the
    manager, or None. Like a member drop, it records no source digest, so the user is planned again
    while its source still names that manager (and the reference is counted as dropped)."""
    extension = written.get(ENTERPRISE_USER)
    manager = extension.get("manager") if isinstance(extension, dict) else None
    if not isinstance(manager, dict) or manager.get("value") not in gone_users:
        return None
    assert isinstance(extension, dict)
    rest = {key: value for key, value in extension.items() if key != "manager"}
    desired = {key: value for key, value in written.items() if key != ENTERPRISE_USER}
    if rest:
        desired[ENTERPRISE_USER] = rest
    return Step(PATCH, kind=USER, source_id=source_id, label=label, desired=desired, digest=digest(desired),
                dest_id=dest_id, operations=compute_operations(written, desired), reason="its manager was removed")


def plan_reference_drop(kind: str, *, source_id: str, label: str, written: dict[str, Any], dest_id: str,
                        gone_users: set[str], gone_groups: set[str]) -> Step | None:
    """The PATCH that takes deleted objects out of what we wrote: a group's members, a user's manager."""
    if kind == GROUP:
        return plan_member_drop(source_id=source_id, label=label, written=written, dest_id=dest_id,
                                gone_users=gone_users, gone_groups=gone_groups)
    return plan_manager_drop(source_id=source_id, label=label, written=written, dest_id=dest_id,
                             gone_users=gone_users)


def names_leaving(desired: dict[str, Any], leaving: frozenset[str]) -> bool:
    """Whether a group's desired form names users that leave with their own removal this cycle."""
    return _without_leaving(desired, leaving) is not None


def _without_leaving(desired: dict[str, Any], leaving: frozenset[str]) -> dict[str, Any] | None:
    """A group's desired form without the members that leave with their own removal this cycle
    (`leaving`: users' destination ids; a member typed Group is not one of them), or None when it names
    none of them."""
    members = desired.get("members")
    if not leaving or not members:
        return None
    kept = [m for m in members if not (isinstance(m, Mapping) and m.get("type") != GROUP and m.get("value") in leaving)]
    if len(kept) == len(members):
        return None
    return {**desired, "members": kept} if kept else {k: v for k, v in desired.items() if k != "members"}


def _removable_members(policy: SyncConfig, previous: dict[str, Any], live: dict[str, Any]) -> set[str] | None:
    """Members a plan may remove (None: any). In `merge` mode: those we wrote, and `bulkId:` values,
    which only a Bulk request whose references the server did not resolve leaves behind."""
    if policy.membership == "overwrite":
        return None
    return member_values(previous) | {value for value in member_values(live) if value.startswith("bulkId:")}


def created_counter(step: Step) -> str:
    """The count a successful create adds to: a re-created object is counted apart."""
    return "recreated" if step.reason == RECREATE_REASON else "created"


def update_counter(step: Step) -> str | None:
    """The count a successful PATCH or disable adds to; None for the rest of an adoption or of a create
    made this cycle (counted as that)."""
    if step.action == RECORD or step.reason in (ADOPT_REASON, CREATE_REST_REASON):
        return None
    return "disabled" if step.action == DISABLE else "updated"


def label_of(canonical: dict[str, Any], kind: str) -> str:
    """A human name for logs and plans: userName or displayName."""
    key = "userName" if kind == USER else "displayName"
    value = canonical.get(key)
    return value if isinstance(value, str) else ""


__all__ = [
    "ADOPT_REASON",
    "CREATE",
    "CREATE_REST_REASON",
    "DELETE",
    "DISABLE",
    "GROUP",
    "NOTHING",
    "PATCH",
    "RECORD",
    "RECREATE_REASON",
    "SKIP",
    "USER",
    "Action",
    "Step",
    "Stored",
    "created_counter",
    "hold_member_removals",
    "label_of",
    "names_leaving",
    "plan_adoption",
    "plan_removal",
    "plan_upsert",
    "removal_guard",
    "update_counter",
]
