"""Mapping paths into multi-valued attributes: include and exclude reach every value; rename and constants
into a core multi-valued attribute are refused at start, naming the field."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.config import Config, MappingConfig, MappingSection, compile_rules
from replicator.errors import ConfigError
from replicator.pipeline.canonical import USER, canonicalise, digest, encode
from replicator.pipeline.mapping import apply, make_rules, rules_key
from replicator.scim.urns import ENTERPRISE_USER

CUSTOM = "urn:example:params:scim:schemas:extension:custom:2.0:User"


def ann() -> dict[str, Any]:
    return {
        "userName": "ann",
        "emails": [{"value": "ann@work.example", "type": "work", "primary": True},
                   {"value": "ann@home.example", "type": "home"}],
        "phoneNumbers": [{"value": "+1-555-0100", "type": "work", "display": "(555) 0100"}],
        "addresses": [{"type": "work", "locality": "Paris", "country": "FR"},
                      {"type": "home", "locality": "Lyon", "country": "FR"}],
        ENTERPRISE_USER: {"manager": {"value": "m-1"}, "department": "Sales"},
        CUSTOM: {"badges": [{"value": "B1", "label": "gold"}, {"value": "B2", "label": "blue"}]},
    }


def test_exclude_a_sub_attribute_drops_it_from_every_value() -> None:
    """exclude emails.type, phoneNumbers.display and addresses.locality reach each value of the list."""
    source = ann()
    mapped = apply(source, make_rules(exclude=["emails.type", "phoneNumbers.display", "addresses.locality"]))
    assert mapped["emails"] == [{"value": "ann@work.example", "primary": True}, {"value": "ann@home.example"}]
    assert mapped["phoneNumbers"] == [{"value": "+1-555-0100", "type": "work"}]
    assert mapped["addresses"] == [{"type": "work", "country": "FR"}, {"type": "home", "country": "FR"}]
    assert source == ann()  # the input is untouched


def test_exclude_in_an_extension_list_and_names_in_any_case() -> None:
    """A path into a multi-valued extension attribute works; attribute names match ignoring case."""
    mapped = apply(ann(), make_rules(exclude=[f"{CUSTOM}:Badges.LABEL", "EMAILS.Type"]))
    assert mapped[CUSTOM] == {"badges": [{"value": "B1"}, {"value": "B2"}]}
    assert all("type" not in email for email in mapped["emails"])


def test_include_a_sub_attribute_keeps_only_it_in_each_value() -> None:
    """include emails.value keeps each email with its value alone; other attributes go."""
    mapped = apply(ann(), make_rules(include=["userName", "emails.value", f"{ENTERPRISE_USER}:manager.value"]))
    assert mapped == {"userName": "ann", "emails": [{"value": "ann@work.example"}, {"value": "ann@home.example"}],
                      ENTERPRISE_USER: {"manager": {"value": "m-1"}}}


def test_include_paths_in_one_list_merge_and_the_whole_attribute_wins() -> None:
    """Two sub-attributes of a list are kept together; the attribute named whole keeps everything."""
    both = apply(ann(), make_rules(include=["emails.value", "emails.primary"]))
    assert both == {"emails": [{"value": "ann@work.example", "primary": True}, {"value": "ann@home.example"}]}
    for include in (["emails.value", "emails"], ["emails", "emails.value"]):
        assert apply(ann(), make_rules(include=include)) == {"emails": ann()["emails"]}
    assert apply(ann(), make_rules(include=[f"{CUSTOM}:badges.label"])) == {}  # values without their value go


def test_values_left_without_value_or_made_duplicates_are_dropped() -> None:
    """exclude emails.value leaves no email; two emails differing only by type become one."""
    assert "emails" not in apply(ann(), make_rules(exclude=["emails.value"]))
    twice = {"userName": "bo", "emails": [{"value": "bo@x.example", "type": "work"},
                                           {"value": "bo@x.example", "type": "home"}]}
    assert apply(twice, make_rules(exclude=["emails.type"]))["emails"] == [{"value": "bo@x.example"}]


def test_a_path_through_a_simple_value_changes_nothing() -> None:
    """Paths under a string, or under an attribute absent here, leave the object as it is."""
    source = {"userName": "ann", "title": "Boss"}
    assert apply(source, make_rules(exclude=["title.x", "emails.type"])) == source
    assert apply(source, make_rules(include=["userName", "title.x"])) == {"userName": "ann"}


@pytest.mark.parametrize(("rules", "field"), [
    ({"rename": {"emails.type": "title"}}, "mapping.users.rename"),
    ({"rename": {"title": "phoneNumbers.display"}}, "mapping.users.rename"),
    ({"rename": {"Addresses.locality": f"{ENTERPRISE_USER}:division"}}, "mapping.users.rename"),
    ({"constants": {"emails.type": "work"}}, "mapping.users.constants"),
])
def test_rename_and_constants_inside_a_core_list_are_refused_at_start(rules: dict[str, Any], field: str) -> None:
    """A configuration renaming or setting a sub-attribute of a core multi-valued attribute fails, naming the field."""
    config = Config(mapping=MappingSection(users=MappingConfig(**rules)))
    with pytest.raises(ConfigError, match="^" + re.escape(field) + ": .*multi-valued attribute") as caught:
        compile_rules(config)
    assert "\n" not in str(caught.value)


def test_whole_lists_may_still_be_renamed_and_set() -> None:
    """rename and constants of a whole multi-valued attribute are accepted and work."""
    rules = make_rules(rename={"emails": f"{CUSTOM}:emails"}, constants={"entitlements": [{"value": "vpn"}]})
    mapped = apply(ann(), rules)
    assert mapped[CUSTOM]["emails"] == ann()["emails"] and "emails" not in mapped
    assert mapped["entitlements"] == [{"value": "vpn"}]


def test_a_value_filter_in_a_path_is_refused() -> None:
    """emails[type eq "work"].value would match no key: it is refused, naming the path."""
    with pytest.raises(ConfigError, match=r"mapping\.users: invalid attribute path 'emails\[type eq \"work\"\]\.value'"):
        make_rules(exclude=['emails[type eq "work"].value'], where="mapping.users")


def test_rename_into_an_extension_list_does_not_overwrite_it() -> None:
    """A rename or constant whose target meets an extension's list of values leaves the object unchanged."""
    source = ann()
    rules = make_rules(rename={"userName": f"{CUSTOM}:badges.owner"}, constants={f"{CUSTOM}:badges.label": "x"})
    assert apply(source, rules) == source


def test_rules_key_follows_paths_into_lists() -> None:
    """The zero-change key differs for each of these rules, so changing one re-plans the objects."""
    keys = {rules_key(make_rules(**r)) for r in (
        {}, {"exclude": ["emails"]}, {"exclude": ["emails.type"]}, {"exclude": ["emails.display"]},
        {"include": ["emails.value"]}, {"include": ["emails"]},
    )}
    assert len(keys) == 6


# --- properties -------------------------------------------------------------------------------------------

SUBS = ("value", "type", "display", "primary")
email = st.fixed_dictionaries({}, optional={
    "value": st.sampled_from(["a@x.example", "b@x.example", "c@x.example"]),
    "type": st.sampled_from(["work", "home", "other"]),
    "display": st.sampled_from(["A", "B"]),
    "primary": st.just(True),
}).filter(bool)
users = st.builds(lambda emails, title: canonicalise({"userName": "u", "emails": emails, "title": title}, USER),
                  st.lists(email, max_size=5), st.sampled_from(["", "Boss"]))


@given(users, st.sampled_from(SUBS))
def test_exclude_property(user: dict[str, Any], sub: str) -> None:
    """exclude emails.<sub>: the emails are the distinct source emails without <sub> (less those that lost their
    value), the rest is untouched, and the result is its own canonical form (a second read is no change)."""
    before = copy.deepcopy(user)
    mapped = apply(user, make_rules(exclude=[f"emails.{sub}"]))
    assert user == before
    expected = set()
    for source_email in user.get("emails", []):
        stripped = {k: v for k, v in source_email.items() if k != sub}
        if stripped and not ("value" in source_email and "value" not in stripped):
            expected.add(encode(stripped))
    assert len(mapped.get("emails", [])) == len(expected)
    assert {encode(value) for value in mapped.get("emails", [])} == expected
    assert {k: v for k, v in mapped.items() if k != "emails"} == {k: v for k, v in user.items() if k != "emails"}
    assert canonicalise(mapped, USER) == mapped
    assert digest(apply(mapped, make_rules(exclude=[f"emails.{sub}"]))) == digest(mapped)


@given(users)
def test_include_value_property(user: dict[str, Any]) -> None:
    """include emails.value: each email becomes {value}, and the set of values is the source's."""
    mapped = apply(user, make_rules(include=["emails.value"]))
    assert all(set(value) == {"value"} for value in mapped.get("emails", []))
    assert {e["value"] for e in mapped.get("emails", [])} == {e["value"] for e in user.get("emails", []) if "value" in e}
    assert canonicalise(mapped, USER) == mapped
