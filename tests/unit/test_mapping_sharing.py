"""Issue 18: `mapping.apply` copies only what its rules may edit. A group's members under group rules
that do not name them are shared with the canonical form, not copied; and for every rule, the result is
the one the former whole deep copy gave, with the input left untouched."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replicator.errors import ConfigError
from replicator.pipeline import mapping
from replicator.pipeline.mapping import Rules, apply, make_rules

CUSTOM_GROUP = "urn:example:params:scim:schemas:extension:custom:2.0:Group"
MOVED_GROUP = "urn:example:params:scim:schemas:extension:moved:2.0:Group"


def big_group(members: int = 1000) -> dict[str, Any]:
    return {
        "displayName": "All Staff",
        "externalId": "all-staff",
        "members": [{"value": f"u-{index}", "type": "User"} for index in range(members)],
        CUSTOM_GROUP: {"region": "eu", "costCenter": "42"},
    }


GROUP_RULES_NOT_NAMING_MEMBERS = {
    "rename": make_rules(rename={"externalId": f"{CUSTOM_GROUP}:sourceKey"}),
    "constants": make_rules(constants={f"{CUSTOM_GROUP}:origin": "replicator", "description": "synced"}),
    "exclude": make_rules(exclude=["externalId", f"{CUSTOM_GROUP}:costCenter"]),
    "include": make_rules(include=["displayName", "members", CUSTOM_GROUP]),
    "schema_urns": make_rules(schema_urns={CUSTOM_GROUP: MOVED_GROUP}),
    "all of them": make_rules(include=["displayName", "externalId", "members", CUSTOM_GROUP],
                              exclude=[f"{CUSTOM_GROUP}:costCenter"], schema_urns={CUSTOM_GROUP: MOVED_GROUP},
                              rename={"displayName": "description"}, constants={"externalId": "fixed"}),
}


@pytest.mark.parametrize("name", list(GROUP_RULES_NOT_NAMING_MEMBERS))
def test_members_are_shared_not_copied_under_rules_that_do_not_name_them(name: str) -> None:
    """The mapped group's members list, and each member dict, are the canonical form's own objects."""
    rules = GROUP_RULES_NOT_NAMING_MEMBERS[name]
    group = big_group()
    before = copy.deepcopy(group)
    mapped = apply(group, rules)
    assert mapped["members"] is group["members"]
    assert all(out is member for out, member in zip(mapped["members"], group["members"], strict=True))
    assert mapped == _before_issue_18(before, rules)  # the same result as the whole copy gave
    assert group == before  # and the input untouched


def test_rules_naming_members_still_reshape_them_and_leave_the_input_alone() -> None:
    """exclude `members.type`, include `members.value` and a rename of `members` change the members as
    before, and never the canonical form they came from."""
    for rules in (make_rules(exclude=["members.type"]), make_rules(include=["displayName", "members.value"]),
                  make_rules(rename={"members": f"{CUSTOM_GROUP}:members"})):
        group = big_group(3)
        before = copy.deepcopy(group)
        mapped = apply(group, rules)
        assert mapped == _before_issue_18(before, rules)
        assert group == before
    assert apply(big_group(2), make_rules(exclude=["members.type"]))["members"] == [{"value": "u-0"}, {"value": "u-1"}]


def _before_issue_18(canonical: dict[str, Any], rules: Rules) -> dict[str, Any]:
    """`apply` as it was before issue 18: a whole deep copy first, then the rules edit it in place."""
    if rules.empty:
        return canonical
    out = copy.deepcopy(canonical)
    if rules.include:
        out = mapping._keep(out, mapping._include_tree([mapping._split(out, path) for path in rules.include])) or {}
        out = copy.deepcopy(out)  # (its `_keep` deep-copied the parts kept whole)
    for path in rules.exclude:
        mapping._delete(out, mapping._split(out, path))
    for source, target in rules.schema_urns:
        if source in out:
            moved = out.pop(source)
            merged = out.setdefault(target, {})
            if isinstance(merged, dict) and isinstance(moved, dict):
                merged.update(moved)
    for source, target in rules.rename:
        value = mapping._get(out, source)
        if value is not None and mapping._settable(out, mapping._split(out, target)):
            mapping._delete(out, mapping._split(out, source))
            mapping._set(out, mapping._split(out, target), value)
    for target, value in rules.constants:
        if mapping._settable(out, mapping._split(out, target)):
            mapping._set(out, mapping._split(out, target), copy.deepcopy(value))
    pruned: dict[str, Any] = mapping._prune(out)
    return pruned


# -- a property: any rules over any form give what the whole copy gave, and leave the input as it was ---

PATHS = [
    "displayName", "DisplayName", "externalId", "title", "members", "Members", "members.value", "members.type",
    "members.display", "name", "name.givenName", "NAME.familyName", "emails", "emails.type", "emails.value",
    CUSTOM_GROUP, f"{CUSTOM_GROUP}:region", f"{CUSTOM_GROUP}:manager", f"{CUSTOM_GROUP}:manager.value",
    f"{CUSTOM_GROUP}:badges", f"{CUSTOM_GROUP}:badges.label", MOVED_GROUP, f"{MOVED_GROUP}:region",
    f"{MOVED_GROUP}:manager.value",
]
URNS = [CUSTOM_GROUP, MOVED_GROUP, "urn:example:other:2.0:Group"]

scalars = st.one_of(st.sampled_from(["a", "b", "", "x-1"]), st.booleans(), st.none())
values = st.fixed_dictionaries({"value": st.sampled_from(["v1", "v2", "v3"])},
                               optional={"type": st.sampled_from(["User", "Group", "work"]),
                                         "display": st.sampled_from(["d", ""]), "primary": st.booleans(),
                                         "label": st.sampled_from(["gold", "blue"])})
forms = st.fixed_dictionaries({}, optional={
    "displayName": scalars, "externalId": scalars, "title": scalars,
    "members": st.lists(values, max_size=4), "emails": st.lists(values, max_size=3),
    "name": st.fixed_dictionaries({}, optional={"givenName": scalars, "familyName": scalars}),
    CUSTOM_GROUP: st.fixed_dictionaries({}, optional={
        "region": scalars, "manager": st.fixed_dictionaries({}, optional={"value": scalars}),
        "badges": st.lists(values, max_size=3)}),
    MOVED_GROUP: st.fixed_dictionaries({}, optional={"region": scalars}),
})
constant_values = st.one_of(scalars, st.lists(st.sampled_from(["p", "q"]), max_size=2),
                            st.fixed_dictionaries({"value": st.just("c")}))


@st.composite
def rule_sets(draw: st.DrawFn) -> Rules:
    while True:
        try:
            return make_rules(
                include=draw(st.lists(st.sampled_from(PATHS), max_size=3)),
                exclude=draw(st.lists(st.sampled_from(PATHS), max_size=3)),
                rename=draw(st.dictionaries(st.sampled_from(PATHS), st.sampled_from(PATHS), max_size=2)),
                constants=draw(st.dictionaries(st.sampled_from(PATHS), constant_values, max_size=2)),
                schema_urns=draw(st.dictionaries(st.sampled_from(URNS), st.sampled_from(URNS), max_size=2)),
            )
        except ConfigError:  # a rename or constant into a core multi-valued attribute: refused at start
            continue


@settings(max_examples=400, deadline=None)
@given(form=forms, rules=rule_sets())
def test_apply_gives_what_the_whole_copy_gave_and_leaves_its_input_alone(form: dict[str, Any], rules: Rules) -> None:
    before = copy.deepcopy(form)
    assert apply(form, rules) == _before_issue_18(copy.deepcopy(form), rules)
    assert form == before
