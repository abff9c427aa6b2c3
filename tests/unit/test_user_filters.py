"""The ids a PingOne userFilter names, and their translation: only the quoted ids change, every other
byte of the filter stays as it was, and an id without a counterpart is reported, never copied."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.pipeline.user_filters import (
    GROUP,
    POPULATION,
    USER,
    Reference,
    UserFilterError,
    named_ids,
    references,
    refusal,
    translated,
)

SRC_STAFF, DST_STAFF = "10000000-0000-0000-0000-000000000001", "a0000000-0000-0000-0000-00000000000a"
SRC_HR = "20000000-0000-0000-0000-000000000001"
POPULATIONS = {POPULATION: {SRC_STAFF: DST_STAFF}}


def test_population_ids_become_the_destinations_and_nothing_else_changes() -> None:
    text = f'(population.id eq "{SRC_STAFF}")  AND  title eq "population.id eq \\"{SRC_STAFF}\\""'
    result = translated(text, POPULATIONS)
    assert result.text == f'(population.id eq "{DST_STAFF}")  AND  title eq "population.id eq \\"{SRC_STAFF}\\""'
    assert result.untranslated == ()


def test_an_id_without_a_counterpart_is_reported_and_left_as_it_was() -> None:
    text = f'population.id eq "{SRC_STAFF}" or population.id eq "{SRC_HR}"'
    result = translated(text, POPULATIONS)
    assert result.text == f'population.id eq "{DST_STAFF}" or population.id eq "{SRC_HR}"'
    assert [(r.kind, r.value) for r in result.untranslated] == [(POPULATION, SRC_HR)]
    words = refusal(result.untranslated[0], side="destination", source_name="HR", wanted_name="People")
    assert words == (f'its userFilter names population id "{SRC_HR}" ("HR" on the source), and destination has '
                     'no population named "People", so the group is not written (a filter naming another '
                     "environment's id matches nobody)")


def test_part_of_an_id_is_never_translated() -> None:
    result = translated(f'population.id sw "{SRC_STAFF}"', POPULATIONS)
    assert result.text == f'population.id sw "{SRC_STAFF}"' and not result.untranslated[0].whole
    assert "compares population.id with sw" in refusal(result.untranslated[0], side="destination")


def test_group_and_user_ids_are_told_apart() -> None:
    text = 'memberOfGroups[ID eq "g1"] and Id ne "u1" and population.ID eq "p1" and name.id eq "x"'
    assert [(r.kind, r.value, r.op) for r in references(text)] == [
        (GROUP, "g1", "eq"), (USER, "u1", "ne"), (POPULATION, "p1", "eq")]
    # a kind left out of the tables is not this caller's to translate: neither changed nor reported
    result = translated(text, {GROUP: {"g1": "g9"}})
    assert result.text == text.replace('"g1"', '"g9"') and result.untranslated == ()
    assert named_ids('memberOfGroups[id eq "g1"] or memberOfGroups[id eq "g1"]', GROUP) == ["g1"]


def test_escaped_and_unicode_values_are_read_and_written_as_json() -> None:
    result = translated('population.id eq "\\u00e9t\\u00e9"', {POPULATION: {"été": 'a"b'}})
    assert result.text == 'population.id eq "a\\"b"'


def test_an_unreadable_filter_is_an_error() -> None:
    with pytest.raises(UserFilterError):
        references('title eq "unterminated')
    assert named_ids('title eq "unterminated', GROUP) == []


@given(st.lists(st.sampled_from(['title eq "a b"', f'population.id eq "{SRC_STAFF}"', "(", ")", " and ", " or ",
                                 f'memberOfGroups[id eq "{SRC_HR}"]', "enabled eq true", "  "]), max_size=12))
def test_without_a_counterpart_to_use_a_filter_comes_back_byte_identical(parts: list[str]) -> None:
    text = " ".join(parts)
    result = translated(text, {POPULATION: {}, GROUP: {}})
    assert result.text == text
    assert all(isinstance(r, Reference) for r in result.untranslated)
    assert len(result.untranslated) == text.count("population.id") + text.count("memberOfGroups")
