"""The copy path's shortcuts (issue 18) decide exactly as the work they replace: the match key found
without a per-part lookup, the source digest given by `plan_upsert` to the steps that carry it."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from replicator.config import SyncConfig
from replicator.pipeline.canonical import GROUP, USER, digest, match_value
from replicator.pipeline.plan import CREATE, NOTHING, PATCH, RECORD, SKIP, Step, Stored, plan_upsert
from replicator.scim.attributes import get_first_ci


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
