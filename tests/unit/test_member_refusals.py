"""The pure decisions on a destination's answers about group members: which 400s are about members
(member_refusals.py: leave members out, shrink the member chunk) and which answered members are ours
under another value format (answers.py)."""

from __future__ import annotations

from typing import Any

from replicator.pipeline.answers import compare_answered_members, members_left_out, members_of_another_kind
from replicator.pipeline.member import Member
from replicator.pipeline.member_refusals import (
    PROBE_AFTER,
    LearnedLimit,
    MembersNotWritten,
    member_limit,
    member_refusal,
    missing_members,
    smaller_chunk,
    with_members_renamed,
)

USERS = [{"value": f"user-{i}", "type": "User"} for i in range(3)]
GROUPS = [{"value": f"group-{i}", "type": "Group"} for i in range(2)]


def test_a_refused_member_type_leaves_out_every_member_of_that_type() -> None:
    """`members.0.type` on a group member: all group members are refused, the users kept."""
    sent = GROUPS[:1] + USERS
    refusal = member_refusal("invalidValue", "members.0.type: Input should be 'User'", sent, 100)
    assert refusal is not None and refusal.chunk is None
    assert refusal.split(USERS + GROUPS) == (USERS, GROUPS)


def test_a_refused_member_path_on_its_value_leaves_out_that_member_only() -> None:
    """`members[2].value` names one member: only that one is refused, whatever its type."""
    refusal = member_refusal(None, "members[2].value: no such user", USERS, 100)
    assert refusal is not None and refusal.split(USERS) == (USERS[:2], [USERS[2]])


def test_member_values_named_in_the_detail_are_refused() -> None:
    """A detail naming a sent member's value ("member user-1 does not exist") refuses that member."""
    refusal = member_refusal("invalidValue", "member user-1 does not exist", USERS, 100)
    assert refusal is not None and refusal.refused_values == {"user-1"}


def test_groups_refused_as_members_without_a_path() -> None:
    """"groups cannot be members" with typed group members sent: the groups are refused."""
    refusal = member_refusal(None, "Groups cannot be members of a group", USERS + GROUPS, 100)
    assert refusal is not None and refusal.refused_type == "Group"
    assert member_refusal(None, "Groups cannot be members of a group", USERS, 100) is None


def test_a_member_count_limit_shrinks_the_chunk_to_the_number_named() -> None:
    """"at most 5" members: the chunk becomes 5; without a number it halves what was sent."""
    sent = [{"value": f"u{i}"} for i in range(12)]
    refusal = member_refusal("invalidValue", "too many members: a request may carry at most 5", sent, 12)
    assert refusal is not None and refusal.chunk == 5 and refusal.refused_values == frozenset()
    halved = member_refusal("tooMany", "too many members", sent, 100)
    assert halved is not None and halved.chunk == 6


def test_limits_read_from_details() -> None:
    """The number after a limit word; 0 for "too many" alone; None when no limit is spoken of."""
    assert member_limit(None, "Group exceeds the limit of 100 members") == 100
    assert member_limit(None, "more than 50 members in one request") == 50
    assert member_limit(None, "Too many members") == 0
    assert member_limit("tooMany", "members") == 0
    assert member_limit(None, "members.0.type: Input should be 'User'") is None


def test_the_smaller_chunk_always_sends_fewer() -> None:
    """A limit at or above what was sent halves it; one member sent has nothing smaller."""
    assert smaller_chunk(5, 12, 100) == 5
    assert smaller_chunk(100, 12, 100) == 6
    assert smaller_chunk(0, 12, 8) == 4
    assert smaller_chunk(5, 1, 100) is None


def test_a_400_not_about_members_is_left_alone() -> None:
    """A refusal of displayName, or one naming nothing we sent, is not about the members."""
    assert member_refusal("invalidValue", "displayName is required", USERS, 100) is None
    assert member_refusal("invalidValue", "members are invalid", USERS, 100) is None
    assert member_refusal("invalidValue", "members.7.type: Input should be 'User'", USERS, 100) is None
    assert member_refusal("invalidValue", "members.0.type", [], 100) is None


def test_members_not_written_summarise_and_leave_the_form() -> None:
    """The form loses the members not written (and `members` when none is left); the summary counts them."""
    not_written = MembersNotWritten()
    not_written.add(GROUPS, "groups refused")
    not_written.add(GROUPS[:1], "groups refused")
    form: dict[str, Any] = {"displayName": "team", "members": USERS[:1] + GROUPS}
    assert not_written.without_them(form) == {"displayName": "team", "members": USERS[:1]}
    assert not_written.without_them({"displayName": "t", "members": GROUPS}) == {"displayName": "t"}
    assert not_written.summary() == "2 member(s) not written (group-0, group-1): groups refused"


def test_answers_naming_members_another_way_are_recognised() -> None:
    """Ids in another case and a `$ref` ending in the id match; an empty answer leaves all out."""
    sent = [{"value": "abc-1"}, {"value": "abc-2"}]
    answer = {"members": [{"value": "ABC-1"}, {"value": "alice", "$ref": "https://x/v2/Users/abc-2"}]}
    assert members_left_out(sent, answer) == set()
    assert members_left_out(sent, {"members": []}) == {"abc-1", "abc-2"}
    assert members_left_out(sent, {"id": "g"}) == set()  # no members list: nothing known


def test_an_answer_by_user_names_cannot_tell_and_asks_for_a_re_read() -> None:
    """Members answered by userName match none sent: None (re-read), and the count covers them."""
    sent = [{"value": "abc-1"}, {"value": "abc-2"}]
    answer = {"members": [{"value": "alice"}, {"value": "bob"}]}
    assert members_left_out(sent, answer) is None
    answered = compare_answered_members(sent, answer)
    assert answered.unmatched == {"abc-1", "abc-2"} and answered.unrecognised == 2
    assert not answered.certain and answered.covered
    partly = compare_answered_members(sent, {"members": [{"value": "abc-1"}, {"value": "bob"}]})
    assert partly.unmatched == {"abc-2"} and partly.covered
    short = compare_answered_members([*sent, {"value": "abc-3"}], {"members": [{"value": "bob"}]})
    assert not short.covered


def test_missing_members_are_read_from_a_does_not_exist_detail() -> None:
    """A 400 saying a member does not exist names it by value or by path; other 400s name none."""
    sent = [{"value": "aaaa1111"}, {"value": "bbbb2222"}]
    assert missing_members("member 'bbbb2222' does not exist", sent) == [sent[1]]
    assert missing_members("members[0].value: not found", sent) == [sent[0]]
    assert missing_members("member 'bbbb2222' is refused", sent) == []
    assert missing_members("user does not exist", sent) == []


def test_with_members_renamed_rewrites_the_form_and_the_adds() -> None:
    """Gone members take their new ids in the form and the PATCH adds; one without a new id is left out."""
    form = {"displayName": "g", "members": [{"value": "old1"}, {"value": "old2"}, {"value": "ok"}]}
    operations = [{"op": "add", "path": "members", "value": [{"value": "old1"}, {"value": "old2"}]},
                  {"op": "replace", "path": "displayName", "value": "g"}]
    desired, ops = with_members_renamed(form, operations, {"old1": "new1", "old2": None})
    assert desired["members"] == [{"value": "new1"}, {"value": "ok"}]
    assert ops[0]["value"] == [{"value": "new1"}] and ops[1] == operations[1]
    _, only_gone = with_members_renamed(form, operations[:1], {"old1": None, "old2": None})
    assert only_gone == []


def test_members_held_as_another_kind_are_told_by_type_or_ref() -> None:
    """A typed member answered with another `type`, or a `$ref` to the other endpoint, is held as another
    kind; an untyped sent member, or an answer saying nothing of kinds, is not."""
    sent = [{"value": "1", "type": "Group"}, {"value": "2", "type": "User"}, {"value": "3"}]
    answer = {"members": [{"value": "1", "$ref": "https://x/scim/v2/Users/1"}, {"value": 2, "type": "user"},
                          {"value": "3", "type": "Group"}]}
    assert members_of_another_kind(sent, answer) == [("1", "Group", "User")]
    assert members_of_another_kind(sent, {"members": [{"value": "1"}]}) == []
    assert members_of_another_kind(sent, None) == []
    not_written = MembersNotWritten()
    not_written.add_held_as_another_kind(sent, answer)
    assert not_written.values == ["1"] and "ignores member type" in not_written.summary()


def test_a_listed_form_of_compact_members_is_read_as_one_of_dicts() -> None:
    """A big group's listed form, read back from the cycle's tables with `Member`s, tells the members
    held as another kind and the ones left out as the same form of dicts does."""
    sent = [{"value": "1", "type": "Group"}, {"value": "2", "type": "User"}, {"value": "4"}]
    listed = {"members": [Member(type="User", value="1"), Member(type="User", value="2"), Member(value="3")]}
    assert members_of_another_kind(sent, listed) == [("1", "Group", "User")]
    answered = compare_answered_members(sent, listed)
    assert answered.unmatched == {"4"} and answered.unrecognised == 1


def test_a_learned_limit_is_due_for_a_probe_a_week_after_it_was_learned() -> None:
    """Kept for PROBE_AFTER (a week) from when it was learned, then due."""
    learned = LearnedLimit(5, 1_000.0)
    assert PROBE_AFTER == 7 * 24 * 3600 and learned.probe_at == 1_000.0 + PROBE_AFTER
    assert not learned.due(1_000.0 + PROBE_AFTER - 1) and learned.due(1_000.0 + PROBE_AFTER)


def test_a_refused_probe_falls_back_to_the_limit_it_probed_not_below() -> None:
    """A probe's request of 100 refused without a number (halved: 50, ... 6, 3) goes no lower than the
    5 the destination took before; a refused request of 5 itself goes lower (the destination got
    stricter), and a number it names above 5 is taken as it is."""
    learned = LearnedLimit(5, 0.0)
    assert learned.chunk_after_refusal(50, sent=100) == 50
    assert learned.chunk_after_refusal(3, sent=6) == 5
    assert learned.chunk_after_refusal(2, sent=5) == 2
    assert learned.chunk_after_refusal(12, sent=20) == 12
