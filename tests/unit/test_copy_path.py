"""The copy path's shortcuts (issue 18) decide exactly as the work they replace: the match key found
without a per-part lookup, the source digest given by `plan_upsert` to the steps that carry it, the
create answers no longer observed once what they would teach is known."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from replicator.config import SyncConfig
from replicator.cycle.keeps import KeepsLearner
from replicator.pipeline.canonical import GROUP, USER, canonicalise, digest, match_value
from replicator.pipeline.keeps import DROPPED, Learned, Observations, integrity_note, observe, revise
from replicator.pipeline.plan import CREATE, NOTHING, PATCH, RECORD, SKIP, Step, Stored, plan_upsert
from replicator.scim.attributes import get_first_ci
from replicator.scim.urns import ENTERPRISE_USER


def match_value_by_lookups(canonical: dict[str, Any], attribute: str) -> str | None:
    """`match_value` as it was: one `get_first_ci` a part."""
    value: Any = canonical
    for part in attribute.split("."):
        if not isinstance(value, dict):
            return None
        value = get_first_ci(value, part)
    return value if isinstance(value, str) and value else None


_NAMES = st.sampled_from(["userName", "username", "USERNAME", "name", "Name", "givenName", "GivenName", "emails",
                          "", 7])
_LEAVES = st.one_of(st.text(max_size=3), st.integers(), st.booleans(), st.none(), st.lists(st.text(max_size=2)))
_FORMS = st.recursive(_LEAVES, lambda inner: st.dictionaries(_NAMES, inner, max_size=5), max_leaves=12)
_ATTRIBUTES = st.sampled_from(["userName", "USERNAME", "name.givenName", "Name.givenname", "name", "emails.value",
                               "", ".", "name..givenName"])


@settings(max_examples=400, deadline=None)
@given(_FORMS, _ATTRIBUTES)
def test_match_value_finds_what_a_lookup_per_part_finds(form: Any, attribute: str) -> None:
    """The match key is the first key of each level equal to the part ignoring case, as `get_first_ci` has it."""
    canonical = form if isinstance(form, dict) else {"userName": form}
    assert match_value(canonical, attribute) == match_value_by_lookups(canonical, attribute)


def test_match_value_takes_the_first_spelling_in_key_order() -> None:
    """Of two spellings of one name, the first in the object's order is the match key (not the exact one)."""
    assert match_value({"USERNAME": "first", "userName": "exact"}, "userName") == "first"
    assert match_value({"name": {"GIVENNAME": "", "givenName": "x"}}, "name.givenName") is None


def _upsert(desired: dict[str, Any], stored: Stored | None, *, kind: str = USER, policy: SyncConfig | None = None,
            live: dict[str, Any] | None = None, live_known: bool = False) -> Step:
    return plan_upsert(kind=kind, source_id="s", label="x", desired=desired, stored=stored, live=live,
                       live_known=live_known, policy=policy or SyncConfig(), source_digest="bytes-digest")


def test_plan_upsert_gives_the_source_digest_to_the_steps_that_write_or_record() -> None:
    """A create, a PATCH and a record carry the source digest; an unchanged or skipped object does not."""
    alice = {"userName": "alice", "title": "Engineer"}
    renamed = {**alice, "title": "Boss"}
    assert _upsert(alice, None).action == CREATE
    assert _upsert(alice, None).source_digest == "bytes-digest"
    recreate = _upsert(alice, Stored("d", digest(alice), alice), live=None, live_known=True)
    assert (recreate.action, recreate.source_digest) == (CREATE, "bytes-digest")
    patch = _upsert(renamed, Stored("d", digest(alice), alice))
    assert (patch.action, patch.source_digest) == (PATCH, "bytes-digest")
    record = _upsert(alice, Stored("d", "an older recipe's digest", alice))
    assert (record.action, record.source_digest) == (RECORD, "bytes-digest")
    unchanged = _upsert(alice, Stored("d", digest(alice), alice))
    assert (unchanged.action, unchanged.source_digest) == (NOTHING, None)
    skipped = _upsert(alice, None, policy=SyncConfig(create=False))
    assert (skipped.action, skipped.source_digest) == (SKIP, None)
    assert _upsert(renamed, Stored("d", digest(alice), alice), policy=SyncConfig(update=False)).source_digest is None


def test_plan_upsert_gives_no_source_digest_to_a_group_whose_member_removals_are_held() -> None:
    """A group written with member removals held records no source digest: the next cycle plans it again."""
    members = [{"value": f"u{i:02d}", "type": "User"} for i in range(20)]
    before = {"displayName": "All", "members": members}
    step = _upsert({"displayName": "Everyone", "members": members[:2]}, Stored("d", digest(before), before),
                   kind=GROUP, policy=SyncConfig(max_delete_count=3))
    assert (step.action, step.held_members) == (PATCH, 18)
    assert step.source_digest is None


# -- the create answers' observations (cycle/keeps.KeepsLearner.answered) -----------------------------

_TEXT = st.sampled_from(["a", "Ab", "abc", "ABC", "abc", "b", ""])
_EMAIL = st.fixed_dictionaries({"value": _TEXT}, optional={"type": st.sampled_from(["work", "home"]),
                                                            "primary": st.booleans()})
_ADDRESS = st.fixed_dictionaries({}, optional={"type": st.sampled_from(["work", "home"]), "locality": _TEXT})
_SENT = st.fixed_dictionaries({"userName": _TEXT}, optional={
    "title": _TEXT, "active": st.booleans(), "externalId": _TEXT, "emails": st.lists(_EMAIL, max_size=3),
    "addresses": st.lists(_ADDRESS, max_size=2), "name": st.fixed_dictionaries({}, optional={"givenName": _TEXT}),
    ENTERPRISE_USER: st.fixed_dictionaries({}, optional={"department": _TEXT, "manager": st.just({"value": "m"})}),
})


def _answer_to(sent: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """What a destination might answer to a create of `sent`: it as sent, or with one thing lost or changed."""
    answer: dict[str, Any] = {**copy.deepcopy(sent), "id": "d", "meta": {"resourceType": "User"}, "schemas": []}
    how = data.draw(st.sampled_from(["as sent"] * 5 + ["drop", "upper", "truncate", "extra", "no type", "reorder"]))
    keys = [key for key in sent if key != "userName"] or ["userName"]
    key = data.draw(st.sampled_from(keys))
    if how == "drop":
        answer.pop(key, None)
    elif how == "upper" and isinstance(answer.get(key), str):
        answer[key] = answer[key].upper()
    elif how == "truncate" and isinstance(answer.get(key), str):
        answer[key] = answer[key][:1]
    elif how == "extra":
        answer["nickName"] = "n"
    elif how == "no type" and isinstance(answer.get(key), list):
        answer[key] = [{k: v for k, v in entry.items() if k != "type"} for entry in answer[key]]
    elif how == "reorder" and isinstance(answer.get(key), list):
        answer[key] = answer[key][::-1]
    return answer


@settings(max_examples=300, deadline=None)
@given(st.lists(_SENT, min_size=2, max_size=3), st.data())
def test_create_answers_teach_what_observing_every_answer_teaches(forms: list[dict[str, Any]],
                                                                   data: st.DataObject) -> None:
    """Answers held as sent stop being observed once their paths were seen kept: the profile revised, the
    paths learned and forgotten and the integrity note are those of observing every answer."""
    learner = KeepsLearner(SimpleNamespace(config=SimpleNamespace(destination=SimpleNamespace(url="https://d/v2"))))
    every = Observations()
    for _ in range(data.draw(st.integers(1, 12))):
        raw = data.draw(st.sampled_from(forms))
        sent = canonicalise(raw, USER) if data.draw(st.booleans()) else raw  # (a mapping may send unclean forms)
        answer = _answer_to(sent, data)
        every.add(observe(sent, canonicalise(answer, USER)))
        learner.answered(USER, sent, answer)
    seen = learner.seen[USER]
    profile = {path: Learned(DROPPED, 2) for path in data.draw(st.lists(st.sampled_from(
        ["title", "emails.type", "emails.primary", "emails", "userName", "addresses.locality", "addresses.type",
         "name.givenName", "nickName", f"{ENTERPRISE_USER}:department"])))}
    assert revise(profile, seen) == revise(profile, every)
    assert integrity_note(USER, seen) == integrity_note(USER, every)
    assert {path for path, count in seen.kept.items() if count} == {path for path, count in every.kept.items() if count}
    assert seen.lost == every.lost


def test_a_sub_attribute_sent_first_after_its_attribute_was_seen_kept_is_observed() -> None:
    """A sub-attribute sent for the first time, in an answer held as sent, is seen kept (a learned loss is forgotten)."""
    learner = KeepsLearner(SimpleNamespace(config=SimpleNamespace(destination=SimpleNamespace(url="https://d/v2"))))
    department, manager = f"{ENTERPRISE_USER}:department", f"{ENTERPRISE_USER}:manager"
    manager_only = {"manager": {"value": "m"}}
    for sent in ({"userName": "a", "emails": [{"value": "a"}], ENTERPRISE_USER: manager_only},
                 {"userName": "b", "emails": [{"value": "b", "type": "work"}], ENTERPRISE_USER: manager_only},
                 {"userName": "c", "emails": [{"value": "c"}], ENTERPRISE_USER: {**manager_only, "department": "R&D"}},
                 {"userName": "d", "emails": [{"value": "d"}], ENTERPRISE_USER: manager_only}):
        learner.answered(USER, sent, {**sent, "id": "d", "meta": {}})
    profile, _, forgotten = revise({"emails.type": Learned(DROPPED, 5), department: Learned(DROPPED, 5)},
                                   learner.seen[USER])
    assert (profile, forgotten) == ({}, sorted(["emails.type", department]))
    assert learner.seen[USER].kept[manager] == 3  # (the last answer, all of whose paths were seen kept, is not observed)
