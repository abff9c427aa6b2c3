"""Tests for the canonical form, its digest, and the helpers around it (replicator.pipeline.canonical)."""

from __future__ import annotations

import copy
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from replicator.pipeline.canonical import (
    CORE_SCHEMAS,
    GROUP,
    USER,
    canonicalise,
    digest,
    encode,
    match_value,
    project,
    same,
    schemas_for,
)
from replicator.scim.urns import ENTERPRISE_USER

# -- what is dropped and what is kept -------------------------------------------------------------


def test_canonicalise_drops_server_owned_top_level_attributes() -> None:
    """id, meta, schemas and User.groups are not part of the canonical form of a User."""
    resource = {
        "id": "u-1",
        "meta": {"resourceType": "User", "version": 'W/"1"'},
        "schemas": [CORE_SCHEMAS[USER]],
        "groups": [{"value": "g-1", "display": "Admins"}],
        "userName": "alice",
        "active": True,
    }
    assert canonicalise(resource, USER) == {"userName": "alice", "active": True}


def test_canonicalise_keeps_an_attribute_named_groups_on_a_group() -> None:
    """`groups` is only server-owned on Users; on a Group an attribute of that name is kept."""
    resource = {"id": "g", "displayName": "Admins", "groups": [{"value": "x"}]}
    assert canonicalise(resource, GROUP) == {"displayName": "Admins", "groups": [{"value": "x"}]}


def test_canonicalise_drops_a_top_level_ref() -> None:
    """A `$ref` at the top level of a resource is dropped like every other `$ref`."""
    resource = {"userName": "bob", "$ref": "https://x/Users/1"}
    assert canonicalise(resource, USER) == {"userName": "bob"}
    assert canonicalise({"displayName": "g", "$ref": "https://x/Groups/1"}, GROUP) == {"displayName": "g"}


def test_canonicalise_drops_every_nested_ref() -> None:
    """`$ref` is removed inside complex attributes, list items and extensions alike."""
    resource = {
        "userName": "bob",
        "emails": [{"value": "b@x", "$ref": "https://x/e"}],
        "name": {"givenName": "Bob", "$ref": "https://x/n"},
        ENTERPRISE_USER: {"manager": {"value": "m-1", "$ref": "https://x/Users/m-1"}},
    }
    assert canonicalise(resource, USER) == {
        "userName": "bob",
        "emails": [{"value": "b@x"}],
        "name": {"givenName": "Bob"},
        ENTERPRISE_USER: {"manager": {"value": "m-1"}},
    }


def test_canonicalise_drops_member_display_and_ref_but_keeps_value_and_type() -> None:
    """members[].display and members[].$ref go; value and type stay; members are sorted and unique."""
    resource = {
        "displayName": "Admins",
        "members": [
            {"value": "u-2", "display": "Bob", "$ref": "https://x/Users/u-2", "type": "User"},
            {"value": "u-1", "display": "Alice"},
            {"value": "u-1", "display": "Alice again"},
            {"value": "", "display": "empty"},
        ],
    }
    out = canonicalise(resource, GROUP)
    assert set(out) == {"displayName", "members"}
    assert out["displayName"] == "Admins"
    assert sorted(out["members"], key=lambda m: m["value"]) == [{"value": "u-1"}, {"value": "u-2", "type": "User"}]
    # the order is deterministic: whatever order the server sent, the same list comes out
    assert canonicalise({**resource, "members": resource["members"][::-1]}, GROUP) == out


def test_canonicalise_drops_manager_display_name() -> None:
    """manager.displayName is read-only; only manager.value is replicated."""
    resource = {
        "userName": "carol",
        ENTERPRISE_USER: {
            "department": "R&D",
            "manager": {"value": "m-1", "displayName": "Boss"},
        },
    }
    assert canonicalise(resource, USER) == {
        "userName": "carol",
        ENTERPRISE_USER: {"department": "R&D", "manager": {"value": "m-1"}},
    }


def test_canonicalise_drops_manager_that_only_had_a_display_name() -> None:
    """A manager left with nothing but displayName disappears, and so does an extension left empty."""
    resource = {"userName": "dave", ENTERPRISE_USER: {"manager": {"displayName": "Boss"}}}
    assert canonicalise(resource, USER) == {"userName": "dave"}


def test_canonicalise_drops_empty_values_and_none() -> None:
    """Empty strings, lists, dicts and None are absent from the canonical form, at every level."""
    resource = {
        "userName": "erin",
        "nickName": "",
        "title": None,
        "emails": [],
        "addresses": [{}, {"street": ""}],
        "name": {"givenName": "", "familyName": None},
        "phoneNumbers": [{"value": "123", "type": ""}],
        ENTERPRISE_USER: {"department": ""},
    }
    assert canonicalise(resource, USER) == {
        "userName": "erin",
        "phoneNumbers": [{"value": "123"}],
    }


def test_canonicalise_drops_multi_valued_entries_whose_value_is_empty() -> None:
    """Some servers list a user without email as `emails: [{"value": "", "primary": true}]`; keeping
    `{"primary": true}` would send an email without address, which others refuse. Entries without a
    `value` sub-attribute at all (addresses) stay."""
    resource = {
        "userName": "erin",
        "emails": [{"value": "", "primary": True}, {"value": "e@example.com", "type": "work"}],
        "phoneNumbers": [{"value": None, "type": "work"}],
        "addresses": [{"locality": "Oslo", "primary": True}],
    }
    assert canonicalise(resource, USER) == {
        "userName": "erin",
        "emails": [{"value": "e@example.com", "type": "work"}],
        "addresses": [{"locality": "Oslo", "primary": True}],
    }


def test_canonicalise_keeps_falsy_non_empty_values() -> None:
    """False and 0 are real values, not empties: they are kept."""
    resource = {"userName": "f", "active": False, "x-count": 0, "emails": [{"value": "f@x", "primary": False}]}
    assert canonicalise(resource, USER) == {
        "userName": "f",
        "active": False,
        "x-count": 0,
        "emails": [{"value": "f@x", "primary": False}],
    }


def test_canonicalise_keeps_everything_else_and_orders_lists_primary_first() -> None:
    """Client-owned attributes are kept with their values; multi-valued attributes keep the source's
    order with the primary value first."""
    resource = {
        "userName": "gina",
        "externalId": "ext-7",
        "displayName": "Gina",
        "name": {"givenName": "Gina", "familyName": "G"},
        "emails": [{"value": "z@x", "type": "work"}, {"value": "a@x", "type": "home", "primary": True}],
        "roles": ["b", "a"],
        ENTERPRISE_USER: {"employeeNumber": "42", "costCenter": "CC"},
    }
    out = canonicalise(resource, USER)
    assert out["userName"] == "gina"
    assert out["externalId"] == "ext-7"
    assert out["displayName"] == "Gina"
    assert out["name"] == {"givenName": "Gina", "familyName": "G"}
    assert out["emails"] == [resource["emails"][1], resource["emails"][0]]
    assert out["roles"] == ["b", "a"]
    assert out[ENTERPRISE_USER] == {"employeeNumber": "42", "costCenter": "CC"}
    assert set(out) == set(resource)


def test_canonicalise_does_not_mutate_its_input() -> None:
    """The resource given to canonicalise is left as it was."""
    resource = {"id": "1", "userName": "h", "emails": [{"value": "b"}, {"value": "a", "$ref": "r"}]}
    before = copy.deepcopy(resource)
    canonicalise(resource, USER)
    assert resource == before


# -- digest properties ----------------------------------------------------------------------------

_KEYS = st.text(alphabet="abcdefgh", min_size=1, max_size=4).map(lambda s: "k" + s)
_LEAF = st.one_of(
    st.text(min_size=1, max_size=6),
    st.integers(min_value=-1000, max_value=1000),
    st.booleans(),
)
_SMALL_DICT = st.dictionaries(_KEYS, _LEAF, min_size=1, max_size=3)
# multi-valued attributes are sets (exact duplicates collapse), so generated lists hold distinct items
_VALUE = st.one_of(
    _LEAF,
    st.dictionaries(_KEYS, _LEAF, min_size=1, max_size=3),
    st.lists(_SMALL_DICT, min_size=1, max_size=4, unique_by=encode),
    st.lists(_LEAF, min_size=1, max_size=4, unique_by=encode),
)
_RESOURCES = st.dictionaries(_KEYS, _VALUE, min_size=1, max_size=6)


def _shuffled(value: Any, rng: random.Random) -> Any:
    """The same value with dict keys and list items in another order, at every level."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        items = [_shuffled(v, rng) for v in value]
        rng.shuffle(items)
        return items
    return value


def _leaf_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaf_paths(v, (*prefix, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaf_paths(v, (*prefix, i))]
    return [prefix]


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


def _set(value: Any, path: tuple[Any, ...], new: Any) -> None:
    for part in path[:-1]:
        value = value[part]
    value[path[-1]] = new


def _different(leaf: Any) -> Any:
    """A replicated value that is surely different from `leaf` (and encodes differently)."""
    if isinstance(leaf, bool):
        return not leaf
    if isinstance(leaf, int):
        return leaf + 1
    return leaf + "~"


@settings(max_examples=150, deadline=None)
@given(_RESOURCES, st.randoms(use_true_random=False))
def test_digest_ignores_key_order_and_list_order(resource: dict[str, Any], rng: random.Random) -> None:
    """Reordering dict keys (at every level) and list items does not change the digest."""
    a = canonicalise(resource, USER)
    b = canonicalise(_shuffled(resource, rng), USER)
    assert digest(a) == digest(b)
    assert same(a, b)


@settings(max_examples=150, deadline=None)
@given(_RESOURCES, st.data())
def test_digest_changes_when_any_replicated_leaf_changes(resource: dict[str, Any], data: st.DataObject) -> None:
    """Changing any single leaf value of a replicated attribute changes the digest."""
    paths = _leaf_paths(resource)
    path = data.draw(st.sampled_from(paths))
    mutated = copy.deepcopy(resource)
    _set(mutated, path, _different(_get(resource, path)))
    assert digest(canonicalise(mutated, USER)) != digest(canonicalise(resource, USER))


@settings(max_examples=100, deadline=None)
@given(_RESOURCES)
def test_digest_ignores_server_owned_attributes(resource: dict[str, Any]) -> None:
    """Adding id, meta, schemas and groups does not change the digest of a User."""
    noisy = {
        **resource,
        "id": "some-id",
        "meta": {"version": "W/\"9\""},
        "schemas": [CORE_SCHEMAS[USER]],
        "groups": [{"value": "g"}],
    }
    assert digest(canonicalise(noisy, USER)) == digest(canonicalise(resource, USER))


def test_digest_is_a_128_bit_hex_string() -> None:
    """The digest is 32 lowercase hex characters."""
    value = digest({"userName": "a"})
    assert len(value) == 32
    int(value, 16)
    assert value == value.lower()


# -- match_value ----------------------------------------------------------------------------------


def test_match_value_is_case_insensitive_on_attribute_names() -> None:
    """The attribute name is matched without regard to case."""
    canonical = {"userName": "alice"}
    assert match_value(canonical, "username") == "alice"
    assert match_value(canonical, "USERNAME") == "alice"


def test_match_value_follows_dotted_paths() -> None:
    """A dotted attribute reaches a sub-attribute, case-insensitively at each step."""
    canonical = {"name": {"givenName": "Alice"}, "externalId": "e1"}
    assert match_value(canonical, "name.givenName") == "Alice"
    assert match_value(canonical, "NAME.GIVENNAME") == "Alice"
    assert match_value(canonical, "externalId") == "e1"


def test_match_value_returns_none_for_missing_or_non_string() -> None:
    """Missing attributes, non-strings, empty strings and paths through non-dicts give None."""
    canonical = {"userName": "", "active": True, "name": {"givenName": "A"}, "emails": [{"value": "x"}]}
    assert match_value(canonical, "userName") is None
    assert match_value(canonical, "active") is None
    assert match_value(canonical, "name") is None
    assert match_value(canonical, "name.familyName") is None
    assert match_value(canonical, "emails.value") is None
    assert match_value(canonical, "nothing.here") is None


# -- schemas_for -------------------------------------------------------------------------------


def test_schemas_for_lists_core_schema_and_extensions_present() -> None:
    """The core schema comes first, then every extension URN the canonical form carries."""
    assert schemas_for({"userName": "a"}, USER) == [CORE_SCHEMAS[USER]]
    assert schemas_for({"userName": "a", ENTERPRISE_USER: {"department": "x"}}, USER) == [
        CORE_SCHEMAS[USER],
        ENTERPRISE_USER,
    ]
    other = "urn:example:ext:1.0:User"
    assert schemas_for({other: {"a": 1}, ENTERPRISE_USER: {"b": 2}}, USER) == [
        CORE_SCHEMAS[USER],
        *sorted([other, ENTERPRISE_USER]),
    ]
    assert schemas_for({"displayName": "g"}, GROUP) == [CORE_SCHEMAS[GROUP]]


# -- project --------------------------------------------------------------------------------------


def test_project_keeps_only_keys_present_in_some_template() -> None:
    """Keys of the live form that no template has are dropped; keys any template has are kept."""
    live = {"userName": "a", "title": "T", "nickName": "n", "serverOnly": "x"}
    desired = {"userName": "a"}
    previous = {"title": "old"}
    assert project(live, desired, previous) == {"userName": "a", "title": "T"}


def test_project_drops_server_added_sub_attributes() -> None:
    """Inside complex attributes only sub-attributes some template has are kept."""
    live = {"name": {"givenName": "A", "formatted": "A B (computed)"}, "serverAdded": {"x": 1}}
    desired = {"name": {"givenName": "A"}}
    assert project(live, desired) == {"name": {"givenName": "A"}}


def test_project_drops_server_added_keys_inside_list_items() -> None:
    """Keys of list items not present in any template's items are dropped; items left empty go."""
    live = {
        "emails": [
            {"value": "b@x", "type": "work", "display": "B"},
            {"value": "a@x", "primary": True, "display": "A"},
            {"display": "only server data"},
        ]
    }
    desired = {"emails": [{"value": "a@x", "primary": True}]}
    previous = {"emails": [{"value": "b@x", "type": "work"}]}
    assert project(live, desired, previous) == {
        "emails": [{"primary": True, "value": "a@x"}, {"type": "work", "value": "b@x"}]
    }


def test_project_keeps_a_live_value_of_another_shape() -> None:
    """When the template holds a different shape (string vs dict) the live value is kept as it is."""
    live = {"name": {"givenName": "A"}}
    assert project(live, {"name": "A"}) == {"name": {"givenName": "A"}}


def test_project_with_no_templates_is_empty() -> None:
    """With no template nothing is managed, so nothing is kept."""
    assert project({"userName": "a", "emails": [{"value": "x"}]}) == {}
