"""The emulator's SCIM API: ServiceProviderConfig, lists capped at 200, filters, .search, tokens."""

from __future__ import annotations

from tests.pingone.conftest import Served


async def test_service_provider_config(served: Served) -> None:
    """ServiceProviderConfig: patch yes; bulk, sort, etag no; filter.maxResults 200."""
    answer = await served.src.scim("GET", "ServiceProviderConfig")
    body = answer.body
    assert answer.status == 200 and body["patch"]["supported"] is True and body["filter"]["maxResults"] == 200
    assert not any(body[key]["supported"] for key in ("bulk", "sort", "etag", "changePassword"))
    assert answer.headers["Correlation-Id"]


async def test_scim_users_capped_at_200_and_filtered(served: Served) -> None:
    """A SCIM list gives at most 200 users whatever `count` asks; `userName eq` and `and`/`or` filter."""
    env = served.src.environment
    for n in range(230):
        env.add_user(f"user{n:03}", title="dev" if n % 2 else "ops")
    capped = await served.src.scim("GET", "Users", params={"count": "1000"})
    assert capped.body["totalResults"] == 230 and len(capped.body["Resources"]) == 200
    one = await served.src.scim("GET", "Users", params={"filter": 'userName eq "user007"'})
    assert [u["userName"] for u in one.body["Resources"]] == ["user007"]
    user = one.body["Resources"][0]
    assert user["emails"] == [{"value": "user007@example.com", "primary": True}] and user["active"] is True
    both = await served.src.scim("GET", "Users", params={"filter": 'userName eq "user001" or userName Eq "user002"'})
    assert both.body["totalResults"] == 2
    assert (await served.src.scim("GET", f"Users/{user['id']}")).body["userName"] == "user007"
    assert (await served.src.scim("GET", "Users", params={"filter": 'userName gt "a"'})).status == 400


async def test_scim_search_needs_a_json_body(served: Served) -> None:
    """POST /Users/.search answers with `{}` and with a filter, and is a 400 without a body."""
    served.src.environment.add_user("ada")
    assert (await served.src.scim("POST", "Users/.search", {})).body["totalResults"] == 1
    found = await served.src.scim("POST", "Users/.search", {"filter": 'userName eq "ada"', "count": 10})
    assert found.body["totalResults"] == 1
    empty = await served.src.scim("POST", "Users/.search", raw=b"")
    assert empty.status == 400 and empty.body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]


async def test_scim_needs_this_environments_token(served: Served) -> None:
    """A SCIM request with another environment's token is a 401 SCIM error."""
    served.src.token = served.dst.token
    answer = await served.src.scim("GET", "Users")
    assert answer.status == 401 and answer.body["status"] == "401"
