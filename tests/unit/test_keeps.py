"""What a destination keeps (pipeline/keeps): observing losses, revising the profile, hiding them in the compare."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.config import SyncConfig
from replicator.pipeline.keeps import (
    CASE,
    DROPPED,
    FEWER,
    KEPT,
    TRUNCATED,
    Learned,
    Observations,
    as_held,
    integrity_note,
    observe,
    patched_form,
    revise,
)
from replicator.pipeline.plan import Stored, plan_upsert
from replicator.pipeline.urls import destination_key
from replicator.scim.urns import ENTERPRISE_USER

text = st.text(alphabet="abcdefXYZ019@.", min_size=1, max_size=12)
email = st.fixed_dictionaries({"value": text, "type": st.sampled_from(["work", "home", "other"])})
forms = st.fixed_dictionaries(
    {"userName": text},
    optional={
        "nickName": text, "title": text, "displayName": text, "active": st.booleans(),
        "name": st.fixed_dictionaries({"givenName": text}, optional={"familyName": text}),
        "emails": st.lists(email, min_size=1, max_size=4, unique_by=lambda e: e["value"]),
        ENTERPRISE_USER: st.fixed_dictionaries({"department": text}, optional={"employeeNumber": text}),
    },
)
INTEGRITY_PATHS = {"userName", "displayName", "active", "members", "id", f"{ENTERPRISE_USER}:manager"}


def paths_of(form: dict[str, Any]) -> set[str]:
    """The paths `observe` names: an attribute, a complex attribute's (an extension's) sub-attributes,
    and a multi-valued attribute with its values' sub-attributes other than `value`."""
    out = set()
    for key, value in form.items():
        if isinstance(value, dict):
            joint = ":" if key.startswith("urn:") else "."
            out |= {f"{key}{joint}{sub}" for sub in value}
        else:
            out.add(key)
            if isinstance(value, list):
                out |= {f"{key}.{sub}" for entry in value for sub in entry if sub != "value"}
    return out


def planned_over(live: dict[str, Any], desired: dict[str, Any], sent: dict[str, Any],
                 profile: dict[str, Learned]) -> list[dict[str, Any]]:
    """The operations a full reconcile plans for `desired` over the destination's `live`, `sent` last."""
    held, _ = as_held(live, desired, sent, profile)
    return plan_upsert(kind="User", source_id="s", label="u", desired=desired, stored=Stored("d", None, sent),
                       live=held, live_known=True, policy=SyncConfig()).operations


@given(forms)
def test_a_form_held_as_sent_is_kept_everywhere(form: dict[str, Any]) -> None:
    """Every path of a form the destination holds as sent is observed kept."""
    seen = observe(form, form)
    assert set(seen) == paths_of(form)
    assert set(seen.values()) <= {KEPT}


@given(forms, st.data())
def test_each_kind_of_loss_is_named(form: dict[str, Any], data: st.DataObject) -> None:
    """Dropped, fewer values, case changed and truncated are told apart, each at its own path only."""
    held = dict(form)
    expected: dict[str, str] = {}
    if "nickName" in form and data.draw(st.booleans()):
        del held["nickName"]
        expected["nickName"] = DROPPED
    if len(form.get("emails", [])) > 1 and data.draw(st.booleans()):
        held["emails"] = form["emails"][:1]
        expected["emails"] = FEWER
    if "title" in form and form["title"] != form["title"].lower():
        held["title"] = form["title"].lower()
        expected["title"] = CASE
    if ENTERPRISE_USER in form and len(form[ENTERPRISE_USER]["department"]) > 1:
        held[ENTERPRISE_USER] = {**form[ENTERPRISE_USER], "department": form[ENTERPRISE_USER]["department"][:1]}
        expected[f"{ENTERPRISE_USER}:department"] = TRUNCATED
    seen = observe(form, held)
    assert {path: how for path, how in seen.items() if how != KEPT} == expected


@given(forms, st.sampled_from(sorted(INTEGRITY_PATHS)))
def test_integrity_attributes_are_never_learned(form: dict[str, Any], path: str) -> None:
    """A lost userName (or members, active, manager...) is never part of a profile, however often seen:
    it is reported as an integrity loss instead."""
    seen = Observations()
    seen.add({path: DROPPED, "nickName": DROPPED})
    profile, learned, _ = revise({}, seen)
    assert path not in profile and learned == ["nickName"]
    note = integrity_note("User", seen)
    assert note is not None and f"does not keep {path} (1 users)" in note and "nickName" not in note


def test_a_path_kept_anywhere_is_not_learned_and_is_forgotten() -> None:
    """A path lost by some objects and kept by others (drift, not a destination's habit) is not learned,
    and a learned path seen kept again is forgotten; a path not seen keeps its entry."""
    seen = Observations()
    for _ in range(3):
        seen.add({"nickName": DROPPED, "title": DROPPED, "emails": FEWER})
    seen.add({"title": KEPT})
    profile, learned, forgotten = revise({"emails": Learned(FEWER, 9), "name.givenName": Learned(CASE, 2)}, seen)
    assert profile == {"nickName": Learned(DROPPED, 3), "emails": Learned(FEWER, 9), "name.givenName": Learned(CASE, 2)}
    assert learned == ["nickName"] and forgotten == []
    again = Observations()
    again.add({"nickName": KEPT})
    profile, learned, forgotten = revise(profile, again)
    assert "nickName" not in profile and forgotten == ["nickName"] and learned == []


@given(forms, st.data())
def test_a_learned_loss_of_an_unchanged_value_plans_no_write(form: dict[str, Any], data: st.DataObject) -> None:
    """The destination holds a form that lost its learned paths: a full reconcile plans nothing while the
    source is unchanged, and a PATCH of exactly the changed path once the source changes it."""
    learned = {"nickName": Learned(DROPPED, 1), "emails": Learned(FEWER, 1), ENTERPRISE_USER: Learned(DROPPED, 1),
               "title": Learned(CASE, 1)}
    live = {key: value for key, value in form.items() if key not in ("nickName", ENTERPRISE_USER)}
    if "emails" in live:
        live["emails"] = live["emails"][:1]
    if "title" in live:
        live["title"] = live["title"].lower()
    assert planned_over(live, form, form, learned) == []
    changed = {**form, "nickName": data.draw(text.filter(lambda t: t != form.get("nickName")))}
    assert [op["path"] for op in planned_over(live, changed, form, learned)] == ["nickName"]


def test_hidden_paths_are_those_where_the_destination_differed() -> None:
    """`as_held` names the learned paths at which it hid a difference, not those the destination held."""
    desired = {"userName": "ann", "nickName": "a", "emails": [{"value": "x"}, {"value": "y"}]}
    learned = {"nickName": Learned(DROPPED, 1), "emails": Learned(FEWER, 1)}
    held, hidden = as_held({"userName": "ann", "emails": [{"value": "x"}, {"value": "y"}]}, desired, desired, learned)
    assert hidden == ["nickName"] and held == desired
    assert as_held(held, desired, None, learned) == (held, [])  # nothing written there yet: compared as it is


def test_drift_of_another_kind_at_a_learned_path_is_still_repaired() -> None:
    """A destination learned to keep one email whose kept email was changed there (drift, not its
    habit), or that holds a nickName it was learned to drop: the compare sees the difference."""
    desired = {"userName": "ann", "nickName": "a", "emails": [{"value": "x"}, {"value": "y"}]}
    learned = {"nickName": Learned(DROPPED, 1), "emails": Learned(FEWER, 1)}
    live = {"userName": "ann", "nickName": "other", "emails": [{"value": "z"}]}
    held, hidden = as_held(live, desired, desired, learned)
    assert (held, hidden) == (live, [])
    plan = plan_upsert(kind="User", source_id="s", label="u", desired=desired, stored=Stored("d", None, desired),
                       live=held, live_known=True, policy=SyncConfig())
    assert sorted(op["path"] for op in plan.operations) == ["emails", "nickName"]


@given(forms, st.sampled_from(["emails.type", "emails.type+fewer"]))
def test_a_dropped_sub_attribute_of_multi_valued_values_is_learned_and_hidden(form: dict[str, Any], loss: str) -> None:
    """A destination dropping `type` from every email (and perhaps keeping one email): observed as
    `emails.type` dropped (and `emails` fewer values), not another difference; once learned, a full
    reconcile plans nothing while the source is unchanged, and a PATCH of emails once the source changes
    an email's type."""
    if "emails" not in form:
        form = {**form, "emails": [{"value": "a@x", "type": "work"}, {"value": "b@x", "type": "home"}]}
    fewer = loss.endswith("fewer") and len(form["emails"]) > 1
    live = {**form, "emails": [{"value": e["value"]} for e in form["emails"][:1 if fewer else None]]}
    seen = observe(form, live)
    assert seen["emails.type"] == DROPPED and seen["emails"] == (FEWER if fewer else KEPT), seen
    observed = Observations()
    observed.add(seen)
    profile, learned, _ = revise({}, observed)
    assert "emails.type" in learned and profile["emails.type"] == Learned(DROPPED, 1)
    assert planned_over(live, form, form, profile) == []
    first = form["emails"][0]
    changed = {**form, "emails": [{**first, "type": "other" if first["type"] != "other" else "work"},
                                  *form["emails"][1:]]}
    assert [op["path"] for op in planned_over(live, changed, form, profile)] == ["emails"]


def test_a_sub_attribute_of_a_value_not_held_back_says_nothing() -> None:
    """A destination keeping one email of two, with its type: the type of the email it did not keep is
    not taken for a dropped `emails.type`; a destination holding the type again makes it forgotten."""
    sent = {"userName": "ann", "emails": [{"value": "a@x"}, {"value": "b@x", "type": "home"}]}
    seen = observe(sent, {"userName": "ann", "emails": [{"value": "a@x"}]})
    assert "emails.type" not in seen and seen["emails"] == FEWER
    observed = Observations()
    observed.add(observe(sent, sent))
    profile, _, forgotten = revise({"emails.type": Learned(DROPPED, 3)}, observed)
    assert "emails.type" not in profile and forgotten == ["emails.type"]


def test_a_patch_is_observed_at_the_attributes_it_set() -> None:
    """A PATCH's answer is observed against what its operations set: a sub-attribute under its complex
    attribute, an extension's attribute under its URN; removals and members are left out."""
    operations = [{"op": "replace", "path": "nickName", "value": "n"},
                  {"op": "replace", "path": "name.givenName", "value": "Ann"},
                  {"op": "replace", "path": f"{ENTERPRISE_USER}:department", "value": "R&D"},
                  {"op": "remove", "path": "title"}, {"op": "add", "path": "members", "value": [{"value": "x"}]},
                  {"op": "remove", "path": 'members[value eq "y"]'}]
    sent = patched_form(operations)
    assert sent == {"nickName": "n", "name": {"givenName": "Ann"}, ENTERPRISE_USER: {"department": "R&D"}}
    answer = {"userName": "ann", "name": {"givenName": "Ann", "familyName": "B"}, ENTERPRISE_USER: {"department": "R&D"}}
    assert observe(sent, answer) == {"nickName": DROPPED, "name.givenName": KEPT, f"{ENTERPRISE_USER}:department": KEPT}


@pytest.mark.parametrize(("url", "key"), [
    ("https://user:s3cret@scim.example.com:8443/v2/?token=abc#x", "https://scim.example.com:8443/v2"),
    ("http://127.0.0.1:9/scim/v2/", "http://127.0.0.1:9/scim/v2"),
    ("https://[::1]:8080/v2", "https://[::1]:8080/v2"),
])
def test_a_destination_is_named_in_the_state_without_its_credentials(url: str, key: str) -> None:
    """The key a destination's learned losses and limits are stored (and shown by `status`) under drops
    the URL's user, password, query and fragment: a URL may carry credentials."""
    assert destination_key(url) == key
