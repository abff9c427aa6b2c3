"""scope.user_groups and scope.group_names name source groups case-insensitively (RFC 7643 8.7.1: a Group's
displayName is caseExact false), and every message keeps the spelling configured."""

from __future__ import annotations

from typing import Any

from replicator.pipeline.canonical import GROUP, USER
from replicator.pipeline.filter_eval import compile_filter
from replicator.pipeline.scope import distinct_names, group_member_users, make_scope, missing_names_problem


def groups(*named: tuple[str, list[str]]) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """Source groups by id (g0, g1, ...), each (displayName, its user members)."""
    return {f"g{i}": (name, [{"value": user, "type": USER} for user in users]) for i, (name, users) in enumerate(named)}


def test_a_user_groups_name_in_another_case_takes_the_groups_members() -> None:
    """"all staff" names the source group "All Staff": its members are in scope and nothing is missing."""
    users, missing = group_member_users(groups(("All Staff", ["ann", "bob"]), ("Sales", ["cat"])), ["all staff"], nested=True)
    assert users == {"ann", "bob"} and missing == []


def test_a_name_takes_every_source_group_it_folds_to() -> None:
    """With source groups "Sales" and "SALES", the name "sales" takes the members of both."""
    users, missing = group_member_users(groups(("Sales", ["ann"]), ("SALES", ["bob"]), ("Other", ["cat"])), ["sales"], nested=False)
    assert users == {"ann", "bob"} and missing == []


def test_missing_user_groups_are_reported_once_as_first_configured() -> None:
    """Names the source lacks come back as configured; two spellings of one name are one missing name."""
    _, missing = group_member_users(groups(("Sales", ["ann"])), ["Help Desk", "help desk", "SALES", "Ops"], nested=True)
    assert missing == ["Help Desk", "Ops"]


def test_a_group_without_a_display_name_matches_no_name() -> None:
    """A source group without a displayName (None) is named by no name, "None" included; nested in a
    named group, its members still count."""
    nameless = {"g9": (None, [{"value": "cat", "type": USER}])}
    assert group_member_users(nameless, ["None", "none"], nested=True) == (set(), ["None"])
    staff = {"g0": ("Staff", [{"value": "ann", "type": USER}, {"value": "g9", "type": "Group"}]), **nameless}
    assert group_member_users(staff, ["staff"], nested=True) == ({"ann", "cat"}, [])


def test_distinct_names_keep_the_first_spelling() -> None:
    """A name configured twice in two cases is kept once, spelled as first written, in order."""
    assert distinct_names(["All Staff", "Sales", "all staff", "SALES", "Ops"]) == ("All Staff", "Sales", "Ops")


def test_a_group_names_entry_in_another_case_keeps_the_group_in_scope() -> None:
    """scope.group_names "provisioning users" lists the source group "Provisioning Users" (and only it)."""
    scope = make_scope(group_names=["provisioning users", "PROVISIONING USERS"])
    assert scope.group_names == frozenset({"provisioning users"})
    assert scope.exclusion(GROUP, {"displayName": "Provisioning Users"}) is None
    assert scope.listed_group_name("Provisioning Users") == "provisioning users"
    assert scope.exclusion(GROUP, {"displayName": "Sales"}) == "not listed in scope.group_names"
    assert scope.exclusion(GROUP, {}) == "not listed in scope.group_names"
    assert scope.listed_group_name(None) is None


def test_user_groups_messages_keep_the_configured_spelling() -> None:
    """Dry-run reasons name the scoping groups as configured, each name once."""
    scope = make_scope(user_groups=["provisioning users", "Provisioning Users"])
    scope.group_members = set()
    assert scope.user_groups == ("provisioning users",)
    assert scope.exclusion(USER, {"id": "u1"}) == "not a member of 'provisioning users'"
    assert scope.inclusion(USER) == "in scope: member of 'provisioning users'"


def test_the_closest_name_is_found_whatever_its_case() -> None:
    """A missing name is suggested the closest source name compared case-insensitively, in the source's spelling."""
    problem = missing_names_problem("scope.group_names", ["sals"], ["SALES", "Ops"])
    assert problem == "scope.group_names names groups the source does not have: 'sals' (did you mean 'SALES'?)"


COMPOSED, DECOMPOSED = "\u00c9quipe Paris", "e\u0301quipe paris"  # "Équipe Paris" / "équipe paris" as E + combining acute


def test_a_name_in_decomposed_unicode_names_the_group_as_a_filter_would() -> None:
    """A scope name typed decomposed matches the composed displayName in both settings, as the same
    name does in a SCIM filter (one fold: NFC, then case folding)."""
    assert compile_filter(f'displayName eq "{DECOMPOSED}"')({"displayName": COMPOSED})
    users, missing = group_member_users(groups((COMPOSED, ["ann"])), [DECOMPOSED], nested=True)
    assert users == {"ann"} and missing == []
    scope = make_scope(group_names=[DECOMPOSED, COMPOSED])
    assert scope.group_names == frozenset({DECOMPOSED})  # one name in two Unicode forms is one name
    assert scope.listed_group_name(COMPOSED) == DECOMPOSED
    assert scope.exclusion(GROUP, {"displayName": COMPOSED}) is None
