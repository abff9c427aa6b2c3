"""Multi-valued attributes: sent in the source's order with the primary value first, compared as sets
(a reordering is no change: same digest, no operations), and digests recorded by the sorting recipe
still match."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from replicator.config import SyncConfig
from replicator.pipeline.canonical import GROUP, USER, canonicalise, comparable, digest
from replicator.pipeline.patch import compute_operations
from replicator.pipeline.plan import NOTHING, PATCH, Stored, plan_upsert
from replicator.scim.urns import ENTERPRISE_USER

EXTENSION = "urn:example:params:scim:schemas:extension:acme:2.0:User"

_TEXT = st.text(alphabet="abcdefxyz@.", min_size=1, max_size=8)
_EMAIL = st.fixed_dictionaries(
    {"value": _TEXT},
    optional={"type": st.sampled_from(["work", "home", "other"]), "primary": st.just(False),
              "display": _TEXT},
)
_EMAILS = st.lists(_EMAIL, min_size=1, max_size=6, unique_by=lambda e: e["value"])


@st.composite
def _users(draw: st.DrawFn) -> dict[str, Any]:
    """A user with several multi-valued attributes (at most one primary value each), one nested in an
    extension."""
    emails = draw(_EMAILS)
    if draw(st.booleans()):
        emails[draw(st.integers(0, len(emails) - 1))]["primary"] = True
    user: dict[str, Any] = {"userName": draw(_TEXT), "emails": emails,
                            "roles": draw(st.lists(_TEXT, min_size=1, max_size=5, unique=True))}
    if draw(st.booleans()):
        user["phoneNumbers"] = draw(st.lists(st.fixed_dictionaries({"value": _TEXT, "type": _TEXT}),
                                             min_size=1, max_size=4, unique_by=lambda p: p["value"]))
    if draw(st.booleans()):
        user[EXTENSION] = {"badges": draw(st.lists(_TEXT, min_size=1, max_size=4, unique=True)), "tier": "gold"}
    return user


def _permuted(user: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """The same user with the values of each multi-valued attribute (at every level) in another order."""
    def shuffle(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: shuffle(sub) for key, sub in value.items()}
        if isinstance(value, list):
            items = [shuffle(item) for item in value]
            rng.shuffle(items)
            return items
        return value
    out: dict[str, Any] = shuffle(user)
    return out


def _expected_order(values: list[Any]) -> list[Any]:
    """Primary first, then the others in the order given."""
    primary = [v for v in values if isinstance(v, dict) and v.get("primary") is True]
    return [*primary, *(v for v in values if v not in primary)]


def _plan(desired: dict[str, Any], stored: Stored, *, live: dict[str, Any] | None = None, kind: str = USER) -> Any:
    return plan_upsert(kind=kind, source_id="s1", label="x", desired=desired, stored=stored, live=live,
                       live_known=live is not None, policy=SyncConfig())


@settings(max_examples=200, deadline=None)
@given(_users(), st.randoms(use_true_random=False))
def test_a_reordering_of_multivalued_attributes_is_no_change(user: dict[str, Any], rng: random.Random) -> None:
    """Any permutation of the values of multi-valued attributes gives the same digest, no operations
    either way, and nothing to do, against what we wrote (incremental) and against the live form (full)."""
    a = canonicalise(user, USER)
    b = canonicalise(_permuted(user, rng), USER)
    assert digest(a) == digest(b)
    assert compute_operations(a, b) == [] and compute_operations(b, a) == []
    stored = Stored("d1", digest(a), a)
    assert _plan(b, stored).action == NOTHING
    assert _plan(b, stored, live=a).action == NOTHING
    assert _plan(a, Stored("d1", digest(b), b), live=b).action == NOTHING


@settings(max_examples=200, deadline=None)
@given(_users())
def test_the_sent_form_has_the_primary_first_then_the_source_order(user: dict[str, Any]) -> None:
    """The canonical form (what we POST, PATCH and record) keeps each multi-valued attribute in the
    source's order, with its primary value moved to the front."""
    form = canonicalise(user, USER)
    assert form["emails"] == _expected_order(user["emails"])
    assert form["roles"] == user["roles"]
    if "phoneNumbers" in user:
        assert form["phoneNumbers"] == user["phoneNumbers"]
    if EXTENSION in user:
        assert form[EXTENSION]["badges"] == user[EXTENSION]["badges"]


def test_a_home_email_sorting_first_is_sent_after_the_primary_work_email() -> None:
    """The case of the issue: a home email that sorts before the primary work email is sent second, on
    create and in the replace a changed email list gets."""
    home = {"value": "ann@home.example", "type": "home", "primary": False}
    work = {"value": "ann@work.example", "type": "work", "primary": True}
    form = canonicalise({"userName": "ann", "emails": [home, work]}, USER)
    assert form["emails"] == [work, home]
    other = {"value": "ann@other.example", "type": "other"}
    changed = canonicalise({"userName": "ann", "emails": [home, other, work]}, USER)
    step = _plan(changed, Stored("d1", digest(form), form))
    assert step.action == PATCH
    assert step.operations == [{"op": "replace", "path": "emails", "value": [work, home, other]}]


def test_exact_duplicates_are_dropped_keeping_the_first() -> None:
    """A value repeated in the source is sent once, at its first place."""
    form = canonicalise({"userName": "a", "roles": ["b", "a", "b", "c"]}, USER)
    assert form["roles"] == ["b", "a", "c"]


# The sorted form and the digest the sorting recipe (CANON_VERSION 1 before multi-valued order was kept)
# recorded for OLD_SOURCE, as replicator/pipeline/canonical.py computed them at commit 95db3ce.
OLD_SOURCE = {
    "userName": "ann",
    "emails": [{"value": "ann@home.example", "type": "home", "primary": False},
               {"value": "ann@work.example", "type": "work", "primary": True}],
    "phoneNumbers": [{"value": "2"}, {"value": "1"}],
    "roles": ["b", "a"],
}
OLD_FORM = {
    "userName": "ann",
    "emails": [{"value": "ann@home.example", "type": "home", "primary": False},
               {"value": "ann@work.example", "type": "work", "primary": True}],
    "phoneNumbers": [{"value": "1"}, {"value": "2"}],
    "roles": ["a", "b"],
}
OLD_DIGEST = "b3657cb2d1230993f018e052ef243110"


def test_rows_recorded_by_the_sorting_recipe_need_no_write_after_upgrade() -> None:
    """A digest and a sorted form recorded before the upgrade match the new form of the same data: an
    unchanged object is left alone (incremental), and a destination holding the sorted order is no
    drift (full), so the upgrade rewrites nothing."""
    form = canonicalise(OLD_SOURCE, USER)
    assert form != OLD_FORM  # the order we send now differs from the one recorded...
    assert digest(form) == OLD_DIGEST == digest(OLD_FORM)  # ...but the digest does not
    assert comparable(form) == OLD_FORM
    stored = Stored("d1", OLD_DIGEST, OLD_FORM)
    assert _plan(form, stored).action == NOTHING
    assert _plan(form, stored, live=OLD_FORM).action == NOTHING
    assert _plan(form, Stored("d1", OLD_DIGEST, None)).action == NOTHING


def test_a_changed_object_recorded_by_the_sorting_recipe_is_patched_in_the_new_order() -> None:
    """After the upgrade, a change of such an object replaces the attribute with the primary first."""
    changed = {**OLD_SOURCE, "emails": [*OLD_SOURCE["emails"], {"value": "ann@new.example"}]}
    step = _plan(canonicalise(changed, USER), Stored("d1", OLD_DIGEST, OLD_FORM))
    assert step.action == PATCH
    assert step.operations == [{"op": "replace", "path": "emails", "value": [
        OLD_SOURCE["emails"][1], OLD_SOURCE["emails"][0], {"value": "ann@new.example"}]}]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.fixed_dictionaries({"value": _TEXT}, optional={"type": st.sampled_from(["User", "Group"])}),
                min_size=2, max_size=8, unique_by=lambda m: m["value"]),
       st.randoms(use_true_random=False))
def test_group_members_stay_a_sorted_set(members: list[dict[str, Any]], rng: random.Random) -> None:
    """Members keep their behaviour: sorted in the form, so any order gives the same form, digest and
    no operations."""
    shuffled = members[:]
    rng.shuffle(shuffled)
    a = canonicalise({"displayName": "g", "members": members}, GROUP)
    b = canonicalise({"displayName": "g", "members": shuffled}, GROUP)
    assert a == b and digest(a) == digest(b)
    assert compute_operations(a, {**b, "members": shuffled}) == []
    assert _plan(b, Stored("d1", digest(a), a), kind=GROUP).action == NOTHING


def test_manager_and_other_complex_attributes_are_untouched() -> None:
    """Single-valued complex attributes (the enterprise manager) are no lists and keep their form."""
    user = {"userName": "a", ENTERPRISE_USER: {"manager": {"value": "m1"}, "department": "R&D"}}
    assert canonicalise(user, USER) == user
