"""A group decoded for its canonical form (`decode_for_canonical`): the same canonical form as from the
whole decoding, with the members decoded straight to their canonical dicts, which `canonicalise` keeps."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import example, given, settings
from hypothesis import strategies as st

from replicator.pipeline.canonical import GROUP, USER, canonical_member, canonicalise, decode_for_canonical
from replicator.pipeline.value_order import sort_members

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**12), st.sampled_from(["", "u1", "u2", "User", "Group"]),
                     st.text(max_size=6))
_member = st.one_of(
    st.fixed_dictionaries({}, optional={
        "value": _scalars, "type": _scalars, "display": _scalars, "$ref": _scalars,
        "Value": _scalars, "primary": st.booleans(),
    }),
    _scalars,
    st.lists(_scalars, max_size=2),
)
_groups = st.fixed_dictionaries(
    {"id": st.just("g1"), "displayName": st.text(max_size=5)},
    optional={"members": st.one_of(st.lists(_member, max_size=8), _scalars, st.dictionaries(st.text(max_size=3), _scalars)),
              "meta": st.fixed_dictionaries({"resourceType": st.just("Group")}),
              "externalId": _scalars},
)


@settings(max_examples=300, deadline=None)
@given(_groups)
@example({"id": "g1", "displayName": "G", "members": [{"value": "u1", "type": "User", "display": "A", "$ref": "x"},
                                                     {"value": 7}, {"value": "u1", "type": "Group"}, "u3", {"type": "User"}]})
def test_a_group_decoded_for_its_canonical_form_has_the_same_canonical_form(group: dict[str, Any]) -> None:
    """Whatever a group's members hold (objects of any attributes, numbers, strings, no list at all), its
    canonical form from `decode_for_canonical` is the one from the whole decoding."""
    raw = msgspec.json.encode(group)
    assert canonicalise(decode_for_canonical(raw, GROUP), GROUP) == canonicalise(msgspec.json.decode(raw), GROUP)


def test_a_users_decoding_is_the_whole_one() -> None:
    """A user is decoded whole (no attribute of it is read another way)."""
    raw = b'{"id":"1","userName":"a","emails":[{"value":"a@x","display":"A"}],"members":[{"value":"x","display":"d"}]}'
    assert decode_for_canonical(raw, USER) == msgspec.json.decode(raw)


def test_a_groups_members_are_decoded_to_the_canonical_dicts_canonicalise_keeps() -> None:
    """The members hold only what the canonical form keeps (no display, no $ref), and `canonicalise`
    keeps those very dicts rather than making a second set (memory: a group of a million members)."""
    raw = (b'{"id":"g","displayName":"G","members":[{"value":"u2","type":"User","display":"Bea","$ref":"https://s/Users/u2"},'
           b'{"value":"u1","type":"User","display":"Al"},{"value":""},{"value":12}]}')
    decoded = decode_for_canonical(raw, GROUP)
    assert decoded["members"] == [{"value": "u2", "type": "User"}, {"value": "u1", "type": "User"}, None, {"value": "12"}]
    canonical = canonicalise(decoded, GROUP)
    assert canonical["members"] == [{"type": "User", "value": "u1"}, {"type": "User", "value": "u2"}, {"value": "12"}]
    assert canonical["members"][0] is decoded["members"][1] and canonical["members"][1] is decoded["members"][0]


def test_members_that_are_not_all_objects_are_decoded_whole() -> None:
    """A members list holding something other than objects is decoded as it is (then canonicalised as ever)."""
    raw = b'{"id":"g","members":["u1",{"value":"u2","display":"B"}]}'
    assert decode_for_canonical(raw, GROUP)["members"] == ["u1", {"value": "u2", "display": "B"}]


def _members_as_before(members: list[Any]) -> list[dict[str, Any]]:
    """The members of a canonical form as the recipe spelled them before members were kept without a
    dict of them: one per value, the first, then sorted."""
    by_value: dict[str, dict[str, Any]] = {}
    for item in members:
        if isinstance(item, dict):
            member = canonical_member(item.get("value"), item.get("type"))
            if member is not None:
                by_value.setdefault(member["value"], member)
    return sort_members(list(by_value.values()))


@settings(max_examples=300, deadline=None)
@given(st.lists(_member, max_size=10))
@example([{"value": "u1", "type": "User"}, {"value": "u1", "type": "Group"}, {"value": "u1"}])
@example([{"value": "u1", "type": "User"}, {"value": "u1", "type": "User", "display": "A"}, {"value": 1}, {"value": "1"}])
def test_a_groups_members_are_one_per_value_the_first_as_ever(members: list[Any]) -> None:
    """Members repeating a value (of one type, or typed both User and Group) are one member, the first,
    as the canonical form has always had them (a changed recipe would rewrite every group's digest)."""
    assert canonicalise({"members": members}, GROUP).get("members", []) == _members_as_before(members)
