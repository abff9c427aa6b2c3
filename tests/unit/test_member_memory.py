"""Tests for how group members are held while planned (issue 18, big groups in bounded memory): the member
sort gives `sort_values`' order and digest, and the members share their strings instead of copying them."""

from __future__ import annotations

import decimal
import hashlib
import json
import operator
import sys
import tracemalloc
import zlib
from collections.abc import Mapping
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import replicator.pipeline.canonical as canonical_module
from replicator.cycle.result import CycleResult
from replicator.deterministic_json import encoded_in_parts
from replicator.pipeline import mapping
from replicator.pipeline.canonical import (
    CANON_VERSION,
    GROUP,
    USER,
    canonicalise,
    comparable,
    decode_for_canonical,
    digest,
    digest_in_parts,
    encode,
)
from replicator.pipeline.member import COMPACT_FROM, Member
from replicator.pipeline.plan import PATCH, Step
from replicator.pipeline.references import translate
from replicator.pipeline.value_order import sort_members, sort_values
from replicator.report import report_json
from replicator.state.records import COMPRESSED_FROM, COMPRESSED_MARK, decode_form, encode_form

# values mixing plain ids with the characters that JSON escapes or that sort before a closing quote
_VALUES = st.one_of(st.uuids().map(str), st.text(min_size=0, max_size=6),
                    st.text(alphabet=' !"#\\aAé\u2028\x7f\x00', max_size=4))
_TYPES = st.one_of(st.none(), st.sampled_from(["User", "Group", "user", "Group!", "Gr\"oup", USER]))  # (plain strings, as decoded members hold them, and the Kind)
_MEMBER = st.builds(lambda value, kind: {"value": value} if kind is None else {"value": value, "type": kind},
                    _VALUES, _TYPES)
_ODD = st.fixed_dictionaries({"value": _VALUES}, optional={"display": st.text(max_size=3), "type": st.none()})
_MEMBERS = st.lists(st.one_of(_MEMBER, _ODD), max_size=40)


@settings(max_examples=300, deadline=None)
@given(_MEMBERS, st.randoms(use_true_random=False))
def test_sort_members_orders_and_deduplicates_as_sort_values(members: list[dict[str, Any]], rng: Any) -> None:
    """The member sort gives exactly sort_values' list (same encodings, same order), duplicates included."""
    members = members + [dict(m) for m in members[: len(members) // 3]]  # exact duplicates
    rng.shuffle(members)
    assert [encode(m) for m in sort_members(list(members))] == [encode(m) for m in sort_values(list(members))]


@settings(max_examples=300, deadline=None)
@given(_MEMBERS, st.lists(st.booleans(), max_size=40), st.randoms(use_true_random=False))
def test_sort_members_of_compact_members_orders_as_sort_values(members: list[dict[str, Any]], compact: list[bool],
                                                               rng: Any) -> None:
    """A big group's members (`Member`s, read by attribute), alone or mixed with dicts, are ordered and
    deduplicated exactly as sort_values orders them."""
    members = members + [dict(m) for m in members[: len(members) // 3]]
    as_member = [Member(type=m.get("type"), value=m["value"]) if len(m) == (1 if m.get("type") is None else 2)
                 and (compact[i] if i < len(compact) else True) else m for i, m in enumerate(members)]
    rng.shuffle(as_member)
    assert [encode(m) for m in sort_members(list(as_member))] == [encode(m) for m in sort_values(list(as_member))]


def test_sort_members_of_big_runs_finds_duplicates_and_escapes_across_runs() -> None:
    """Values are checked a run at a time: a duplicate straddling two runs is dropped, and a value JSON
    escapes far into the list still sends the list to sort_values' order."""
    from replicator.pipeline.value_order import _RUN

    values = [f"u{i:06d}" for i in range(_RUN + 10)]
    user = str(USER)  # (a plain string, as decoded members hold)
    members = [Member(type=user, value=v) for v in values] + [Member(type=user, value=values[_RUN - 1])]
    assert [m.value for m in sort_members(members)] == values  # (the pair sorts to the last of one run, the first of the next)
    escaped = [*members, Member(type=user, value=values[_RUN + 5][:-1] + '"')]  # (sorts into the second run)
    assert [encode(m) for m in sort_members(list(escaped))] == [encode(m) for m in sort_values(list(escaped))]
    assert sort_members([Member(value="b"), Member(value=7)]) == sort_values([Member(value="b"), Member(value=7)])  # type: ignore[arg-type]


def test_sort_members_leaves_values_that_are_not_plain_strings_to_sort_values() -> None:
    """Values of a str subclass, or that do not sort as strings do, are sort_values' to judge, as before:
    it refuses the first (msgspec cannot encode it), and orders the second by encoding."""

    class Named(str):
        pass

    with pytest.raises(TypeError):
        sort_values([{"value": Named("b")}, {"value": "a"}])
    with pytest.raises(TypeError):
        sort_members([{"value": Named("b")}, {"value": "a"}])
    with pytest.raises(TypeError):
        sort_members([Member(value=Named("b")), Member(value="a")])
    odd = [{"value": decimal.Decimal("NaN")}, {"value": decimal.Decimal(1)}]
    assert sort_members(list(odd)) == sort_values(list(odd))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.uuids().map(str), st.sampled_from([USER, GROUP, None])), max_size=30),
       st.randoms(use_true_random=False))
def test_translated_group_has_the_digest_of_the_old_sort(pairs: list[tuple[str, str | None]], rng: Any) -> None:
    """A group's canonical and translated forms (members in the member sort) hash as they did with sort_values,
    so a state recorded before the change makes no writes."""
    raw = [{"value": v, **({"type": t} if t else {})} for v, t in pairs]
    rng.shuffle(raw)
    canonical = canonicalise({"id": "g", "displayName": "G", "members": raw}, GROUP)
    ids = {v: "dest-" + v[::-1] for v, _ in pairs}
    desired, unresolved = translate(canonical, GROUP, ids, ids)
    assert not unresolved
    if desired.get("members"):
        old_desired = {**desired, "members": sort_values(list(desired["members"]))}
        assert encode(desired) == encode(old_desired)
        assert digest(desired) == digest(old_desired)


def test_canonical_members_share_one_type_string() -> None:
    """Members decoded from a page hold one `type` string between them, not a copy each."""
    decoded = [{"value": f"u{i}", "type": "".join(["Us", "er"])} for i in range(3)]  # distinct str objects
    assert decoded[0]["type"] is not decoded[1]["type"]
    members = canonicalise({"displayName": "G", "members": decoded}, GROUP)["members"]
    assert len({id(m["type"]) for m in members}) == 1


def test_sort_members_encodes_no_plain_member(monkeypatch: Any) -> None:
    """Members of plain ids are ordered without encoding any of them (no bytes per member held)."""
    import replicator.pipeline.value_order as value_order

    def refuse(value: Any) -> bytes:
        raise AssertionError("encoded a member")

    monkeypatch.setattr(value_order, "encode", refuse)
    members = [{"value": "b", "type": "User"}, {"value": "a"}, {"value": "a", "type": "User"},
               {"value": "c", "type": "Group"}, {"value": "b", "type": "User"}]
    assert sort_members(members) == [{"value": "c", "type": "Group"}, {"value": "a", "type": "User"},
                                     {"value": "b", "type": "User"}, {"value": "a"}]


def _whole_digest(form: dict[str, Any]) -> str:
    """The digest as it was computed before it was hashed in parts: the whole comparable form encoded."""
    return hashlib.blake2b(encode(comparable(form)), digest_size=16,
                           person=b"scimrep-v%d" % CANON_VERSION).hexdigest()


_OTHER = st.dictionaries(st.sampled_from(["displayName", "externalId", "a", "members2", "zz", "urn:x:Group"]),
                         st.one_of(st.text(alphabet='"members:[]ab\\', max_size=14),
                                   st.lists(st.text(max_size=3), min_size=1, max_size=3),
                                   st.fixed_dictionaries({"members": st.just([])})), max_size=4)


@settings(max_examples=300, deadline=None)
@given(_MEMBERS.filter(bool), _OTHER, st.integers(min_value=1, max_value=5))
def test_digest_in_parts_is_the_whole_digest(members: list[dict[str, Any]], other: dict[str, Any], chunk: int) -> None:
    """Hashing a group's members a chunk at a time gives the digest of the whole encoding, byte for byte,
    whatever the other attributes hold (even the text `"members":[]` or a nested empty `members`)."""
    form = {**other, "members": members}
    assert digest_in_parts(comparable(form), chunk) == _whole_digest(form)


def test_digest_of_a_big_group_is_the_whole_digest() -> None:
    """`digest` of a group above the chunk size (hashed in parts) is the digest recorded before."""
    form = {"displayName": "Everyone", "externalId": "e",
            "members": [{"value": f"user-{i:05d}", "type": USER} for i in range(2500)] + [{"value": "untyped"}]}
    assert digest(form) == _whole_digest(form)
    assert digest({**form, "members": form["members"][:-1]}) != digest(form)


@settings(max_examples=300, deadline=None)
@given(_MEMBERS, _OTHER, st.lists(st.integers(), max_size=8), st.integers(min_value=1, max_value=5))
def test_a_form_encoded_in_parts_is_its_whole_encoding(
        members: list[dict[str, Any]], other: dict[str, Any], numbers: list[int], chunk: int) -> None:
    """The parts of a form's encoding (its longest list a chunk at a time) join to its whole encoding, byte
    for byte, whichever of its lists is the longest and whatever the others hold."""
    form = {**other, "members": members, "numbers": numbers}
    parts = list(encoded_in_parts(form, chunk))
    assert b"".join(parts) == encode(form)
    if max(len(members), len(numbers)) > chunk and not any(type(v) is dict for v in other.values()):
        assert len(parts) > 2  # (in parts indeed: a head, the chunks, a tail)


def test_a_big_form_is_compressed_as_it_is_encoded() -> None:
    """A group form far past COMPRESSED_FROM is stored compressed without its whole JSON ever being held:
    the most memory its encoding takes at once is well below that JSON's size, and it decodes back whole."""
    form = {"displayName": "Everyone",
            "members": [{"value": f"{i:08d}-5d1c-4f5e-9a0b-{i * 7919 % 10**12:012d}", "type": USER} for i in range(40_000)]}
    whole = len(encode(form))
    assert whole > 4 * COMPRESSED_FROM
    tracemalloc.start()
    try:
        stored = encode_form(form)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stored[:1] == COMPRESSED_MARK and decode_form(stored) == form
    assert peak < whole / 2, (peak, whole)


def test_a_member_reads_compares_and_encodes_as_the_dict_it_stands_for() -> None:
    """A `Member` is read as the mapping {type, value} (type left out when it has none), equals that dict
    both ways, encodes to the same JSON, and costs a fraction of it."""
    typed, untyped = Member(type=USER, value="u1"), Member(value="x")
    as_dicts = [{"value": "u1", "type": USER}, {"value": "x"}]
    assert [typed, untyped] == as_dicts and as_dicts == [typed, untyped]
    assert [dict(typed), {**untyped}] == as_dicts and isinstance(typed, Mapping)
    assert (typed["value"], typed.get("type"), untyped.get("type"), "type" in untyped, len(untyped)) == ("u1", USER, None, False, 1)
    assert typed != {"value": "u1"} and untyped != {"value": "x", "type": None} and typed != Member(type=GROUP, value="u1")
    assert [operator.ne(typed, as_dicts[0]), operator.ne(as_dicts[1], untyped), operator.ne(typed, Member(type=USER, value="u1"))] == [False] * 3
    assert encode([typed, untyped]) == encode(as_dicts)
    assert sys.getsizeof(typed) * 4 < sys.getsizeof(as_dicts[0])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.uuids().map(str), st.text(min_size=1, max_size=4)), _TYPES), max_size=30))
def test_a_big_groups_members_are_decoded_compact_and_planned_as_dicts_would_be(
        pairs: list[tuple[str, str | None]]) -> None:
    """A group above COMPACT_FROM members is decoded with `Member`s: its canonical form, its digest, its
    member sort and its translation are those of the same group decoded with dicts, and its translated
    members are `Member`s too."""
    raw = msgspec.json.encode({"id": "g", "displayName": "G", "members": [
        {"value": v, "display": "d", **({"type": t} if t else {})} for v, t in pairs]})
    with_dicts = canonicalise(decode_for_canonical(raw, GROUP), GROUP)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(canonical_module, "COMPACT_FROM", 0)
        compact = canonicalise(decode_for_canonical(raw, GROUP), GROUP)
    assert all(type(m) is Member for m in compact.get("members", ()))
    assert compact == with_dicts and encode(compact) == encode(with_dicts) and digest(compact) == digest(with_dicts)
    ids = {v: "dest-" + v for v, _ in pairs}
    translated, _ = translate(compact, GROUP, ids, ids)
    assert translated == translate(with_dicts, GROUP, ids, ids)[0]
    assert all(type(m) is Member for m in translated.get("members", ()))


def test_a_big_groups_members_are_decoded_without_a_type_string_each() -> None:
    """Decoding a big group of "User" members holds little more at its peak than the members it keeps:
    each member is read with the one "User" string, not a string of its own made and let go."""
    members = [{"value": f"{index:036d}", "type": USER, "display": "d"} for index in range(COMPACT_FROM + 1)]
    raw = msgspec.json.encode({"id": "g", "displayName": "G", "members": members})
    tracemalloc.start()
    try:
        decoded = decode_for_canonical(raw, GROUP)
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert type(decoded["members"][0]) is Member and len({id(m.type) for m in decoded["members"]}) == 1
    assert peak < kept * 1.15, (peak, kept)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.uuids().map(str), st.text(min_size=1, max_size=4)), _TYPES), max_size=30),
       st.sampled_from([None, {"value": "x", "display": "extra key"}, {"value": 7}, {"type": 3, "value": "x"}]))
def test_a_big_stored_form_is_decoded_with_members_as_it_was_stored(
        pairs: list[tuple[str, str | None]], odd: dict[str, Any] | None) -> None:
    """A stored big group's form decodes equal to the form stored (and re-encodes to its bytes), its
    members `Member`s; a member of another shape (another key, a value or type not a string) keeps
    the whole list as it was written, as dicts."""
    members: list[Any] = sorted(({"value": v, **({"type": t} if t else {})} for v, t in pairs), key=encode)
    form = {"id": "g", "displayName": "G", "members": members + ([odd] if odd else [])}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("replicator.state.records.COMPRESSED_FROM", 0)
        patch.setattr("replicator.pipeline.member.COMPACT_FROM", 0)
        stored = encode_form(form)
        decoded = decode_form(stored)
    assert stored[:1] == COMPRESSED_MARK and decoded == form and encode(decoded) == encode(form)
    assert all(type(m) is (dict if odd else Member) for m in decoded["members"])


def test_a_big_stored_forms_members_cost_a_fraction_of_dicts() -> None:
    """A stored group of COMPACT_FROM + 1 "User" members is decoded with `Member`s sharing one type
    string: under half what the same form decoded with dicts holds."""
    form = {"id": "g", "displayName": "G", "members": [
        {"type": USER, "value": f"{index:036d}"} for index in range(COMPACT_FROM + 1)]}
    stored = encode_form(form)
    sizes = []
    for decode in (decode_form, lambda canon: msgspec.json.decode(zlib.decompress(canon))):
        tracemalloc.start()
        try:
            decoded = decode(stored)
            sizes.append(tracemalloc.get_traced_memory()[0])
        finally:
            tracemalloc.stop()
        assert decoded == form
    assert type(decode_form(stored)["members"][0]) is Member and sizes[0] < sizes[1] / 2, sizes


def test_the_compact_members_option_takes_effect(request: pytest.FixtureRequest) -> None:
    """Under `--compact-members` (a .ci/run step) a group of two members holds them as `Member`s;
    without it, as dicts."""
    raw = msgspec.json.encode({"id": "g", "displayName": "G", "members": [{"value": "a"}, {"value": "b", "type": USER}]})
    expected = Member if request.config.getoption("--compact-members") else dict
    assert [type(m) for m in decode_for_canonical(raw, GROUP)["members"]] == [expected, expected]


@pytest.mark.parametrize("rules", [{"include": ["displayName", "members.value"]}, {"exclude": ["members.type"]},
                                   {"include": ["displayName", "members"]}])
def test_mapping_rules_on_members_apply_to_compact_members_as_to_dicts(rules: dict[str, list[str]]) -> None:
    """Include and exclude rules naming a member's sub-attributes shape a big group's `Member`s as they
    shape dicts (they kept none of them, or ignored the rule, when they read only dicts)."""
    raw = msgspec.json.encode({"id": "g", "displayName": "G", "members": [
        {"value": "u1", "type": USER}, {"value": "g2", "type": GROUP}, {"value": "x"}]})
    with_dicts = mapping.apply(canonicalise(decode_for_canonical(raw, GROUP), GROUP), mapping.make_rules(**rules))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(canonical_module, "COMPACT_FROM", 0)
        compact_form = canonicalise(decode_for_canonical(raw, GROUP), GROUP)
    assert type(compact_form["members"][0]) is Member
    shaped = mapping.apply(compact_form, mapping.make_rules(**rules))
    assert shaped == with_dicts and encode(shaped) == encode(with_dicts) and len(shaped["members"]) == 3


def test_a_dry_runs_json_report_holds_a_big_groups_member_changes() -> None:
    """The JSON report (`--dry-run --output json`) of a PATCH adding `Member`s is plain JSON, the members
    as the dicts they stand for."""
    step = Step(PATCH, GROUP, "g", "G", {"displayName": "G"}, "changed", dest_id="d", operations=[
        {"op": "add", "path": "members", "value": [Member(type=USER, value="u1"), Member(value="u2")]}])
    report = json.loads(json.dumps(report_json(CycleResult(mode="full", dry_run=True, changes=[step]))))
    assert report["changes"][0]["operations"][0]["value"] == [{"type": USER, "value": "u1"}, {"value": "u2"}]
