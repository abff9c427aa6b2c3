"""Tests for the in-memory SCIM 2.0 server used by the demo, integration tests and benchmarks."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from replicator.testing import Faults, MemoryScimServer, Quirks, ScimProblem, serve
from replicator.testing.patch import apply_patch
from replicator.testing.protocol import (
    ENTERPRISE_USER_SCHEMA,
    ERROR_SCHEMA,
    GROUP,
    GROUP_SCHEMA,
    LIST_RESPONSE_SCHEMA,
    PATCH_OP_SCHEMA,
    USER_SCHEMA,
)

Running = tuple[MemoryScimServer, str, aiohttp.ClientSession]


@contextlib.asynccontextmanager
async def running(**kwargs: Any) -> AsyncIterator[Running]:
    async with serve(**kwargs) as (server, base_url), aiohttp.ClientSession() as http:
        yield server, base_url, http


async def call(
    http: aiohttp.ClientSession, method: str, url: str, body: Any = None, **kwargs: Any
) -> tuple[int, Any, aiohttp.ClientResponse]:
    """Send one request; return (status, decoded JSON body or None, response)."""
    async with http.request(method, url, json=body, **kwargs) as response:
        text = await response.text()
        return response.status, (await response.json(content_type=None) if text else None), response


def user(user_name: str, /, **attributes: Any) -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA], "userName": user_name, **attributes}


def group(display_name: str, /, **attributes: Any) -> dict[str, Any]:
    return {"schemas": [GROUP_SCHEMA], "displayName": display_name, **attributes}


def patch_body(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP_SCHEMA], "Operations": list(operations)}


def assert_error(status: int, body: Any, expected: int, scim_type: str | None = None) -> None:
    assert status == expected
    assert body["schemas"] == [ERROR_SCHEMA]
    assert body["status"] == str(expected)
    assert body.get("scimType") == scim_type


# --------------------------------------------------------------------------- CRUD


async def test_create_then_get_user() -> None:
    """POST answers 201 with id, meta and Location, ignoring client id/meta; GET returns it."""
    async with running() as (server, url, http):
        body = user("alice", id="client-id", meta={"version": "x"}, active=True)
        status, created, response = await call(http, "POST", f"{url}/Users", body)
        assert status == 201
        assert response.content_type == "application/scim+json"
        assert created["id"] != "client-id" and len(created["id"]) == 32
        meta = created["meta"]
        assert meta["resourceType"] == "User"
        assert meta["version"] == 'W/"1"'
        assert meta["created"] == meta["lastModified"] and meta["created"].endswith("Z")
        assert meta["location"] == f"{url}/Users/{created['id']}"
        assert response.headers["Location"] == meta["location"]

        status, fetched, _ = await call(http, "GET", f"{url}/Users/{created['id']}")
        assert status == 200 and fetched == created
        assert server.users[created["id"]] == created


async def test_create_accepts_plain_json_content_type() -> None:
    """A body sent as application/scim+json is accepted like application/json."""
    async with running() as (_, url, http):
        data = b'{"schemas": ["%s"], "displayName": "ops"}' % GROUP_SCHEMA.encode()
        headers = {"Content-Type": "application/scim+json"}
        async with http.post(f"{url}/Groups", data=data, headers=headers) as response:
            assert response.status == 201


async def test_create_validates_body() -> None:
    """Missing schemas is invalidSyntax, missing userName/displayName invalidValue, bad JSON 400."""
    async with running() as (_, url, http):
        status, body, _ = await call(http, "POST", f"{url}/Users", {"userName": "a"})
        assert_error(status, body, 400, "invalidSyntax")
        status, body, _ = await call(http, "POST", f"{url}/Users", {"schemas": [USER_SCHEMA]})
        assert_error(status, body, 400, "invalidValue")
        status, body, _ = await call(http, "POST", f"{url}/Groups", {"schemas": [GROUP_SCHEMA]})
        assert_error(status, body, 400, "invalidValue")
        async with http.post(f"{url}/Users", data=b"{nope") as response:
            body = await response.json(content_type=None)
            assert_error(response.status, body, 400, "invalidSyntax")


async def test_username_uniqueness_is_case_insensitive() -> None:
    """userName clashes ignoring case answer 409 uniqueness; group displayName is case-exact."""
    async with running() as (server, url, http):
        await call(http, "POST", f"{url}/Users", user("Alice"))
        status, body, _ = await call(http, "POST", f"{url}/Users", user("aLICE"))
        assert_error(status, body, 409, "uniqueness")
        assert len(server.users) == 1

        assert (await call(http, "POST", f"{url}/Groups", group("Ops")))[0] == 201
        assert (await call(http, "POST", f"{url}/Groups", group("ops")))[0] == 201
        status, body, _ = await call(http, "POST", f"{url}/Groups", group("Ops"))
        assert_error(status, body, 409, "uniqueness")


async def test_unknown_ids_answer_404() -> None:
    """GET, PUT, PATCH and DELETE of an unknown id answer 404 with a SCIM error body."""
    async with running() as (_, url, http):
        for method, body in [
            ("GET", None),
            ("PUT", user("x")),
            ("PATCH", patch_body({"op": "remove", "path": "title"})),
            ("DELETE", None),
        ]:
            status, answer, _ = await call(http, method, f"{url}/Users/nope", body)
            assert_error(status, answer, 404)


async def test_delete_then_name_is_free_again() -> None:
    """DELETE answers 204, the resource is gone and its userName can be reused."""
    async with running() as (server, url, http):
        stored = server.add_user(user("bob"))
        status, body, _ = await call(http, "DELETE", f"{url}/Users/{stored['id']}")
        assert (status, body) == (204, None)
        assert (await call(http, "GET", f"{url}/Users/{stored['id']}"))[0] == 404
        assert (await call(http, "POST", f"{url}/Users", user("BOB")))[0] == 201


async def test_put_replaces_client_attributes() -> None:
    """PUT replaces all client attributes, keeps id and created, bumps version; 409 on clash."""
    async with running() as (server, url, http):
        server.add_user(user("taken"))
        stored = server.add_user(user("carol", title="Engineer", nickName="C"))
        status, body, _ = await call(
            http, "PUT", f"{url}/Users/{stored['id']}", user("carol2", id="other", title="Boss")
        )
        assert status == 200
        assert body["id"] == stored["id"]
        assert body["userName"] == "carol2" and body["title"] == "Boss"
        assert "nickName" not in body
        assert body["meta"]["created"] == stored["meta"]["created"]
        assert body["meta"]["version"] == 'W/"2"'

        status, body, _ = await call(http, "PUT", f"{url}/Users/{stored['id']}", user("TAKEN"))
        assert_error(status, body, 409, "uniqueness")


# --------------------------------------------------------------------------- listing


async def test_list_pages_advance_in_insertion_order() -> None:
    """startIndex/count walk the users in insertion order; itemsPerPage is the page length."""
    async with running() as (server, url, http):
        names = [f"user{i}" for i in range(5)]
        for name in names:
            server.add_user(user(name))
        seen: list[str] = []
        start = 1
        while True:
            _, page, _ = await call(http, "GET", f"{url}/Users?startIndex={start}&count=2")
            assert page["schemas"] == [LIST_RESPONSE_SCHEMA]
            assert page["totalResults"] == 5 and page["startIndex"] == start
            assert page["itemsPerPage"] == len(page["Resources"])
            seen += [resource["userName"] for resource in page["Resources"]]
            start += page["itemsPerPage"]
            if start > page["totalResults"]:
                break
        assert seen == names


async def test_list_count_defaults_and_caps() -> None:
    """count defaults to and is capped at max_page_size and page_cap; startIndex < 1 means 1."""
    async with running(quirks=Quirks(max_page_size=3)) as (server, url, http):
        for i in range(5):
            server.add_user(user(f"u{i}"))
        _, page, _ = await call(http, "GET", f"{url}/Users")
        assert page["itemsPerPage"] == 3
        _, page, _ = await call(http, "GET", f"{url}/Users?count=50&startIndex=-4")
        assert (page["itemsPerPage"], page["startIndex"]) == (3, 1)
        assert page["Resources"][0]["userName"] == "u0"

        server.faults.page_cap = 2
        _, page, _ = await call(http, "GET", f"{url}/Users?count=3&startIndex=4")
        assert page["itemsPerPage"] == 2 and page["totalResults"] == 5
        assert [r["userName"] for r in page["Resources"]] == ["u3", "u4"]

        _, page, _ = await call(http, "GET", f"{url}/Users?count=0")
        assert (page["itemsPerPage"], page["totalResults"]) == (0, 5)
        status, body, _ = await call(http, "GET", f"{url}/Users?count=many")
        assert_error(status, body, 400, "invalidValue")


async def test_cursor_paging_walks_all_pages() -> None:
    """cursor= starts paging, nextCursor leads on and is absent on the last page."""
    async with running(quirks=Quirks(cursor_paging=True)) as (server, url, http):
        for i in range(5):
            server.add_user(user(f"u{i}"))
        seen: list[str] = []
        cursor = ""
        while True:
            _, page, _ = await call(
                http, "GET", f"{url}/Users", params={"cursor": cursor, "count": "2"}
            )
            assert page["totalResults"] == 5
            assert page["itemsPerPage"] == len(page["Resources"])
            seen += [resource["userName"] for resource in page["Resources"]]
            if "nextCursor" not in page:
                break
            cursor = page["nextCursor"]
        assert seen == [f"u{i}" for i in range(5)]

        status, body, _ = await call(http, "GET", f"{url}/Users", params={"cursor": "bogus"})
        assert_error(status, body, 400, "invalidCursor")


# --------------------------------------------------------------------------- filters


async def filter_names(http: aiohttp.ClientSession, url: str, expression: str) -> list[str]:
    status, page, _ = await call(http, "GET", url, params={"filter": expression})
    assert status == 200, page
    assert page["totalResults"] == len(page["Resources"])
    return [r.get("userName", r.get("displayName")) for r in page["Resources"]]


async def test_filter_eq_and_conjunction() -> None:
    """eq on userName ignores case; other attributes are exact; `and` needs both clauses."""
    async with running() as (server, url, http):
        server.add_user(user("Alice", externalId="A1", active=True))
        server.add_user(user("bob", externalId="a1", active=False))
        users = f"{url}/Users"
        assert await filter_names(http, users, 'userName eq "ALICE"') == ["Alice"]
        assert await filter_names(http, users, 'USERNAME EQ "alice"') == ["Alice"]
        assert await filter_names(http, users, 'externalId eq "a1"') == ["bob"]
        assert await filter_names(http, users, 'externalId eq "A1" and userName eq "alice"') == [
            "Alice"
        ]
        assert await filter_names(http, users, 'externalId eq "A1" and userName eq "bob"') == []
        assert await filter_names(http, users, "active eq false") == ["bob"]


async def test_filter_values_with_escaped_quote_and_backslash() -> None:
    """The quoted filter value is a JSON string: \\" and \\\\ escapes are decoded."""
    async with running() as (server, url, http):
        server.add_user(user('say "hi"'))
        server.add_user(user("dom\\user"))
        server.add_group(group('ops "and" dev'))
        users = f"{url}/Users"
        assert await filter_names(http, users, r'userName eq "say \"hi\""') == ['say "hi"']
        assert await filter_names(http, users, r'userName eq "dom\\user"') == ["dom\\user"]
        groups = f"{url}/Groups"
        assert await filter_names(http, groups, r'displayName eq "ops \"and\" dev"') == [
            'ops "and" dev'
        ]


async def test_filter_dotted_and_multi_valued_attributes() -> None:
    """name.familyName and emails.value (any element) match; members.value finds groups."""
    async with running() as (server, url, http):
        alice = server.add_user(
            user(
                "alice",
                name={"familyName": "Liddell"},
                emails=[{"value": "a@x.org", "type": "work"}, {"value": "a@y.org"}],
            )
        )
        server.add_user(user("bob", name={"familyName": "Builder"}))
        server.add_group(group("readers", members=[{"value": alice["id"], "type": "User"}]))
        server.add_group(group("empty"))
        users = f"{url}/Users"
        assert await filter_names(http, users, 'name.familyName eq "Builder"') == ["bob"]
        assert await filter_names(http, users, 'emails.value eq "a@y.org"') == ["alice"]
        assert await filter_names(http, users, 'emails eq "a@x.org"') == ["alice"]
        expression = f'members.value eq "{alice["id"]}"'
        assert await filter_names(http, f"{url}/Groups", expression) == ["readers"]


async def test_unparsable_or_unsupported_filter_is_invalid_filter() -> None:
    """Operators other than eq/and, bad literals and disabled filtering answer 400 invalidFilter."""
    async with running() as (_, url, http):
        for expression in [
            'userName co "a"',
            'userName eq "a" or userName eq "b"',
            '(userName eq "a")',
            'userName eq "unterminated',
            r'userName eq "bad \q escape"',
            'userName eq "a" and',
            "userName eq",
        ]:
            status, body, _ = await call(http, "GET", f"{url}/Users", params={"filter": expression})
            assert_error(status, body, 400, "invalidFilter")
    async with running(quirks=Quirks(filter_supported=False)) as (_, url, http):
        status, body, _ = await call(
            http, "GET", f"{url}/Users", params={"filter": 'userName eq "a"'}
        )
        assert_error(status, body, 400, "invalidFilter")


# --------------------------------------------------------------------------- PATCH


async def test_patch_replace_add_remove_with_paths() -> None:
    """replace sets or merges, add appends to multi-valued, remove drops (sub-)attributes."""
    async with running() as (server, url, http):
        stored = server.add_user(
            user(
                "dave",
                title="Dev",
                nickName="D",
                name={"givenName": "Dave", "familyName": "Jones"},
                emails=[{"value": "d@x.org", "type": "work"}],
            )
        )
        status, body, _ = await call(
            http,
            "PATCH",
            f"{url}/Users/{stored['id']}",
            patch_body(
                {"op": "Replace", "path": "title", "value": "Lead"},
                {"op": "replace", "path": "name", "value": {"givenName": "David"}},
                {"op": "add", "path": "emails", "value": [{"value": "d@y.org"}]},
                {"op": "remove", "path": "nickName"},
                {"op": "remove", "path": "name.familyName"},
                {"op": "remove", "path": "notThere"},
                {"op": "replace", "path": "name.middleName", "value": "M"},
            ),
        )
        assert status == 200
        assert body["title"] == "Lead"
        assert body["name"] == {"givenName": "David", "middleName": "M"}
        assert [e["value"] for e in body["emails"]] == ["d@x.org", "d@y.org"]
        assert "nickName" not in body
        assert body["meta"]["version"] == 'W/"2"'
        assert server.users[stored["id"]] == body


async def test_patch_replace_multi_valued_and_without_path() -> None:
    """replace on a multi-valued path replaces all values; no path merges the attributes given."""
    async with running() as (server, url, http):
        stored = server.add_user(
            user("erin", emails=[{"value": "1@x.org"}, {"value": "2@x.org"}], name={"a": "1"})
        )
        status, body, _ = await call(
            http,
            "PATCH",
            f"{url}/Users/{stored['id']}",
            patch_body(
                {"op": "replace", "path": "emails", "value": [{"value": "3@x.org"}]},
                {"op": "replace", "value": {"active": False, "name": {"b": "2"}}},
                {"op": "add", "value": {"emails": [{"value": "4@x.org"}], "title": "T"}},
            ),
        )
        assert status == 200
        assert [e["value"] for e in body["emails"]] == ["3@x.org", "4@x.org"]
        assert body["active"] is False and body["title"] == "T"
        assert body["name"] == {"a": "1", "b": "2"}


async def test_patch_extension_urn_paths() -> None:
    """urn:...:User:attr and urn:...:User:attr.sub paths live under the extension URN key."""
    async with running() as (server, url, http):
        stored = server.add_user(user("frank"))
        status, body, _ = await call(
            http,
            "PATCH",
            f"{url}/Users/{stored['id']}",
            patch_body(
                {"op": "add", "path": f"{ENTERPRISE_USER_SCHEMA}:employeeNumber", "value": "42"},
                {"op": "replace", "path": f"{ENTERPRISE_USER_SCHEMA}:manager.value", "value": "m1"},
                {"op": "replace", "path": f"{USER_SCHEMA}:title", "value": "Core title"},
            ),
        )
        assert status == 200
        assert body[ENTERPRISE_USER_SCHEMA] == {"employeeNumber": "42", "manager": {"value": "m1"}}
        assert ENTERPRISE_USER_SCHEMA in body["schemas"]
        assert body["title"] == "Core title"

        _, body, _ = await call(
            http,
            "PATCH",
            f"{url}/Users/{stored['id']}",
            patch_body(
                {"op": "remove", "path": f"{ENTERPRISE_USER_SCHEMA}:manager"},
                {"op": "replace", "value": {ENTERPRISE_USER_SCHEMA: {"department": "R&D"}}},
            ),
        )
        assert body[ENTERPRISE_USER_SCHEMA] == {"employeeNumber": "42", "department": "R&D"}

        _, body, _ = await call(
            http,
            "PATCH",
            f"{url}/Users/{stored['id']}",
            patch_body({"op": "remove", "path": ENTERPRISE_USER_SCHEMA}),
        )
        assert ENTERPRISE_USER_SCHEMA not in body
        assert body["schemas"] == [USER_SCHEMA]


async def test_patch_members_value_filter_and_no_duplicates() -> None:
    """members[value eq "x"] removes every matching member; add skips members already present."""
    async with running() as (server, url, http):
        stored = server.add_group(
            group("team", members=[{"value": "a"}, {"value": "b", "type": "User"}, {"value": "a"}])
        )
        target = f"{url}/Groups/{stored['id']}"
        status, body, _ = await call(
            http,
            "PATCH",
            target,
            patch_body(
                {"op": "remove", "path": 'members[value eq "a"]'},
                {"op": "remove", "path": 'members[value eq "missing"]'},
                {"op": "add", "path": "members", "value": [{"value": "b"}, {"value": "c"}]},
            ),
        )
        assert status == 200
        assert body["members"] == [{"value": "b", "type": "User"}, {"value": "c"}]

        _, body, _ = await call(
            http,
            "PATCH",
            target,
            patch_body(
                {"op": "replace", "path": 'members[value eq "c"].display', "value": "Cee"},
                {"op": "remove", "path": "members", "value": [{"value": "b"}]},
            ),
        )
        assert body["members"] == [{"value": "c", "display": "Cee"}]

        remove_all = patch_body({"op": "remove", "path": "members"})
        _, body, _ = await call(http, "PATCH", target, remove_all)
        assert "members" not in body


def test_patch_member_adds_leave_the_original_and_skip_present_members() -> None:
    """A chain of member adds (the large-group path): each PATCH leaves the resource it was given
    unchanged, a member already present is not added twice, also after a PATCH that failed and after
    a PATCH on another list, and an in-place change through a value filter does not reach the
    earlier versions."""
    first = {"id": "g", "displayName": "g", "members": [{"value": "a"}]}
    second = apply_patch(first, patch_body({"op": "add", "path": "members", "value": [{"value": "b"}]}), GROUP)
    with pytest.raises(ScimProblem):
        apply_patch(second, patch_body({"op": "add", "path": "members", "value": [{"value": "c"}]},
                                       {"op": "remove"}), GROUP)
    other = apply_patch(first, patch_body({"op": "add", "path": "members", "value": [{"value": "x"}]}), GROUP)
    third = apply_patch(second, patch_body({"op": "add", "path": "members",
                                            "value": [{"value": "a"}, {"value": "b"}, {"value": "c"}]}), GROUP)
    fourth = apply_patch(third, patch_body({"op": "add", "path": "members", "value": [{"value": "c"}, {"value": "d"}]},
                                           {"op": "replace", "path": 'members[value eq "a"].display', "value": "A"}),
                         GROUP)
    assert first["members"] == [{"value": "a"}]
    assert second["members"] == [{"value": "a"}, {"value": "b"}]
    assert other["members"] == [{"value": "a"}, {"value": "x"}]
    assert third["members"] == [{"value": "a"}, {"value": "b"}, {"value": "c"}]
    assert fourth["members"] == [{"value": "a", "display": "A"}, {"value": "b"}, {"value": "c"}, {"value": "d"}]
    fifth = apply_patch(fourth, patch_body({"op": "add", "path": "members", "value": [{"value": "d"}, {"value": "e"}]}),
                        GROUP)
    assert [m["value"] for m in fifth["members"]] == ["a", "b", "c", "d", "e"]
    # a value filter changes, in the same PATCH, a member the add just put in: no stale identity
    renamed = apply_patch(first, patch_body(
        {"op": "replace", "path": 'members[value eq "a"].display', "value": "A"},
        {"op": "add", "path": "members", "value": [{"value": "b"}]},
        {"op": "replace", "path": 'members[value eq "b"].value', "value": "q"}), GROUP)
    again = apply_patch(renamed, patch_body({"op": "add", "path": "members", "value": [{"value": "b"}, {"value": "q"}]}),
                        GROUP)
    assert [m["value"] for m in again["members"]] == ["a", "q", "b"]


async def test_patch_without_changes_keeps_version() -> None:
    """A PATCH that changes nothing keeps lastModified and version."""
    async with running() as (server, url, http):
        stored = server.add_group(group("g", members=[{"value": "a"}]))
        _, body, _ = await call(
            http,
            "PATCH",
            f"{url}/Groups/{stored['id']}",
            patch_body({"op": "add", "path": "members", "value": [{"value": "a"}]}),
        )
        assert body["meta"] == stored["meta"]


async def test_patch_errors_apply_nothing() -> None:
    """A bad operation answers 400 with the right scimType and leaves the resource untouched."""
    async with running() as (server, url, http):
        stored = server.add_group(group("g", members=[{"value": "a"}]))
        before = dict(server.groups[stored["id"]])
        target = f"{url}/Groups/{stored['id']}"
        rename = {"op": "replace", "path": "displayName", "value": "renamed"}
        cases = [
            (patch_body(rename, {"op": "replace", "path": "bad path!", "value": 1}), "invalidPath"),
            (patch_body(rename, {"op": "remove"}), "noTarget"),
            (
                patch_body(rename, {"op": "replace", "path": 'members[value eq "z"]', "value": {}}),
                "noTarget",
            ),
            (patch_body(rename, {"op": "add", "path": "title"}), "invalidValue"),
            (patch_body(rename, {"op": "replace", "value": "not an object"}), "invalidValue"),
            (patch_body(rename, {"op": "move", "path": "title", "value": 1}), "invalidSyntax"),
            (patch_body(rename, {"op": "replace", "path": "id", "value": "x"}), "mutability"),
            (patch_body(rename, {"op": "remove", "path": "displayName"}), "invalidValue"),
            ({"Operations": [rename]}, "invalidSyntax"),
            ({"schemas": [PATCH_OP_SCHEMA], "Operations": []}, "invalidSyntax"),
        ]
        for body, scim_type in cases:
            status, answer, _ = await call(http, "PATCH", target, body)
            assert_error(status, answer, 400, scim_type)
        assert server.groups[stored["id"]] == before


async def test_patch_enforces_username_uniqueness() -> None:
    """Renaming a user through PATCH onto another userName (any case) answers 409."""
    async with running() as (server, url, http):
        server.add_user(user("grace"))
        stored = server.add_user(user("heidi"))
        status, body, _ = await call(
            http,
            "PATCH",
            f"{url}/Users/{stored['id']}",
            patch_body({"op": "replace", "path": "userName", "value": "GRACE"}),
        )
        assert_error(status, body, 409, "uniqueness")
        assert server.users[stored["id"]]["userName"] == "heidi"


async def test_patch_configuration_flags() -> None:
    """patch_returns_resource=False answers 204; patch_supported=False answers 501."""
    async with running(quirks=Quirks(patch_returns_resource=False)) as (server, url, http):
        stored = server.add_user(user("ivan"))
        status, body, _ = await call(
            http,
            "PATCH",
            f"{url}/Users/{stored['id']}",
            patch_body({"op": "replace", "path": "title", "value": "x"}),
        )
        assert (status, body) == (204, None)
        assert server.users[stored["id"]]["title"] == "x"
    async with running(quirks=Quirks(patch_supported=False)) as (server, url, http):
        stored = server.add_user(user("ivan"))
        status, body, _ = await call(
            http, "PATCH", f"{url}/Users/{stored['id']}", patch_body({"op": "remove", "path": "x"})
        )
        assert_error(status, body, 501)
        _, config, _ = await call(http, "GET", f"{url}/ServiceProviderConfig")
        assert config["patch"] == {"supported": False}


# --------------------------------------------------------------------------- config and auth


async def test_service_provider_config() -> None:
    """ServiceProviderConfig advertises patch, filter, bearer auth, pagination; no bulk or etag."""
    async with running(bearer_token="t0k", quirks=Quirks(cursor_paging=True, max_page_size=50)) as (_, url, http):
        headers = {"Authorization": "Bearer t0k"}
        status, config, _ = await call(http, "GET", f"{url}/ServiceProviderConfig", headers=headers)
        assert status == 200
        assert config["patch"]["supported"] is True
        assert config["bulk"]["supported"] is False
        assert config["filter"] == {"supported": True, "maxResults": 50}
        assert config["etag"]["supported"] is False
        assert config["sort"]["supported"] is False
        assert config["changePassword"]["supported"] is False
        assert [s["type"] for s in config["authenticationSchemes"]] == ["oauthbearertoken"]
        assert config["pagination"] == {
            "cursor": True,
            "index": True,
            "defaultPaginationMethod": "index",
            "defaultPageSize": 50,
            "maxPageSize": 50,
        }


async def test_bearer_token_is_required() -> None:
    """With bearer_token set, a missing or wrong Authorization header answers 401."""
    async with running(bearer_token="s3cret") as (_, url, http):
        status, body, _ = await call(http, "GET", f"{url}/Users")
        assert_error(status, body, 401)
        wrong = {"Authorization": "Bearer nope"}
        status, body, _ = await call(http, "POST", f"{url}/Users", user("x"), headers=wrong)
        assert_error(status, body, 401)
        right = {"Authorization": "Bearer s3cret"}
        assert (await call(http, "GET", f"{url}/Users", headers=right))[0] == 200


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("knob", "status", "retry_after"),
    [("rate_429", 429, "7"), ("rate_503", 503, "7"), ("rate_500", 500, None)],
)
async def test_error_faults(knob: str, status: int, retry_after: str | None) -> None:
    """At rate 1.0 every request fails with the status; 429/503 carry Retry-After."""
    async with running() as (server, url, http):
        setattr(server.faults, knob, 1.0)
        server.faults.retry_after = "7"
        for path in ("/Users", "/ServiceProviderConfig"):
            answer_status, body, response = await call(http, "GET", f"{url}{path}")
            assert_error(answer_status, body, status)
            assert response.headers.get("Retry-After") == retry_after
        assert server.request_log == [("GET", "/v2/Users"), ("GET", "/v2/ServiceProviderConfig")]


async def test_reset_fault_drops_the_connection() -> None:
    """rate_reset=1.0 aborts the connection: the client sees a connection error."""
    async with running(faults=Faults(rate_reset=1.0)) as (server, url, http):
        with pytest.raises(aiohttp.ClientConnectionError):
            await call(http, "GET", f"{url}/Users")
        assert server.counts()["GET"] >= 1
        server.faults.rate_reset = 0.0
        assert (await call(http, "GET", f"{url}/Users"))[0] == 200


async def test_latency_fault_delays_answers() -> None:
    """latency adds that many seconds to each request."""
    async with running(faults=Faults(latency=0.05)) as (_, url, http):
        started = time.monotonic()
        await call(http, "GET", f"{url}/Users")
        assert time.monotonic() - started >= 0.05


async def test_fail_list_page_fails_only_the_nth_list_request() -> None:
    """fail_list_page=2 makes the second Users list request answer 500, counted per type."""
    async with running(faults=Faults(fail_list_page=2)) as (_, url, http):
        assert (await call(http, "GET", f"{url}/Users"))[0] == 200
        assert (await call(http, "GET", f"{url}/Groups"))[0] == 200
        status, body, _ = await call(http, "GET", f"{url}/Users")
        assert_error(status, body, 500)
        assert (await call(http, "GET", f"{url}/Users"))[0] == 200


async def test_truncate_total_overstates_total_results() -> None:
    """truncate_total reports totalResults 5 above the items really served."""
    async with running(faults=Faults(truncate_total=True)) as (server, url, http):
        for i in range(3):
            server.add_user(user(f"u{i}"))
        _, page, _ = await call(http, "GET", f"{url}/Users")
        assert (page["totalResults"], page["itemsPerPage"]) == (8, 3)
        _, page, _ = await call(http, "GET", f"{url}/Users?startIndex=4")
        assert (page["totalResults"], page["itemsPerPage"], page["Resources"]) == (8, 0, [])


async def test_seeded_dice_are_reproducible() -> None:
    """With a seed, partial fault rates produce the same outcome sequence every run."""
    outcomes: list[list[int]] = []
    for _ in range(2):
        async with running(faults=Faults(rate_429=0.5, seed=7)) as (_, url, http):
            outcomes.append([(await call(http, "GET", f"{url}/Users"))[0] for _ in range(12)])
    assert outcomes[0] == outcomes[1]
    assert set(outcomes[0]) == {200, 429}


async def test_faults_assigned_later_are_seeded_by_their_seed() -> None:
    """Faults given to a running server take their seed: the same Faults give the same faults in order."""
    server = MemoryScimServer()
    url = await server.start()
    try:
        async def statuses() -> list[int]:
            server.faults = Faults(rate_500=0.5, seed=7)
            async with aiohttp.ClientSession() as session:
                out = []
                for _ in range(30):
                    async with session.get(url + "/Users") as response:
                        out.append(response.status)
                return out

        first, second = await statuses(), await statuses()
        assert first == second
        assert 200 in first and 500 in first  # the faults fired, as the seed decided
    finally:
        await server.stop()
