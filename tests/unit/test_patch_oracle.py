"""scim2-models' own PatchOp application as an independent oracle for `replicator.pipeline.patch`.

For random canonical (old, new) users and groups, the operations `compute_operations(old, new)` emits,
applied to `old` by scim2-models (`PatchOp[User[EnterpriseUser]].patch`, `PatchOp[Group].patch`),
give `new` (compared as canonical forms). What the generator leaves out, and why:
- attributes scim2-models validates by format (`locale`, `timezone`, `preferredLanguage`, `profileUrl`,
  `phoneNumbers`, `ims`, `photos`, `addresses`, `x509Certificates`) and attributes outside its schemas:
  their values would be refused by the model before any operation is applied;
- emails with more than one `primary: true`: scim2-models refuses the resource (RFC 7643 2.4: at most one);
- a user without `userName` and a group without `displayName` (required; canonical forms always have them);
- empty strings: not canonical (dropped by `canonicalise`);
- a member whose `type` alone changes: members are compared by value, and one id always refers to the
  same kind of object, so each generated id has one fixed `type` (or none).
Everything `compute_operations` emits is covered: plain, dotted (`name.givenName`), extension
(`urn:...:User:department`, `urn:...:User:manager`) paths, whole multi-valued replaces and
`members[value eq "..."]` removals with quotes, backslashes and non-ASCII in the ids.
"""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from scim2_models import EnterpriseUser, Group, PatchOp, User

from replicator.pipeline.canonical import CORE_SCHEMAS, ENTERPRISE_USER, GROUP, USER, canonicalise, same
from replicator.pipeline.patch import apply_operations, chunk_requests, compute_operations

ScimUser = User[EnterpriseUser]
TEXT = st.sampled_from(["a", "b", "Zoë", 'q"uote', "back\\slash", "sp ace", "日本"])
IDS = st.sampled_from(["u1", "u2", "u3", "g1", 'we"ird', "back\\slash", "sp ace", "ü-id", "a]b"])

NAME = st.fixed_dictionaries({}, optional={
    part: TEXT for part in ("givenName", "familyName", "middleName", "formatted", "honorificPrefix", "honorificSuffix")
})
EMAIL = st.fixed_dictionaries(
    {"value": st.sampled_from(["a@example.com", "b@example.org", "ü@example.net"])},
    optional={"type": st.sampled_from(["work", "home", "other"]), "primary": st.just(False), "display": TEXT},
)
ENTERPRISE = st.fixed_dictionaries({}, optional={
    **{key: TEXT for key in ("employeeNumber", "costCenter", "organization", "division", "department")},
    "manager": st.fixed_dictionaries({"value": IDS}),
})


@st.composite
def emails(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Work, home and other addresses, at most one of them primary."""
    items = draw(st.lists(EMAIL, max_size=3))
    if len(items) > 0 and draw(st.booleans()):
        items[draw(st.integers(0, len(items) - 1))]["primary"] = True
    return items


USERS = st.fixed_dictionaries(
    {"userName": TEXT},
    optional={
        "name": NAME, "displayName": TEXT, "nickName": TEXT, "title": TEXT, "userType": TEXT,
        "active": st.booleans(), "emails": emails(), ENTERPRISE_USER: ENTERPRISE,
    },
).map(lambda user: canonicalise(user, USER))
# a member's `type` is fixed by what its id refers to: members are compared by value (a change of
# `type` alone is no change of membership, and cannot happen for one id)
MEMBER_TYPES = {"u1": USER, "u2": USER, "g1": GROUP, 'we"ird': GROUP, "ü-id": USER}
MEMBERS = st.lists(IDS.map(lambda i: {"value": i, **({"type": MEMBER_TYPES[i]} if i in MEMBER_TYPES else {})}),
                   max_size=5, unique_by=lambda m: m["value"])
GROUPS = st.fixed_dictionaries({"displayName": TEXT}, optional={"members": MEMBERS}).map(
    lambda group: canonicalise(group, GROUP))


def scim2_models_apply(resource: dict[str, Any], operations: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """`resource` after scim2-models applies `operations` to it, as a canonical form."""
    model: Any = ScimUser if kind == USER else Group
    schemas = [CORE_SCHEMAS[kind], *([ENTERPRISE_USER] if ENTERPRISE_USER in resource else [])]
    instance = model.model_validate({"schemas": schemas, **resource})
    if operations:
        PatchOp[model].model_validate({"Operations": operations}).patch(instance)
    return canonicalise(instance.model_dump(), kind)


_EMAILS_REORDERED = ({"userName": "a", "emails": [{"value": "x@example.com"}, {"value": "y@example.com"}]},
                     {"userName": "a", "emails": [{"value": "y@example.com"}, {"value": "x@example.com"}]})


@settings(max_examples=300, deadline=None)
@given(old=USERS, new=USERS)
@example(*_EMAILS_REORDERED)
def test_user_operations_applied_by_scim2_models_give_the_new_user(old: dict[str, Any], new: dict[str, Any]) -> None:
    """The operations between two users, applied by scim2-models, turn the old user into the new one (the same
    data: the order of a multi-valued attribute's values is no change, so none is sent for it)."""
    assert same(scim2_models_apply(old, compute_operations(old, new), USER), new)


@settings(max_examples=300, deadline=None)
@given(old=GROUPS, new=GROUPS)
def test_group_operations_applied_by_scim2_models_give_the_new_group(old: dict[str, Any], new: dict[str, Any]) -> None:
    """The operations between two groups (member deltas by value filter), applied by scim2-models, give the new group."""
    assert scim2_models_apply(old, compute_operations(old, new), GROUP) == new


@settings(max_examples=200, deadline=None)
@given(old=GROUPS, new=GROUPS, removable=st.sets(IDS))
def test_merge_mode_agrees_with_the_reference_applier(old: dict[str, Any], new: dict[str, Any],
                                                     removable: set[str]) -> None:
    """With only some members removable (merge mode), scim2-models and apply_operations agree on the result."""
    operations = compute_operations(old, new, removable_members=removable)
    expected = canonicalise(apply_operations(old, operations), GROUP)
    assert scim2_models_apply(old, operations, GROUP) == expected


@settings(max_examples=200, deadline=None)
@given(old=GROUPS, new=GROUPS, max_members=st.integers(1, 3))
def test_chunked_bodies_applied_in_turn_give_the_new_group(old: dict[str, Any], new: dict[str, Any],
                                                          max_members: int) -> None:
    """The PATCH bodies of chunk_requests, applied one after the other by scim2-models, give the new group."""
    current = old
    for body in chunk_requests(compute_operations(old, new), max_members):
        current = scim2_models_apply(current, body["Operations"], GROUP)
    assert current == new
