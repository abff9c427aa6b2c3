"""Tests for PatchOp computation, chunking and the reference applier (replicator.pipeline.patch)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from replicator.pipeline.canonical import GROUP, USER, canonicalise, encode, same
from replicator.pipeline.patch import (
    apply_operations,
    chunk_requests,
    compute_operations,
)
from replicator.pipeline.value_order import sort_values
from replicator.scim.urns import ENTERPRISE_USER
from replicator.scim.urns import PATCH_OP as PATCH_SCHEMA

MEMBER_PREFIX = "members[value eq "

# -- strategies -----------------------------------------------------------------------------------

# small alphabets so that old and new often share (and sometimes differ in) values
_TEXT = st.sampled_from(["a", "b", "c", "", "Ünï", 'q"uote'])
_IDS = st.sampled_from(["u1", "u2", "u3", "g1", 'we"ird', "back\\slash", "sp ace", "ü-id", ""])

_NAME = st.fixed_dictionaries(
    {},
    optional={"givenName": _TEXT, "familyName": _TEXT, "middleName": _TEXT, "formatted": _TEXT},
)
_EMAIL = st.fixed_dictionaries(
    {"value": _TEXT}, optional={"type": st.sampled_from(["work", "home"]), "primary": st.booleans()}
)
_ENTERPRISE = st.fixed_dictionaries(
    {},
    optional={
        "department": _TEXT,
        "costCenter": _TEXT,
        "employeeNumber": _TEXT,
        "manager": st.fixed_dictionaries({"value": _IDS}),
    },
)
_USER = st.fixed_dictionaries(
    {"userName": st.sampled_from(["alice", "bob"])},
    optional={
        "displayName": _TEXT,
        "nickName": _TEXT,
        "title": _TEXT,
        "active": st.booleans(),
        "name": _NAME,
        "emails": st.lists(_EMAIL, max_size=3),
        "roles": st.lists(_TEXT, max_size=3),
        ENTERPRISE_USER: _ENTERPRISE,
    },
)
_MEMBERS = st.lists(_IDS, max_size=6, unique=True).map(lambda ids: [{"value": i} for i in ids])
_GROUP = st.fixed_dictionaries(
    {"displayName": st.sampled_from(["Admins", "Staff"])},
    optional={"externalId": _TEXT, "members": _MEMBERS},
)


def _normalised(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource with its member list in canonical order (apply_operations appends additions)."""
    out = dict(resource)
    if "members" in out:
        out["members"] = sort_values(out["members"])
    return out


def _check_round_trip(old: dict[str, Any], new: dict[str, Any], **kwargs: Any) -> list[dict[str, Any]]:
    ops = compute_operations(old, new, **kwargs)
    for op in ops:
        assert op["op"] in ("add", "remove", "replace")
        assert isinstance(op["path"], str) and op["path"]
        assert ("value" in op) == (op["op"] != "remove")
    # multi-valued attributes compare as sets (a reordering alone is no change, and no operation)
    assert same(_normalised(apply_operations(old, ops)), new)
    return ops


# -- round-trip properties ----------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(_USER, _USER)
def test_operations_turn_old_user_into_new_user(old_raw: dict[str, Any], new_raw: dict[str, Any]) -> None:
    """Applying compute_operations(old, new) to a canonical User gives exactly the new canonical User."""
    old, new = canonicalise(old_raw, USER), canonicalise(new_raw, USER)
    _check_round_trip(old, new)


@settings(max_examples=200, deadline=None)
@given(_GROUP, _GROUP)
def test_operations_turn_old_group_into_new_group(old_raw: dict[str, Any], new_raw: dict[str, Any]) -> None:
    """Applying compute_operations(old, new) to a canonical Group gives exactly the new canonical Group."""
    old, new = canonicalise(old_raw, GROUP), canonicalise(new_raw, GROUP)
    ops = _check_round_trip(old, new)
    # members never travel as a whole-list replace
    assert not any(op["path"] == "members" and op["op"] != "add" for op in ops)


@settings(max_examples=100, deadline=None)
@given(_GROUP, _GROUP)
def test_all_members_removable_is_the_same_as_overwrite(old_raw: dict[str, Any], new_raw: dict[str, Any]) -> None:
    """A removable set holding every current member gives the same operations as None (overwrite)."""
    old, new = canonicalise(old_raw, GROUP), canonicalise(new_raw, GROUP)
    everyone = {m["value"] for m in old.get("members", [])}
    assert compute_operations(old, new, removable_members=everyone) == compute_operations(old, new)


@settings(max_examples=150, deadline=None)
@given(st.one_of(_USER.map(lambda r: canonicalise(r, USER)), _GROUP.map(lambda r: canonicalise(r, GROUP))))
def test_no_operations_between_equal_forms(resource: dict[str, Any]) -> None:
    """compute_operations(x, x) is empty."""
    assert compute_operations(resource, resource) == []
    assert apply_operations(resource, []) == resource


# -- individual operations ----------------------------------------------------------------------


def test_removed_attribute_gives_remove_operation() -> None:
    """An attribute gone from the desired form is removed by its name."""
    ops = compute_operations({"userName": "a", "title": "Boss"}, {"userName": "a"})
    assert ops == [{"op": "remove", "path": "title"}]


def test_changed_simple_attribute_gives_replace() -> None:
    """A changed simple attribute is replaced with its new value."""
    ops = compute_operations({"userName": "a", "title": "Boss"}, {"userName": "a", "title": "Chief"})
    assert ops == [{"op": "replace", "path": "title", "value": "Chief"}]


def test_removed_sub_attribute_gives_dotted_remove() -> None:
    """A sub-attribute gone from a complex attribute is removed by its `attr.sub` path."""
    old = {"userName": "a", "name": {"givenName": "Al", "familyName": "Smith"}}
    new = {"userName": "a", "name": {"familyName": "Smith"}}
    assert compute_operations(old, new) == [{"op": "remove", "path": "name.givenName"}]


def test_changed_sub_attribute_replaces_only_changed_parts() -> None:
    """A changed complex attribute changes by sub-attribute paths: a server that replaces `name` whole
    on a replace of `name` cannot lose the parts that did not change."""
    old = {"name": {"givenName": "Al", "familyName": "Smith", "middleName": "Q"}}
    new = {"name": {"givenName": "Alan", "familyName": "Smith"}}
    ops = compute_operations(old, new)
    assert {"op": "remove", "path": "name.middleName"} in ops
    assert {"op": "replace", "path": "name.givenName", "value": "Alan"} in ops
    assert len(ops) == 2
    assert apply_operations(old, ops) == new


def test_multi_valued_attribute_is_replaced_whole() -> None:
    """A changed multi-valued attribute is replaced with the whole new list."""
    old = {"emails": [{"value": "a@x"}]}
    new = {"emails": [{"value": "a@x"}, {"value": "b@x", "type": "work"}]}
    assert compute_operations(old, new) == [{"op": "replace", "path": "emails", "value": new["emails"]}]


def test_changed_extension_attribute_uses_urn_path() -> None:
    """An extension attribute is addressed as `urn:...:User:attr`."""
    old = {"userName": "a", ENTERPRISE_USER: {"department": "R&D", "costCenter": "1"}}
    new = {"userName": "a", ENTERPRISE_USER: {"department": "Sales", "costCenter": "1"}}
    assert compute_operations(old, new) == [
        {"op": "replace", "path": f"{ENTERPRISE_USER}:department", "value": "Sales"}
    ]


def test_changed_manager_uses_urn_path() -> None:
    """A changed manager is replaced whole at `urn:...:User:manager` (no `urn:...:2.0:User:manager.value`
    path, which some servers split at the dot of `2.0`), and applies back."""
    old = {"userName": "a", ENTERPRISE_USER: {"manager": {"value": "m1"}}}
    new = {"userName": "a", ENTERPRISE_USER: {"manager": {"value": "m2"}}}
    ops = compute_operations(old, new)
    assert ops == [{"op": "replace", "path": f"{ENTERPRISE_USER}:manager", "value": {"value": "m2"}}]
    assert apply_operations(old, ops) == new


def test_changed_extension_complex_attribute_is_replaced_whole_after_removal_when_parts_vanish() -> None:
    """An extension's complex attribute that lost a sub-attribute is removed, then set whole: right on
    servers that merge a replace and on servers that replace whole."""
    old = {ENTERPRISE_USER: {"manager": {"value": "m1", "note": "x"}}}
    new = {ENTERPRISE_USER: {"manager": {"value": "m1"}}}
    ops = compute_operations(old, new)
    assert ops == [{"op": "remove", "path": f"{ENTERPRISE_USER}:manager"},
                   {"op": "replace", "path": f"{ENTERPRISE_USER}:manager", "value": {"value": "m1"}}]
    assert apply_operations(old, ops) == new


def test_removed_extension_attribute_uses_urn_path() -> None:
    """An extension attribute gone from the desired form is removed by its `urn:...:attr` path."""
    old = {"userName": "a", ENTERPRISE_USER: {"department": "R&D", "costCenter": "1"}}
    new = {"userName": "a", ENTERPRISE_USER: {"costCenter": "1"}}
    assert compute_operations(old, new) == [{"op": "remove", "path": f"{ENTERPRISE_USER}:department"}]


def test_whole_extension_added_and_removed_by_attribute_paths() -> None:
    """A new extension is set attribute by attribute; a vanished one is removed attribute by attribute."""
    bare = {"userName": "a"}
    full = {"userName": "a", ENTERPRISE_USER: {"department": "R&D", "manager": {"value": "m"}}}
    added = compute_operations(bare, full)
    assert sorted(op["path"] for op in added) == [f"{ENTERPRISE_USER}:department", f"{ENTERPRISE_USER}:manager"]
    assert all(op["op"] == "replace" for op in added)
    removed = compute_operations(full, bare)
    assert sorted(op["path"] for op in removed) == [f"{ENTERPRISE_USER}:department", f"{ENTERPRISE_USER}:manager"]
    assert all(op["op"] == "remove" for op in removed)
    assert apply_operations(bare, added) == full
    assert apply_operations(full, removed) == bare


def _removed_ids(ops: list[dict[str, Any]]) -> list[str]:
    out = []
    for op in ops:
        if op["op"] == "remove" and op["path"].startswith(MEMBER_PREFIX):
            assert op["path"].endswith("]")
            out.append(json.loads(op["path"][len(MEMBER_PREFIX) : -1]))
    return out


def test_members_change_by_delta_only() -> None:
    """Members are added (only the new ones) and removed by filter, never replaced whole."""
    old = {"displayName": "G", "members": [{"value": "a"}, {"value": "b"}, {"value": "c"}]}
    new = {"displayName": "G", "members": [{"value": "b"}, {"value": "c"}, {"value": "d"}, {"value": "e"}]}
    ops = compute_operations(old, new)
    adds = [op for op in ops if op["op"] == "add"]
    assert adds == [{"op": "add", "path": "members", "value": [{"value": "d"}, {"value": "e"}]}]
    assert [op for op in ops if op["op"] == "remove"] == [{"op": "remove", "path": 'members[value eq "a"]'}]
    assert len(ops) == 2


def test_member_id_with_quote_and_backslash_is_quoted() -> None:
    """A member id holding `"` and `\\` is quoted as a JSON string inside the remove filter."""
    tricky = 'we"ird\\id]'
    old = {"members": [{"value": tricky}, {"value": "plain"}]}
    new = {"members": [{"value": "plain"}]}
    ops = compute_operations(old, new)
    assert len(ops) == 1
    assert ops[0]["path"] == 'members[value eq "we\\"ird\\\\id]"]'
    assert _removed_ids(ops) == [tricky]
    assert apply_operations(old, ops) == new


def test_removable_members_limits_removals_in_merge_mode() -> None:
    """With a removable set only those members are removed; others not in desired stay."""
    old = {"members": [{"value": "managed"}, {"value": "foreign"}, {"value": "kept"}]}
    new = {"members": [{"value": "kept"}, {"value": "new"}]}
    ops = compute_operations(old, new, removable_members={"managed", "kept"})
    assert _removed_ids(ops) == ["managed"]
    assert [op["value"] for op in ops if op["op"] == "add"] == [[{"value": "new"}]]


def test_removable_members_empty_set_removes_nothing() -> None:
    """An empty removable set (adoption in merge mode) removes no member at all."""
    old = {"members": [{"value": "x"}, {"value": "y"}]}
    new = {"members": [{"value": "z"}]}
    ops = compute_operations(old, new, removable_members=set())
    assert _removed_ids(ops) == []
    assert ops == [{"op": "add", "path": "members", "value": [{"value": "z"}]}]


def test_removable_members_none_removes_all_missing() -> None:
    """With None (overwrite) every member missing from desired is removed."""
    old = {"members": [{"value": "x"}, {"value": "y"}, {"value": "z"}]}
    new = {"members": [{"value": "y"}]}
    ops = compute_operations(old, new, removable_members=None)
    assert sorted(_removed_ids(ops)) == ["x", "z"]
    assert apply_operations(old, ops) == new


def test_all_members_removed_when_desired_has_none() -> None:
    """A group whose members all left gets one remove per member and ends without `members`."""
    old = {"displayName": "G", "members": [{"value": "x"}, {"value": "y"}]}
    new = {"displayName": "G"}
    ops = compute_operations(old, new)
    assert sorted(_removed_ids(ops)) == ["x", "y"]
    assert apply_operations(old, ops) == new


# -- chunking -----------------------------------------------------------------------------------

_ATTRIBUTE_OPS = st.lists(
    st.one_of(
        st.builds(lambda p, v: {"op": "replace", "path": p, "value": v}, st.sampled_from(["title", "name"]), _TEXT),
        st.builds(lambda p: {"op": "remove", "path": p}, st.sampled_from(["nickName", "name.givenName"])),
        st.builds(lambda v: {"op": "replace", "path": f"{ENTERPRISE_USER}:department", "value": v}, _TEXT),
    ),
    max_size=4,
)
_MEMBER_OPS = st.lists(
    st.one_of(
        st.lists(st.text(min_size=1, max_size=3), min_size=1, max_size=12).map(
            lambda vs: {"op": "add", "path": "members", "value": [{"value": v} for v in vs]}
        ),
        st.text(min_size=1, max_size=3).map(
            lambda v: {"op": "remove", "path": f"members[value eq {json.dumps(v)}]"}
        ),
    ),
    max_size=8,
)


def _member_changes(op: dict[str, Any]) -> int:
    if op["path"] == "members" and op["op"] == "add":
        return len(op["value"])
    return 1 if op["path"].startswith("members[") else 0


def _key(op: dict[str, Any]) -> bytes:
    return encode(op)


@settings(max_examples=200, deadline=None)
@given(st.data(), _ATTRIBUTE_OPS, _MEMBER_OPS, st.integers(min_value=1, max_value=6))
def test_chunk_requests_bounds_member_changes_and_keeps_every_operation(
    data: st.DataObject, attribute_ops: list[dict[str, Any]], member_ops: list[dict[str, Any]], limit: int
) -> None:
    """No body exceeds the member limit, every op survives, attribute ops ride in the first body."""
    ops = data.draw(st.permutations(attribute_ops + member_ops))
    bodies = chunk_requests(ops, limit)
    if not ops:
        assert bodies == []
        return
    assert bodies
    for body in bodies:
        assert body["schemas"] == [PATCH_SCHEMA]
        assert body["Operations"], "no empty PATCH bodies"
        assert sum(_member_changes(op) for op in body["Operations"]) <= limit
    sent = [op for body in bodies for op in body["Operations"]]

    # attribute operations: all in the first body, none elsewhere, none lost or duplicated
    first_attrs = [op for op in bodies[0]["Operations"] if not _member_changes(op)]
    assert Counter(map(_key, first_attrs)) == Counter(map(_key, attribute_ops))
    assert all(_member_changes(op) for body in bodies[1:] for op in body["Operations"])

    # member removals: exactly the same multiset
    def removes(seq: list[dict[str, Any]]) -> Counter[bytes]:
        return Counter(_key(op) for op in seq if op["op"] == "remove" and op["path"].startswith("members["))

    assert removes(sent) == removes(ops)

    # member additions: the same values, possibly split across several add operations
    def added(seq: list[dict[str, Any]]) -> Counter[bytes]:
        return Counter(
            encode(value) for op in seq if op["op"] == "add" and op["path"] == "members" for value in op["value"]
        )

    assert added(sent) == added(ops)
    # split adds never carry an empty value list
    assert all(op["value"] for op in sent if op["op"] == "add")
    # nothing beyond what was asked
    assert sum(_member_changes(op) for op in sent) == sum(_member_changes(op) for op in ops)
    assert len(sent) >= len(ops)


def test_chunk_requests_splits_a_large_membership_change() -> None:
    """250 additions and 30 removals with a limit of 100 go in 3 bodies, the title in the first."""
    adds = {"op": "add", "path": "members", "value": [{"value": f"u{i}"} for i in range(250)]}
    removes = [{"op": "remove", "path": f'members[value eq "r{i}"]'} for i in range(30)]
    title = {"op": "replace", "path": "title", "value": "x"}
    bodies = chunk_requests([adds, *removes, title], 100)
    assert len(bodies) == 3
    assert title in bodies[0]["Operations"]
    assert [sum(_member_changes(op) for op in b["Operations"]) for b in bodies] == [100, 100, 80]


def test_chunk_requests_treats_limit_below_one_as_one() -> None:
    """A limit of 0 still makes progress: one member change per body."""
    adds = {"op": "add", "path": "members", "value": [{"value": "a"}, {"value": "b"}]}
    bodies = chunk_requests([adds], 0)
    assert len(bodies) == 2
    assert all(len(b["Operations"][0]["value"]) == 1 for b in bodies)


def test_chunk_requests_attribute_only_gives_one_body() -> None:
    """Without member changes everything travels in one body."""
    ops = [{"op": "replace", "path": "title", "value": "x"}, {"op": "remove", "path": "nickName"}]
    assert chunk_requests(ops, 1) == [{"schemas": [PATCH_SCHEMA], "Operations": ops}]
