"""The SCIM ⇄ PingOne Platform API translation, checked against the Platform API's OpenAPI document.

The document is PingOne's management API as the Go SDK generates from it (patrickcping/pingone-go-sdk-v2,
management/generate/pingone-management.yml, BSD-3-Clause), read from $PINGONE_OPENAPI (default
/tmp/p1.yml). It holds TAB characters, hence the replace before parsing.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import regex
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from replicator.pipeline.canonical import GROUP, USER
from replicator.pipeline.filter_eval import Compare, parse_filter
from replicator.pipeline.pingone import (
    GROUP_EXTENSION,
    USER_EXTENSION,
    enabled_body,
    group_to_platform,
    group_to_scim,
    platform_error_words,
    platform_filter,
    population_name,
    storable,
    unreplicable_group,
    user_to_platform,
    user_to_scim,
)
from replicator.scim.filters import quote, render
from replicator.scim.urns import ENTERPRISE_USER

DOCUMENT = Path(os.environ.get("PINGONE_OPENAPI", Path(__file__).resolve().parents[1] / "pingone" / "pingone-openapi-subset.yaml"))


@cache
def document() -> dict[str, Any]:
    if not DOCUMENT.is_file():
        pytest.fail(f"the PingOne OpenAPI document is not at {DOCUMENT}: set PINGONE_OPENAPI to its path")
    loaded: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text().replace("\t", "  "))
    return loaded


def schema(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}", "components": document()["components"]}


def request_example(path: str, method: str) -> dict[str, Any]:
    body = document()["paths"][f"/environments/{{environmentID}}/{path}"][method]["requestBody"]
    example: dict[str, Any] = body["content"]["application/json"]["schema"]["example"]
    return example


def _unicode_pattern(validator: Any, pattern: str, instance: Any, _: Any) -> Any:
    # the document's patterns use \p{L} classes, which the stdlib re lacks
    if isinstance(instance, str) and not regex.search(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


Validator = jsonschema.validators.extend(jsonschema.Draft4Validator, {"pattern": _unicode_pattern})


def resolved(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = document()["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def read_only_sent(node: dict[str, Any], body: Any, at: str = "") -> list[str]:
    """The paths of the body that the schema marks readOnly (OpenAPI 3.0: never in a request)."""
    node = resolved(node)
    if not isinstance(body, dict):
        return []
    found = []
    for key, value in body.items():
        sub = resolved(node.get("properties", {}).get(key, {}))
        found += [f"{at}{key}"] if sub.get("readOnly") else read_only_sent(sub, value, f"{at}{key}.")
    return found


def assert_valid_request(name: str, body: dict[str, Any]) -> None:
    Validator(schema(name)).validate(body)
    assert not read_only_sent(schema(name), body), body
    unknown = set(body) - set(resolved(schema(name))["properties"])
    assert not unknown, f"not in components.schemas.{name}: {unknown}"


# ------------------------------------------------------------------------------------------ strategies

letters = st.text(st.characters(categories=("L", "N")), min_size=1, max_size=12)
words = st.builds(" ".join, st.lists(letters, min_size=1, max_size=3))
phones = st.text("0123456789", min_size=3, max_size=15).map(lambda digits: "+" + digits)
emails = st.builds("{}@{}.example".format, letters, letters)
flags = st.sampled_from([None, True, False])


def entry(value: st.SearchStrategy[str], types: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"value": value}, optional={"type": st.sampled_from(types), "primary": flags})


def one_primary(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """RFC 7643 2.4: at most one entry is primary."""
    seen = False
    for item in items:
        if item.get("primary") is True:
            if seen:
                item["primary"] = False
            seen = True
    return items


def multi(item: st.SearchStrategy[dict[str, Any]], most: int) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(item, min_size=1, max_size=most).map(one_primary)


addresses = st.fixed_dictionaries({}, optional={
    "streetAddress": words, "locality": words, "region": letters, "postalCode": st.text("0123456789", min_size=1,
    max_size=8), "country": st.sampled_from(["US", "SE", "FR"]), "type": st.sampled_from(["work", "home"]),
    "formatted": words, "primary": flags})
names = st.fixed_dictionaries({}, optional={
    "givenName": letters, "familyName": letters, "middleName": letters, "formatted": words,
    "honorificPrefix": st.sampled_from(["Dr.", "Ms."]), "honorificSuffix": st.sampled_from(["III", "PhD"])})

scim_users = st.fixed_dictionaries({"userName": emails}, optional={
    "externalId": letters, "name": names, "nickName": letters, "title": words,
    "preferredLanguage": st.sampled_from(["en-US", "fr"]), "locale": st.sampled_from(["en-gb", "sv"]),
    "timezone": st.sampled_from(["America/Los_Angeles", "Europe/Stockholm"]), "userType": letters,
    "active": st.booleans(), "displayName": words,
    "emails": multi(entry(emails, ["work", "home"]), 3),
    "phoneNumbers": multi(entry(phones, ["work", "mobile", "home", "fax"]), 4),
    "addresses": multi(addresses, 2),
    "photos": multi(entry(st.builds("https://img.example/{}.png".format, letters), ["photo", "thumbnail"]), 2),
    "ims": multi(entry(letters, ["xmpp"]), 1),
    ENTERPRISE_USER: st.fixed_dictionaries({"employeeNumber": letters, "manager": st.fixed_dictionaries(
        {"value": letters})}),
    USER_EXTENSION: st.fixed_dictionaries({"population": st.fixed_dictionaries({"name": words})}),
})

platform_users = st.fixed_dictionaries({"id": letters, "username": emails, "email": emails,
                                        "population": st.fixed_dictionaries({"id": st.sampled_from(["p1", "p2"])})},
                                       optional={
    "enabled": st.booleans(), "externalId": letters, "nickname": letters, "title": words, "type": letters,
    "locale": st.sampled_from(["en-gb", "sv"]), "timezone": st.sampled_from(["America/Los_Angeles"]),
    "preferredLanguage": st.sampled_from(["en-US"]), "primaryPhone": phones, "mobilePhone": phones,
    "photo": st.fixed_dictionaries({"href": st.builds("https://img.example/{}.png".format, letters)}),
    "name": st.fixed_dictionaries({"given": letters}, optional={"family": letters, "middle": letters}),
    "address": st.fixed_dictionaries({"locality": words}, optional={"countryCode": st.sampled_from(["US", "SE"]),
                                                                   "postalCode": letters}),
    "createdAt": st.just("2024-01-01T00:00:00.000Z"), "emailVerified": st.booleans(), "mfaEnabled": st.booleans(),
})
POPULATIONS = {"p1": "Employees", "p2": "Partners"}
SERVER_SET = ("id", "enabled", "createdAt", "updatedAt", "emailVerified", "environment", "_links")


def primary_or_first(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((i for i in items if i.get("primary") is True), items[0] if items else None)


# ------------------------------------------------------------------------------------------ properties


@settings(max_examples=150, deadline=None)
@given(scim_users)
def test_storable_is_idempotent_and_round_trips(user: dict[str, Any]) -> None:
    """storable is idempotent, and what it keeps comes back whole from a Platform body (plus the server-set enabled)."""
    kept, _ = storable(USER, user)
    assert storable(USER, kept) == (kept, [])
    population = population_name(kept)
    body = user_to_platform(kept, population_id="p1" if population else None)
    server_set = enabled_body(kept) or {}
    back = user_to_scim({**body, **server_set}, population_names={"p1": population} if population else None)
    assert back == kept


@settings(max_examples=150, deadline=None)
@given(scim_users)
def test_storable_keeps_the_primary_values_and_drops_what_pingone_lacks(user: dict[str, Any]) -> None:
    """The primary (else first) email, non-mobile and mobile phone, address and photo are the ones kept."""
    kept, dropped = storable(USER, user)
    for attribute in ("emails", "photos"):
        chosen = primary_or_first(user.get(attribute, []))
        assert [e["value"] for e in kept.get(attribute, [])] == ([chosen["value"]] if chosen else [])
    phones = user.get("phoneNumbers", [])
    work = primary_or_first([p for p in phones if p.get("type") != "mobile"])
    mobile = primary_or_first([p for p in phones if p.get("type") == "mobile"])
    assert kept.get("phoneNumbers", []) == ([{"value": work["value"], "type": "work", "primary": True}] if work
                                            else []) + ([{"value": mobile["value"], "type": "mobile"}] if mobile else [])
    assert ENTERPRISE_USER not in kept and "displayName" not in kept and "ims" not in kept
    assert {ENTERPRISE_USER, "displayName", "ims"} & set(user) <= set(dropped)
    assert set(dropped) <= set(user) and all(kept.get(name) != user[name] for name in dropped)


@settings(max_examples=100, deadline=None)
@given(scim_users)
def test_a_form_without_population_never_grows_one(user: dict[str, Any]) -> None:
    """No population in the form: none in storable, none in the body, none read back without population names."""
    user.pop(USER_EXTENSION, None)
    kept, _ = storable(USER, user)
    body = user_to_platform(user, population_id=None)
    assert population_name(kept) is None and USER_EXTENSION not in kept
    assert "population" not in body
    assert USER_EXTENSION not in user_to_scim({**body, "population": {"id": "p1"}}, population_names=None)


@settings(max_examples=100, deadline=None)
@given(scim_users)
def test_user_bodies_satisfy_the_documents_request_schema(user: dict[str, Any]) -> None:
    """Every user body (with an email) validates against components.schemas.User, no read-only attribute in it."""
    assume(user.get("emails"))
    assert_valid_request("User", user_to_platform(user, population_id="p1"))
    assert_valid_request("User", user_to_platform(storable(USER, user)[0], population_id=None))
    if (enabled := enabled_body(user)) is not None:
        Validator(schema("UserEnabled")).validate(enabled)


@settings(max_examples=100, deadline=None)
@given(platform_users)
def test_a_platform_user_comes_back_as_its_writable_part(user: dict[str, Any]) -> None:
    """Platform user -> SCIM form -> body gives back the user but what is server-set (and mfaEnabled: no SCIM name)."""
    form = user_to_scim(user, population_names=POPULATIONS)
    assert population_name(form) == POPULATIONS[user["population"]["id"]]
    assert form.get("active") == user.get("enabled")
    body = user_to_platform(form, population_id=user["population"]["id"])
    expected = {k: v for k, v in user.items() if k not in (*SERVER_SET, "mfaEnabled")}
    assert body == expected
    assert storable(USER, form) == ({k: v for k, v in form.items() if k != "id"}, [])


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_match_filters_keep_their_quoting(value: str) -> None:
    """The cycle's match filters translate to username / name with the same JSON-quoted literal, any value."""
    user_filter = platform_filter(USER, render('userName eq "%s"', value))
    assert user_filter == f"username eq {quote(value)}"
    assert platform_filter(GROUP, render('displayName eq "%s"', value)) == f"name eq {quote(value)}"
    parsed = parse_filter(user_filter)
    assert isinstance(parsed, Compare) and parsed.value == value


# ------------------------------------------------------------------------------------------ examples


def test_the_documents_put_user_example_round_trips() -> None:
    """The document's PUT users example reads as a SCIM form and comes back as the same body (accountId aside)."""
    example = request_example("users/{userID}", "put")
    form = user_to_scim(example, population_names=None)
    assert form["name"]["givenName"] == "Joe" and form["emails"] == [{"value": "joe@example.com", "primary": True}]
    assert form["phoneNumbers"] == [{"value": "+1.2225554444", "type": "work", "primary": True},
                                    {"value": "+1.4445552222", "type": "mobile"}]
    assert form["addresses"][0]["country"] == "US" and form["userType"] == "tele"
    # accountId is in the example but not in components.schemas.User
    assert user_to_platform(form, population_id=None) == {k: v for k, v in example.items() if k != "accountId"}


def test_the_documents_create_user_example_keeps_its_population() -> None:
    """The document's POST users example: the population id is sent on create; the password is never ours to send."""
    example = request_example("users", "post")
    form = user_to_scim(example, population_names={"{{populationID}}": "Sample Users"})
    assert form[USER_EXTENSION] == {"population": {"name": "Sample Users"}}
    body = user_to_platform(form, population_id="{{populationID}}")
    assert body == {k: v for k, v in example.items() if k != "password"}
    assert_valid_request("User", body)


def test_enabled_is_read_only_in_a_user_body() -> None:
    """The document makes User.enabled read-only: active goes to PUT users/{id}/enabled, never in the body."""
    assert resolved(schema("User"))["properties"]["enabled"]["readOnly"] is True
    user = {"userName": "ann", "active": False, "emails": [{"value": "ann@x.example"}]}
    assert "enabled" not in user_to_platform(user, population_id=None)
    assert enabled_body(user) == {"enabled": False} and enabled_body({"userName": "ann"}) is None


def test_storable_drops_the_enterprise_extension_and_extra_values() -> None:
    """Enterprise data, a second email and an email's type are dropped and named once; the primary email stays."""
    user = {"userName": "ann", "displayName": "Ann",
            "emails": [{"value": "old@x.example", "type": "home"}, {"value": "ann@x.example", "primary": True}],
            ENTERPRISE_USER: {"manager": {"value": "m1"}}}
    kept, dropped = storable(USER, user)
    assert kept == {"userName": "ann", "emails": [{"value": "ann@x.example", "primary": True}]}
    assert dropped == sorted(["displayName", "emails", ENTERPRISE_USER])
    assert storable(USER, kept) == (kept, [])


def test_the_documents_group_examples_translate() -> None:
    """The document's group create / update examples read as SCIM forms and give back their writable bodies."""
    for path, method in (("groups", "post"), ("groups/{groupID}", "put")):
        example = request_example(path, method)
        form = group_to_scim(example, user_members=["u1"], group_members=["g2"], population_names={})
        assert form["displayName"] == example["name"]
        assert form["members"] == [{"value": "u1", "type": "User"}, {"value": "g2", "type": "Group"}]
        body = group_to_platform(form, population_id=None)
        assert body == {k: v for k, v in example.items() if k in ("name", "description", "externalId", "userFilter")}
        assert_valid_request("Group", body)
    assert "Managers" in str(request_example("groups", "post")) and unreplicable_group(request_example(
        "groups", "post")) == "a dynamic group: PingOne adds its members by its userFilter"
    assert unreplicable_group(request_example("groups", "post"), definitions=True) is None


def test_group_population_and_storable() -> None:
    """A population group carries its name when populations are replicated; an environment-wide one never does."""
    bound = {"id": "g1", "name": "Staff", "population": {"id": "p1"}}
    form = group_to_scim(bound, user_members=[], group_members=[], population_names=POPULATIONS)
    assert form == {"id": "g1", "displayName": "Staff", GROUP_EXTENSION: {"population": {"name": "Employees"}}}
    assert population_name(form) == "Employees"
    assert GROUP_EXTENSION not in group_to_scim({"name": "All"}, user_members=[], group_members=[],
                                                population_names=POPULATIONS)
    body = group_to_platform(form, population_id="p9")
    assert body == {"name": "Staff", "population": {"id": "p9"}}
    assert_valid_request("Group", body)
    scim = {"displayName": "Staff", "members": [{"value": "u1", "type": "User", "display": "Ann"}], "owner": "x"}
    kept, dropped = storable(GROUP, scim)
    assert kept == {"displayName": "Staff", "members": [{"value": "u1", "type": "User"}]}
    assert dropped == ["members", "owner"] and storable(GROUP, kept) == (kept, [])


@pytest.mark.parametrize(("group", "why"), [
    ({"name": "Managers", "userFilter": 'title eq "Manager"'}, "dynamic group"),
    ({"name": "AD admins", "sourceType": "IDP", "sourceId": "idp-1"}, "external group (sourceType IDP)"),
    ({"name": "Gateway", "sourceId": "gw-1"}, "external group"),
    ({"name": "Plain", "userFilter": ""}, None),
])
def test_unreplicable_groups(group: dict[str, Any], why: str | None) -> None:
    """Dynamic (userFilter) and external (sourceType / sourceId) groups say why; a static group is replicated."""
    reason = unreplicable_group(group)
    assert reason is None if why is None else why in (reason or "")
    assert set(resolved(schema("Group"))["properties"]) >= {"userFilter", "sourceType", "sourceId"}


@pytest.mark.parametrize("expression", [
    "userName pr", 'not (userName eq "a")', 'emails[type eq "work"]', 'title eq "x"', 'userName gt "a"',
    "userName eq 1", 'urn:ietf:params:scim:schemas:core:2.0:User:userName eq "a"', "userName eq", "((",
])
def test_untranslatable_filters(expression: str) -> None:
    """What the Platform filter cannot say (or a filter that does not parse) gives None, never a guess."""
    assert platform_filter(USER, expression) is None


def test_filters_with_and_or() -> None:
    """and / or and the attributes a lookup uses translate, grouping kept."""
    assert platform_filter(USER, 'emails.value eq "a@x" and (userName sw "a" or externalId eq "7")') == (
        'email eq "a@x" and (username sw "a" or externalId eq "7")')
    assert platform_filter(GROUP, 'displayName eq "A \\"B\\"" or externalId eq "x"') == (
        'name eq "A \\"B\\"" or externalId eq "x"')
    assert platform_filter(GROUP, 'userName eq "a"') is None


@pytest.mark.parametrize(("body", "code", "detail"), [
    ({"id": "e1", "code": "INVALID_DATA", "message": "The request could not be completed.",
      "details": [{"code": "UNIQUENESS_VIOLATION", "target": "username", "message": "must be unique"}]},
     "UNIQUENESS_VIOLATION", "The request could not be completed. username: must be unique"),
    ({"id": "e2", "code": "UNIQUENESS_VIOLATION", "message": "exists"}, "UNIQUENESS_VIOLATION", "exists"),
    ({"id": "e3", "code": "REQUEST_LIMITED", "message": "Too many\nrequests"}, "REQUEST_LIMITED", "Too many requests"),
    ({"id": "e4", "code": "INVALID_DATA", "message": "bad", "details": [{"code": "INVALID_VALUE", "target": "email"}]},
     "INVALID_DATA", "bad email: INVALID_VALUE"),
    ({"details": [{"code": "X", "message": "m"}, "junk"]}, "X", "m"),
    ("<html>", None, ""),
])
def test_platform_error_words(body: Any, code: str | None, detail: str) -> None:
    """An error body gives its code (a uniqueness violation as such) and a one-line detail naming each target."""
    assert platform_error_words(body) == (code, detail)
    if isinstance(body, dict):
        Validator(schema("P1Error")).validate({k: v for k, v in body.items() if k != "details"})


def test_error_detail_is_bounded() -> None:
    """A long error body gives a bounded one-line detail."""
    _, detail = platform_error_words({"code": "INVALID_DATA", "message": "x" * 1000})
    assert len(detail) <= 300 and detail.endswith("…")


@given(st.text(min_size=1, max_size=40))
def test_a_member_path_names_its_member_whatever_the_quoting(value: str) -> None:
    """`members[value eq "x"]` as the planner writes it (quote) gives back x; other paths give None."""
    from replicator.pipeline.pingone import member_filter_value
    from replicator.scim.filters import quote

    assert member_filter_value(f"members[value eq {quote(value)}]") == value
    assert member_filter_value(f"MEMBERS[ value EQ {quote(value)} ]") == value
    assert member_filter_value("members") is None
    assert member_filter_value(f"emails[value eq {quote(value)}]") is None
