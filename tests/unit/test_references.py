"""Tests for translating source references to destination ids (replicator.pipeline.references)."""

from __future__ import annotations

import copy

import pytest

from replicator.pipeline.canonical import GROUP, USER
from replicator.pipeline.references import TAKEN, required_kinds, translate, wrong_kind_note, wrong_kind_references
from replicator.scim.urns import ENTERPRISE_USER

USER_IDS = {"su1": "du1", "su2": "du2", "shared": "du-shared"}
GROUP_IDS = {"sg1": "dg1", "shared": "dg-shared"}


def _values(members: list[dict[str, str]]) -> list[str]:
    return sorted(m["value"] for m in members)


def test_members_with_user_type_use_user_ids() -> None:
    """A member typed User is looked up among users only."""
    group = {"displayName": "G", "members": [{"value": "shared", "type": "User"}, {"value": "su1", "type": "User"}]}
    out, unresolved = translate(group, GROUP, USER_IDS, GROUP_IDS)
    assert unresolved == []
    assert sorted(out["members"], key=lambda m: m["value"]) == [
        {"value": "du-shared", "type": "User"},
        {"value": "du1", "type": "User"},
    ]


def test_members_with_group_type_use_group_ids() -> None:
    """A member typed Group is looked up among groups only, even if a user has the same source id."""
    group = {"displayName": "G", "members": [{"value": "shared", "type": "Group"}, {"value": "sg1", "type": "Group"}]}
    out, unresolved = translate(group, GROUP, USER_IDS, GROUP_IDS)
    assert unresolved == []
    assert _values(out["members"]) == ["dg-shared", "dg1"]
    assert all(m["type"] == "Group" for m in out["members"])


def test_group_typed_member_known_only_as_user_is_unresolved() -> None:
    """A Group-typed member is not found through the user map."""
    group = {"displayName": "G", "members": [{"value": "su1", "type": "Group"}]}
    out, unresolved = translate(group, GROUP, USER_IDS, GROUP_IDS)
    assert unresolved == ["su1"]
    assert "members" not in out


def test_members_without_type_try_users_then_groups() -> None:
    """An untyped member is found among users first, then among groups."""
    group = {"displayName": "G", "members": [{"value": "su2"}, {"value": "sg1"}, {"value": "shared"}]}
    out, unresolved = translate(group, GROUP, USER_IDS, GROUP_IDS)
    assert unresolved == []
    assert _values(out["members"]) == ["dg1", "du-shared", "du2"]
    assert all("type" not in m for m in out["members"])


def test_unresolved_members_are_reported_and_dropped() -> None:
    """Members without a destination id are reported and left out of the translated form."""
    group = {
        "displayName": "G",
        "members": [{"value": "su1"}, {"value": "ghost-user", "type": "User"}, {"value": "ghost"}],
    }
    out, unresolved = translate(group, GROUP, USER_IDS, GROUP_IDS)
    assert sorted(unresolved) == ["ghost", "ghost-user"]
    assert out["members"] == [{"value": "du1"}]
    assert out["displayName"] == "G"


def test_group_with_only_unresolved_members_has_no_members() -> None:
    """If no member resolves, the translated form has no `members` attribute at all."""
    group = {"displayName": "G", "members": [{"value": "nobody"}]}
    out, unresolved = translate(group, GROUP, USER_IDS, GROUP_IDS)
    assert unresolved == ["nobody"]
    assert out == {"displayName": "G"}


def test_translated_members_are_in_canonical_order() -> None:
    """The translated member list is sorted, so the same input always gives the same digest."""
    a = {"displayName": "G", "members": [{"value": "su1"}, {"value": "su2"}]}
    b = {"displayName": "G", "members": [{"value": "su2"}, {"value": "su1"}]}
    assert translate(a, GROUP, USER_IDS, GROUP_IDS) == translate(b, GROUP, USER_IDS, GROUP_IDS)


def test_manager_value_is_translated() -> None:
    """The enterprise manager.value is mapped to the manager's destination id; the rest is kept."""
    user = {"userName": "a", ENTERPRISE_USER: {"department": "R&D", "manager": {"value": "su2"}}}
    out, unresolved = translate(user, USER, USER_IDS, GROUP_IDS)
    assert unresolved == []
    assert out == {"userName": "a", ENTERPRISE_USER: {"department": "R&D", "manager": {"value": "du2"}}}


def test_unresolved_manager_is_reported_and_dropped() -> None:
    """A manager with no destination id yet is reported and removed; other extension attributes stay."""
    user = {"userName": "a", ENTERPRISE_USER: {"department": "R&D", "manager": {"value": "nobody"}}}
    out, unresolved = translate(user, USER, USER_IDS, GROUP_IDS)
    assert unresolved == ["nobody"]
    assert out == {"userName": "a", ENTERPRISE_USER: {"department": "R&D"}}


def test_unresolved_manager_alone_drops_the_extension() -> None:
    """An extension left empty after dropping the manager is removed."""
    user = {"userName": "a", ENTERPRISE_USER: {"manager": {"value": "nobody"}}}
    out, unresolved = translate(user, USER, USER_IDS, GROUP_IDS)
    assert unresolved == ["nobody"]
    assert out == {"userName": "a"}


def test_manager_is_not_looked_up_among_groups() -> None:
    """A manager is a user: a group with that source id does not resolve it."""
    user = {"userName": "a", ENTERPRISE_USER: {"manager": {"value": "sg1"}}}
    out, unresolved = translate(user, USER, USER_IDS, GROUP_IDS)
    assert unresolved == ["sg1"]
    assert ENTERPRISE_USER not in out


def test_resource_without_references_is_unchanged() -> None:
    """A user without manager and a group without members come back as they were."""
    user = {"userName": "a", "emails": [{"value": "a@x"}]}
    group = {"displayName": "G"}
    assert translate(user, USER, USER_IDS, GROUP_IDS) == (user, [])
    assert translate(group, GROUP, USER_IDS, GROUP_IDS) == (group, [])


def test_translate_does_not_mutate_its_input() -> None:
    """The canonical form given to translate is left untouched."""
    user = {"userName": "a", ENTERPRISE_USER: {"manager": {"value": "nobody"}, "department": "x"}}
    group = {"displayName": "G", "members": [{"value": "su1"}, {"value": "nobody"}]}
    before = copy.deepcopy((user, group))
    translate(user, USER, USER_IDS, GROUP_IDS)
    translate(group, GROUP, USER_IDS, GROUP_IDS)
    assert (user, group) == before


def test_consume_takes_the_members_of_a_group_that_resolves_whole() -> None:
    """`consume`: a group whose every member resolves is translated as without it, and its canonical form
    gives its members up (memory), which then refuse to be read rather than read as none."""
    group = {"displayName": "G", "members": [{"value": "su2", "type": "User"}, {"value": "sg1", "type": "Group"},
                                             {"value": "su1"}]}
    expected = translate(copy.deepcopy(group), GROUP, USER_IDS, GROUP_IDS)
    assert translate(group, GROUP, USER_IDS, GROUP_IDS, consume=True) == expected
    assert group["members"] is TAKEN and group["displayName"] == "G"
    with pytest.raises(RuntimeError, match="taken"):
        list(group["members"])
    with pytest.raises(RuntimeError, match="taken"):
        len(group["members"])


def test_consume_leaves_a_group_with_an_unresolved_member_whole() -> None:
    """A group with a member that does not resolve keeps its members (it waits for them, or what it
    needs is read from them)."""
    group = {"displayName": "G", "members": [{"value": "su1"}, {"value": "nobody", "type": "User"}]}
    before = copy.deepcopy(group)
    out, unresolved = translate(group, GROUP, USER_IDS, GROUP_IDS, consume=True)
    assert (out["members"], unresolved) == ([{"value": "du1"}], ["nobody"])
    assert group == before


def test_wrong_kind_references_name_what_the_target_really_is() -> None:
    """A member typed User naming a group, typed Group naming a user, a manager naming a group are
    found; an untyped member and one of the right kind are not."""
    group_form = {"members": [{"value": "g1", "type": "User"}, {"value": "u1", "type": "Group"}, {"value": "x"}]}
    required = {("Group", "outer"): required_kinds(group_form, "Group", ["g1", "u1", "x"]),
                ("User", "bob"): required_kinds({}, "User", ["g1"])}
    unresolved = {("Group", "outer"): ("outer", ["g1", "u1", "x"]), ("User", "bob"): ("bob", ["g1"])}
    wrong = wrong_kind_references(unresolved, required, users={"u1", "x"}, groups={"g1"})
    assert wrong == {("Group", "outer"): ("outer", [("g1", "User", "Group"), ("u1", "Group", "User")]),
                     ("User", "bob"): ("bob", [("g1", "User", "Group")])}
    note = wrong_kind_note(wrong)
    assert note is not None and note.startswith("3 references name an object of another kind")
    assert "User bob -> 'g1' (a manager must be a User, names a Group)" in note
    assert wrong_kind_note({}) is None


def test_the_groups_a_pingone_userfilter_names_translate_like_members() -> None:
    """A dynamic group's userFilter names groups by id (memberOfGroups[id eq ...]): they are looked up,
    translated in place, and one without a destination id yet is unresolved (the filter keeps its source
    id, which the PingOne writer refuses), and must name a group."""
    from replicator.pipeline.pingone import GROUP_EXTENSION
    from replicator.pipeline.references import referenced_ids

    text = 'memberOfGroups[id eq "g1"] or (memberOfGroups[id eq "g2"] and title eq "memberOfGroups")'
    form = {"displayName": "Leads", GROUP_EXTENSION: {"description": "d", "userFilter": text},
            "members": [{"value": "g3", "type": "Group"}]}
    assert referenced_ids(form, GROUP) == ([], ["g3", "g1", "g2"])
    out, unresolved = translate(form, GROUP, {}, {"g1": "d1", "g3": "d3"})
    assert out[GROUP_EXTENSION] == {"description": "d", "userFilter": text.replace('"g1"', '"d1"')}
    assert out["members"] == [{"value": "d3", "type": "Group"}] and unresolved == ["g2"]
    assert form[GROUP_EXTENSION]["userFilter"] == text  # the source's form is not changed
    assert required_kinds(form, GROUP, unresolved) == {"g2": GROUP}
    plain = {"displayName": "Staff", GROUP_EXTENSION: {"userFilter": 'title eq "Staff"'}}
    assert translate(plain, GROUP, {}, {}) == (plain, []) and referenced_ids(plain, GROUP) == ([], [])
