"""Tests for the planning decisions (replicator.pipeline.plan)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from replicator.config import SyncConfig
from replicator.pipeline.canonical import GROUP, USER, canonicalise, digest, same
from replicator.pipeline.patch import apply_operations
from replicator.pipeline.plan import (
    CREATE,
    DELETE,
    DISABLE,
    NOTHING,
    PATCH,
    RECORD,
    SKIP,
    Step,
    Stored,
    label_of,
    plan_adoption,
    plan_member_drop,
    plan_removal,
    plan_upsert,
)
from replicator.pipeline.value_order import sort_values
from replicator.scim.urns import ENTERPRISE_USER

ALICE = {"userName": "alice", "displayName": "Alice", "title": "Engineer", "emails": [{"value": "a@x"}]}


def stored_for(canonical: dict[str, Any], *, dest_id: str = "d-1", disabled: bool = False) -> Stored:
    return Stored(dest_id=dest_id, digest=digest(canonical), canonical=canonical, disabled=disabled)


def upsert(
    desired: dict[str, Any],
    stored: Stored | None,
    *,
    kind: str = USER,
    live: dict[str, Any] | None = None,
    live_known: bool = False,
    policy: SyncConfig | None = None,
) -> Step:
    return plan_upsert(
        kind=kind,
        source_id="s-1",
        label=label_of(desired, kind),
        desired=desired,
        stored=stored,
        live=live,
        live_known=live_known,
        policy=policy or SyncConfig(),
    )


# -- plan_upsert, incremental ---------------------------------------------------------------------


def test_no_stored_row_creates() -> None:
    """An object we never wrote is created, with its desired form and digest."""
    step = upsert(ALICE, None)
    assert step.action == CREATE
    assert step.desired == ALICE
    assert step.digest == digest(ALICE)
    assert step.label == "alice"
    assert step.writes


def test_no_stored_row_skipped_when_create_is_off() -> None:
    """With sync.create false an unknown object is skipped, not created."""
    step = upsert(ALICE, None, policy=SyncConfig(create=False))
    assert step.action == SKIP
    assert not step.writes


def test_same_digest_does_nothing() -> None:
    """An object whose digest equals what we last wrote needs nothing."""
    step = upsert(dict(ALICE), stored_for(ALICE))
    assert step.action == NOTHING
    assert step.operations == []
    assert step.dest_id == "d-1"
    assert not step.writes


def test_changed_object_is_patched_with_operations() -> None:
    """A changed object is patched with exactly the operations from stored to desired."""
    desired = {**ALICE, "title": "Manager"}
    step = upsert(desired, stored_for(ALICE))
    assert step.action == PATCH
    assert step.dest_id == "d-1"
    assert step.operations == [{"op": "replace", "path": "title", "value": "Manager"}]
    assert step.digest == digest(desired)
    assert step.writes


def test_changed_object_skipped_when_update_is_off() -> None:
    """With sync.update false a changed object is skipped."""
    step = upsert({**ALICE, "title": "Manager"}, stored_for(ALICE), policy=SyncConfig(update=False))
    assert step.action == SKIP
    assert step.operations == []
    assert not step.writes


# -- plan_upsert, live reconcile ------------------------------------------------------------------


def test_live_with_only_server_added_attributes_needs_nothing() -> None:
    """Attributes the destination adds on its own are not drift."""
    live = {
        **ALICE,
        "active": True,
        "name": {"formatted": "Alice (computed)"},
        "emails": [{"value": "a@x", "display": "a@x", "primary": False}],
        "x-server-default": "on",
    }
    step = upsert(dict(ALICE), stored_for(ALICE), live=live, live_known=True)
    assert step.action == NOTHING
    assert step.operations == []


def test_live_edited_attribute_is_patched_as_drift() -> None:
    """An attribute edited on the destination is put back, with reason drift."""
    live = {**ALICE, "title": "Hacked"}
    step = upsert(dict(ALICE), stored_for(ALICE), live=live, live_known=True)
    assert step.action == PATCH
    assert step.operations == [{"op": "replace", "path": "title", "value": "Engineer"}]
    assert "drift" in step.reason


def test_live_removed_attribute_is_patched_back() -> None:
    """An attribute removed on the destination is set again."""
    live = {k: v for k, v in ALICE.items() if k != "title"}
    step = upsert(dict(ALICE), stored_for(ALICE), live=live, live_known=True)
    assert step.action == PATCH
    assert step.operations == [{"op": "replace", "path": "title", "value": "Engineer"}]


def test_live_missing_is_recreated() -> None:
    """An object we manage that is missing from a completely listed destination is created again."""
    step = upsert(dict(ALICE), stored_for(ALICE), live=None, live_known=True)
    assert step.action == CREATE
    assert step.desired == ALICE
    assert "re-creat" in step.reason


def test_live_missing_skipped_when_create_is_off() -> None:
    """With sync.create false a vanished destination object is not re-created."""
    step = upsert(dict(ALICE), stored_for(ALICE), live=None, live_known=True, policy=SyncConfig(create=False))
    assert step.action == SKIP


def test_live_unknown_falls_back_to_stored_form() -> None:
    """Without a complete listing (live_known false) a missing live form is not treated as absent."""
    step = upsert(dict(ALICE), stored_for(ALICE), live=None, live_known=False)
    assert step.action == NOTHING


def test_live_matching_desired_after_source_change_only_records() -> None:
    """When the destination already holds the new desired form, only the state changes (record)."""
    desired = {**ALICE, "title": "Manager"}
    step = upsert(desired, stored_for(ALICE), live=dict(desired), live_known=True)
    assert step.action == RECORD
    assert step.operations == []
    assert step.digest == digest(desired)


def test_live_merge_mode_keeps_foreign_members() -> None:
    """In merge mode, members someone else added on the destination are not removed."""
    previous = {"displayName": "G", "members": [{"value": "u1"}]}
    desired = {"displayName": "G", "members": [{"value": "u1"}, {"value": "u2"}]}
    live = {"displayName": "G", "members": [{"value": "u1"}, {"value": "foreign"}]}
    step = upsert(desired, stored_for(previous), kind=GROUP, live=live, live_known=True)
    assert step.action == PATCH
    assert step.operations == [{"op": "add", "path": "members", "value": [{"value": "u2"}]}]


def test_merge_mode_removes_unresolved_bulk_id_members() -> None:
    """A `bulkId:` member value (a Bulk reference the server stored as given) is never someone else's:
    merge mode removes it, also when adopting an object we wrote nothing of."""
    desired = {"displayName": "G", "members": [{"value": "u1"}]}
    live = {"displayName": "G", "members": [{"value": "bulkId:g1"}, {"value": "foreign"}, {"value": "u1"}]}
    step = upsert(desired, stored_for(desired), kind=GROUP, live=live, live_known=True)
    assert step.operations == [{"op": "remove", "path": 'members[value eq "bulkId:g1"]'}]
    adoption = plan_adoption(step=step, live=live, dest_id="d-1", policy=SyncConfig())
    assert adoption.operations == [{"op": "remove", "path": 'members[value eq "bulkId:g1"]'}]


def test_live_overwrite_mode_removes_foreign_members() -> None:
    """In overwrite mode, members not in the source are removed from the destination."""
    previous = {"displayName": "G", "members": [{"value": "u1"}]}
    desired = {"displayName": "G", "members": [{"value": "u1"}]}
    live = {"displayName": "G", "members": [{"value": "u1"}, {"value": "foreign"}]}
    step = upsert(
        desired, stored_for(previous), kind=GROUP, live=live, live_known=True, policy=SyncConfig(membership="overwrite")
    )
    assert step.action == PATCH
    assert step.operations == [{"op": "remove", "path": 'members[value eq "foreign"]'}]


# -- coming back after a disable ----------------------------------------------------------------


def test_disabled_object_coming_back_is_activated() -> None:
    """A stored row disabled by us whose object is back in the source is patched with active true."""
    disabled_form = {**ALICE, "active": False}
    stored = stored_for(disabled_form, disabled=True)
    step = upsert(dict(ALICE), stored)
    assert step.action == PATCH
    assert {"op": "replace", "path": "active", "value": True} in step.operations
    assert not any(op["op"] == "remove" and op["path"] == "active" for op in step.operations)


def test_disabled_object_coming_back_unchanged_digest_is_activated() -> None:
    """Even when the stored digest matches the desired form, a disabled row is re-activated."""
    stored = stored_for(ALICE, disabled=True)
    step = upsert(dict(ALICE), stored)
    assert step.action == PATCH
    assert step.operations == [{"op": "replace", "path": "active", "value": True}]


def test_disabled_object_coming_back_in_live_mode_is_activated() -> None:
    """In live mode too a disabled object back in the source gets active true."""
    disabled_form = {**ALICE, "active": False}
    stored = stored_for(disabled_form, disabled=True)
    step = upsert(dict(ALICE), stored, live=dict(disabled_form), live_known=True)
    assert step.action == PATCH
    assert {"op": "replace", "path": "active", "value": True} in step.operations
    assert [op for op in step.operations if op["path"] == "active"] == [
        {"op": "replace", "path": "active", "value": True}
    ]


def test_disabled_object_coming_back_inactive_in_source_keeps_source_value() -> None:
    """When the source itself carries active, that value is what gets written."""
    stored = stored_for({**ALICE, "active": False}, disabled=True)
    step = upsert({**ALICE, "active": True}, stored)
    assert step.action == PATCH
    assert [op for op in step.operations if op["path"] == "active"] == [
        {"op": "replace", "path": "active", "value": True}
    ]


# -- property: a recorded patch converges -----------------------------------------------------

_TEXT = st.sampled_from(["a", "b", "c", ""])
_USER = st.fixed_dictionaries(
    {"userName": st.sampled_from(["alice", "bob"])},
    optional={
        "title": _TEXT,
        "active": st.booleans(),
        "name": st.fixed_dictionaries({}, optional={"givenName": _TEXT, "familyName": _TEXT}),
        "emails": st.lists(st.fixed_dictionaries({"value": _TEXT}), max_size=3),
        ENTERPRISE_USER: st.fixed_dictionaries(
            {}, optional={"department": _TEXT, "manager": st.fixed_dictionaries({"value": _TEXT})}
        ),
    },
).map(lambda r: canonicalise(r, USER))
_GROUP = st.fixed_dictionaries(
    {"displayName": st.sampled_from(["G", "H"])},
    optional={
        "members": st.lists(st.sampled_from(["u1", "u2", 'q"3', "g\\4"]), unique=True, max_size=4).map(
            lambda ids: [{"value": i} for i in ids]
        )
    },
).map(lambda r: canonicalise(r, GROUP))
_PAIRS = st.one_of(
    st.tuples(st.just(USER), _USER, _USER),
    st.tuples(st.just(GROUP), _GROUP, _GROUP),
)


def _sorted_members(resource: dict[str, Any]) -> dict[str, Any]:
    if "members" in resource:
        return {**resource, "members": sort_values(resource["members"])}
    return resource


@settings(max_examples=150, deadline=None)
@given(_PAIRS, st.sampled_from(["merge", "overwrite"]))
def test_recorded_patch_then_replanning_needs_nothing(case: tuple[str, dict, dict], membership: str) -> None:
    """After a planned patch is applied and recorded, planning the same source again gives nothing."""
    kind, before, after = case
    policy = SyncConfig(membership=membership)
    stored = stored_for(before)
    step = upsert(after, stored, kind=kind, policy=policy)
    if step.action == NOTHING:
        assert digest(before) == digest(after)
        return
    assert step.action == PATCH
    written = _sorted_members(apply_operations(before, step.operations))
    assert same(written, after)  # (multi-valued attributes compare as sets: a reordering alone is no change)
    recorded = Stored(dest_id=stored.dest_id, digest=step.digest, canonical=written)
    assert upsert(after, recorded, kind=kind, policy=policy).action == NOTHING
    # a full reconcile against a destination that holds what we wrote also finds nothing to do
    again = upsert(after, recorded, kind=kind, live=written, live_known=True, policy=policy)
    assert again.action == NOTHING
    assert again.operations == []


@settings(max_examples=100, deadline=None)
@given(_PAIRS, st.sampled_from(["merge", "overwrite"]))
def test_live_patch_converges(case: tuple[str, dict, dict], membership: str) -> None:
    """A drift patch planned against a live form, once applied, leaves nothing to do."""
    kind, live, desired = case
    policy = SyncConfig(membership=membership)
    stored = stored_for(desired)
    step = upsert(desired, stored, kind=kind, live=live, live_known=True, policy=policy)
    assert step.action in (NOTHING, PATCH, RECORD)
    written = _sorted_members(apply_operations(live, step.operations))
    recorded = Stored(dest_id=stored.dest_id, digest=step.digest, canonical=desired)
    again = upsert(desired, recorded, kind=kind, live=written, live_known=True, policy=policy)
    assert again.action == NOTHING, again.operations


# -- plan_adoption ------------------------------------------------------------------------------


def test_adoption_patches_existing_object_without_removing_foreign_members() -> None:
    """Adopting a destination group in merge mode adds our members and removes no one."""
    desired = {"displayName": "G", "members": [{"value": "u1"}]}
    step = upsert(desired, None, kind=GROUP)
    live = {"displayName": "G", "members": [{"value": "foreign"}], "externalId": "x"}
    adopted = plan_adoption(step=step, live=live, dest_id="d-9", policy=SyncConfig())
    assert adopted.action == PATCH
    assert adopted.dest_id == "d-9"
    assert adopted.operations == [{"op": "add", "path": "members", "value": [{"value": "u1"}]}]


def test_adoption_of_identical_object_only_records() -> None:
    """Adopting a destination object that already matches needs no write."""
    step = upsert(dict(ALICE), None)
    adopted = plan_adoption(step=step, live={**ALICE, "id": "d-2"}, dest_id="d-2", policy=SyncConfig())
    assert adopted.action == RECORD
    assert not adopted.writes


# -- plan_removal -------------------------------------------------------------------------------


def removal(kind: str, policy: SyncConfig, *, disabled: bool = False) -> Step:
    return plan_removal(
        kind=kind, source_id="s-1", stored=stored_for(ALICE, disabled=disabled), label="alice", policy=policy
    )


def test_removal_deletes_by_default() -> None:
    """remove_action delete deletes the destination object."""
    step = removal(USER, SyncConfig(remove_action="delete"))
    assert step.action == DELETE
    assert step.dest_id == "d-1"
    assert step.writes


def test_removal_disables_when_asked() -> None:
    """remove_action disable patches active false instead of deleting."""
    step = removal(USER, SyncConfig(remove_action="disable"))
    assert step.action == DISABLE
    assert step.operations == [{"op": "replace", "path": "active", "value": False}]
    assert step.desired == {**ALICE, "active": False}
    assert step.digest == digest({**ALICE, "active": False})
    assert step.writes


def test_removal_of_already_disabled_does_nothing() -> None:
    """An object we already disabled is not disabled again."""
    step = removal(USER, SyncConfig(remove_action="disable"), disabled=True)
    assert step.action == NOTHING


def test_removal_disable_skipped_when_disable_is_off() -> None:
    """With sync.disable false a disable is skipped."""
    step = removal(USER, SyncConfig(remove_action="disable", disable=False))
    assert step.action == SKIP


def test_removal_skipped_when_delete_is_off() -> None:
    """With sync.delete false nothing is deleted."""
    assert removal(USER, SyncConfig(delete=False)).action == SKIP
    assert removal(GROUP, SyncConfig(delete=False)).action == SKIP
    assert removal(GROUP, SyncConfig(delete=False, remove_action="disable")).action == SKIP


def test_groups_are_deleted_not_disabled() -> None:
    """Groups have no `active`: with remove_action disable they are still deleted."""
    step = removal(GROUP, SyncConfig(remove_action="disable"))
    assert step.action == DELETE
    assert step.operations == []
    assert removal(GROUP, SyncConfig(remove_action="delete")).action == DELETE


def test_a_deleted_member_is_dropped_from_a_group_we_wrote() -> None:
    """The PATCH removes exactly the deleted members and records no source digest (the source may still
    name them); a group without them needs nothing, and a group left empty loses `members`. A typed
    member matches only deleted objects of its kind: servers that number users and groups apart have
    a user "d2" and a group "d2"."""
    written = {"displayName": "Team", "members": [{"value": "d1"}, {"value": "d2", "type": "User"}]}

    def drop(users: set[str], groups: set[str] = set()) -> Step | None:  # noqa: B006
        return plan_member_drop(source_id="g", label="Team", written=written, dest_id="G",
                                gone_users=users, gone_groups=groups)

    step = drop({"d2", "d9"})
    assert step is not None and step.action == PATCH and step.dest_id == "G" and step.source_digest is None
    assert step.operations == [{"op": "remove", "path": 'members[value eq "d2"]'}]
    assert step.desired == {"displayName": "Team", "members": [{"value": "d1"}]}
    assert drop({"d9"}) is None
    assert drop(set(), {"d2"}) is None  # the group "d2" was deleted, not the user "d2"
    emptied = drop({"d2"}, {"d1"})
    assert emptied is not None and emptied.desired == {"displayName": "Team"}


def test_a_manager_deleted_this_cycle_is_cleared_and_nothing_else() -> None:
    """plan_manager_drop clears a manager that names a deleted user (keeping the rest of the extension),
    records no source digest, and leaves a user whose manager is still there alone."""
    from replicator.pipeline.plan import plan_manager_drop
    from replicator.scim.urns import ENTERPRISE_USER

    written = {"userName": "x", ENTERPRISE_USER: {"manager": {"value": "D-boss"}, "department": "Ops"}}
    step = plan_manager_drop(source_id="s-x", label="x", written=written, dest_id="D-x", gone_users={"D-boss"})
    assert step is not None and step.action == PATCH and step.source_digest is None
    assert step.desired == {"userName": "x", ENTERPRISE_USER: {"department": "Ops"}}
    assert step.operations and all("manager" in op["path"] for op in step.operations)
    only = {"userName": "y", ENTERPRISE_USER: {"manager": {"value": "D-boss"}}}
    cleared = plan_manager_drop(source_id="s-y", label="y", written=only, dest_id="D-y", gone_users={"D-boss"})
    assert cleared is not None and cleared.desired == {"userName": "y"}
    assert plan_manager_drop(source_id="s-x", label="x", written=written, dest_id="D-x", gone_users={"D-other"}) is None
