"""Each PingOneSwitches choice of the emulator, where PingOne's documents are silent, and its faults."""

from __future__ import annotations

import email.utils

from tests.pingone.conftest import Served


async def test_member_filter_indirect_switch(served: Served) -> None:
    """`memberOfGroups[id eq parent]` returns nested members only with member_filter_includes_indirect."""
    env = served.src.environment
    user, child, parent = env.add_user("ada"), env.add_group("Child"), env.add_group("Parent")
    env.add_member(child["id"], user["id"])
    env.nest(child["id"], parent["id"])
    params = {"filter": f'memberOfGroups[id eq "{parent["id"]}"]'}
    assert (await served.src.platform("GET", "users", params=params)).body["count"] == 0
    served.switches.member_filter_includes_indirect = True
    assert (await served.src.platform("GET", "users", params=params)).body["count"] == 1


async def test_username_case_switch(served: Served) -> None:
    """Usernames differing in case clash (and `eq` matches) by default; with the switch off they do not."""
    served.src.environment.add_user("Ada")
    assert (await served.src.platform("POST", "users", {"username": "ada", "email": "a@example.com"})).status == 409
    assert (await served.src.platform("GET", "users", params={"filter": 'username eq "ADA"'})).body["count"] == 1
    served.switches.username_case_insensitive = False
    assert (await served.src.platform("POST", "users", {"username": "ada", "email": "a@example.com"})).status == 201
    assert (await served.src.platform("GET", "users", params={"filter": 'username eq "ADA"'})).body["count"] == 0


async def test_not_found_after_create_switch(served: Served) -> None:
    """With not_found_after_create=2 a new user answers 404 twice, then is found; others are unaffected."""
    served.switches.not_found_after_create = 2
    created = await served.src.platform("POST", "users", {"username": "ada", "email": "ada@example.com"})
    path = f"users/{created.body['id']}"
    statuses = [(await served.src.platform("GET", path)).status for _ in range(3)]
    assert statuses == [404, 404, 200]
    group = await served.src.platform("POST", "groups", {"name": "Eng"})
    assert (await served.src.platform("GET", f"groups/{group.body['id']}/memberOfGroups")).status == 404


async def test_rate_cap_switch(served: Served) -> None:
    """Past the rate cap a request is 429 REQUEST_LIMITED with Retry-After in whole seconds."""
    served.switches.rate_cap = 0.01  # one request, then one each 100 s
    assert (await served.src.platform("GET", "users")).status == 200
    limited = await served.src.platform("GET", "users")
    assert limited.status == 429 and limited.body["code"] == "REQUEST_LIMITED"
    assert int(limited.headers["Retry-After"]) >= 1
    served.switches.rate_cap = None
    assert (await served.src.platform("GET", "users")).status == 200


async def test_rate_cap_per_environment_switch(served: Served) -> None:
    """The cap counts each environment on its own (an IP's share is per environment); with
    rate_cap_per_environment off, one environment's request uses up the other's budget too."""
    served.switches.rate_cap, served.switches.rate_cap_per_environment = 0.01, False
    assert (await served.src.platform("GET", "users")).status == 200
    assert (await served.dst.platform("GET", "users")).status == 429
    served.switches.rate_cap_per_environment = True
    assert (await served.src.platform("GET", "users")).status == 200
    assert (await served.dst.platform("GET", "users")).status == 200
    assert (await served.dst.platform("GET", "users")).status == 429


async def test_unavailable_switch(served: Served) -> None:
    """unavailable_next=1: the next request is a 503 with an HTTP-date Retry-After, the one after is served."""
    served.switches.unavailable_next = 1
    answer = await served.src.platform("GET", "groups")
    assert answer.status == 503 and email.utils.parsedate_to_datetime(answer.headers["Retry-After"]) is not None
    assert (await served.src.platform("GET", "groups")).status == 200


async def test_scim_start_index_switch(served: Served) -> None:
    """SCIM startIndex is ignored by default (page 1 again, no startIndex in the answer); switched on, it pages."""
    for n in range(5):
        served.src.environment.add_user(f"user{n}")
    first = await served.src.scim("GET", "Users", params={"count": "2"})
    again = await served.src.scim("GET", "Users", params={"count": "2", "startIndex": "3"})
    assert first.body["Resources"] == again.body["Resources"] and "startIndex" not in again.body
    served.switches.scim_start_index_advances = True
    paged = await served.src.scim("GET", "Users", params={"count": "2", "startIndex": "3"})
    assert [u["userName"] for u in paged.body["Resources"]] == ["user2", "user3"] and paged.body["startIndex"] == 3


async def test_scim_groups_switch(served: Served) -> None:
    """SCIM /Groups is 404 by default; switched on it lists groups with their DIRECT user and group members."""
    env = served.src.environment
    user, child, parent = env.add_user("ada"), env.add_group("Child"), env.add_group("Parent")
    env.add_member(parent["id"], user["id"])
    env.nest(child["id"], parent["id"])
    assert (await served.src.scim("GET", "Groups")).status == 404
    served.switches.scim_groups = True
    listed = await served.src.scim("GET", "Groups", params={"filter": 'displayName eq "Parent"'})
    assert listed.body["Resources"][0]["members"] == [{"value": user["id"], "type": "User"},
                                                      {"value": child["id"], "type": "Group"}]
