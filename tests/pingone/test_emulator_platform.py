"""The PingOne emulator's token endpoint and Platform API: tokens, paging, filters, creates,
memberships, nesting, populations and dynamic groups, every answer checked against the OpenAPI document."""

from __future__ import annotations

from tests.pingone.conftest import Served


async def test_token_by_basic_and_post_and_wrong_secret(served: Served) -> None:
    """Client Secret Basic and Post both give a 3600 s bearer token; a wrong secret is a 401 OAuth error."""
    good = await served.src.fetch_token()
    assert good.status == 200 and good.body["token_type"] == "Bearer" and good.body["expires_in"] == 3600
    posted = await served.src.fetch_token(post=True)
    assert posted.status == 200
    wrong = await served.src.fetch_token("not-the-secret")
    assert wrong.status == 401 and wrong.body["error"] == "invalid_client"
    assert "not-the-secret" not in str(wrong.body)


async def test_token_only_for_its_environment_and_until_expired(served: Served) -> None:
    """A Platform request with another environment's token, none, or an expired one is a 401 P1Error."""
    assert (await served.src.platform("GET", "users")).status == 200
    served.src.token = served.dst.token
    assert (await served.src.platform("GET", "users")).status == 401
    served.src.token = None
    assert (await served.src.platform("GET", "users")).status == 401
    await served.src.fetch_token()
    served.src.environment.expire_tokens()
    answer = await served.src.platform("GET", "users")
    assert answer.status == 401 and answer.body["code"] == "ACCESS_FAILED"


async def test_users_page_by_cursor_at_most_200(served: Served) -> None:
    """`limit=1000` still pages 200 users at a time; following `_links.next` reaches all 450, then stops."""
    env = served.src.environment
    for n in range(450):
        env.add_user(f"user{n:03}")
    answer = await served.src.platform("GET", "users", params={"limit": "1000"})
    seen, sizes = [], []
    while True:
        assert answer.status == 200 and answer.body["count"] == 450
        sizes.append(answer.body["size"])
        seen += [user["id"] for user in answer.body["_embedded"]["users"]]
        if "next" not in answer.body["_links"]:
            break
        answer = await served.src.platform("GET", "", url=answer.body["_links"]["next"]["href"])
    assert sizes == [200, 200, 50] and sorted(seen) == sorted(env.directory.users)
    assert (await served.src.platform("GET", "users", params={"limit": "0"})).status == 400


async def test_user_filters(served: Served) -> None:
    """`username eq`, `memberOfGroups[id eq]`, `and`/`or` select users; an unknown operator is a 400."""
    env = served.src.environment
    ada, bob, cy = (env.add_user(name, title=title) for name, title in (("ada", "boss"), ("bob", "dev"),
                                                                        ("cy", "dev")))
    group = env.add_group("Eng")
    env.add_member(group["id"], bob["id"])

    async def names(text: str) -> list[str]:
        answer = await served.src.platform("GET", "users", params={"filter": text})
        assert answer.status == 200
        return sorted(user["username"] for user in answer.body["_embedded"]["users"])

    assert await names('username eq "ada"') == ["ada"]
    assert await names(f'memberOfGroups[id eq "{group["id"]}"]') == ["bob"]
    assert await names(f'memberOfGroups[id eq "{group["id"]}"] and title eq "dev"') == ["bob"]
    assert await names('username eq "ada" or title eq "dev"') == ["ada", "bob", "cy"]
    assert await names('username sw "b" or (title eq "dev" and username eq "cy")') == ["bob", "cy"]
    assert {ada["id"], cy["id"]} <= set(env.directory.users)
    bad = await served.src.platform("GET", "users", params={"filter": 'username gt "a"'})
    assert bad.status == 400 and bad.body["details"][0]["target"] == "filter"


async def test_create_user_defaults_population_and_refuses_duplicates(served: Served) -> None:
    """POST users lands in the default population; a taken username is 409, a missing email 400."""
    env = served.src.environment
    created = await served.src.platform("POST", "users", {"username": "ada", "email": "ada@example.com"})
    assert created.status == 201 and created.body["population"]["id"] == env.population_id(None)
    assert created.body["enabled"] is True and env.directory.users[created.body["id"]]["username"] == "ada"
    taken = await served.src.platform("POST", "users", {"username": "ada", "email": "other@example.com"})
    assert taken.status == 409 and taken.body["details"][0] == {
        "code": "UNIQUENESS_VIOLATION", "target": "username", "message": "username 'ada' is taken"}
    missing = await served.src.platform("POST", "users", {"username": "bob"}, check_request=False)
    assert missing.status == 400 and missing.body["details"][0]["target"] == "email"


async def test_put_replaces_patch_merges_enabled_and_delete(served: Served) -> None:
    """PUT clears what it leaves out, PATCH keeps it; PUT enabled disables; DELETE removes (then 404)."""
    env = served.src.environment
    user = env.add_user("ada", nickname="A", title="Boss")
    path = f"users/{user['id']}"
    patched = await served.src.platform("PATCH", path, {"username": "ada", "email": "ada@example.com", "title": "CTO"})
    assert patched.status == 200 and patched.body["nickname"] == "A" and patched.body["title"] == "CTO"
    replaced = await served.src.platform("PUT", path, {"username": "ada", "email": "ada@example.com"})
    assert replaced.status == 200 and "nickname" not in replaced.body and "title" not in replaced.body
    enabled = await served.src.platform("PUT", f"{path}/enabled", {"enabled": False})
    assert enabled.status == 200 and env.directory.users[user["id"]]["enabled"] is False
    assert (await served.src.platform("GET", f"{path}/enabled")).body["enabled"] is False
    assert (await served.src.platform("DELETE", path)).status == 204
    assert (await served.src.platform("GET", path)).status == 404


async def test_memberships_direct_and_indirect_through_nesting(served: Served) -> None:
    """A user added to a group nested in a parent lists the group DIRECT and the parent INDIRECT."""
    env = served.src.environment
    user = env.add_user("ada")
    child, parent = env.add_group("Child"), env.add_group("Parent")
    added = await served.src.platform("POST", f"users/{user['id']}/memberOfGroups", {"id": child["id"]})
    assert added.status == 201 and added.body["type"] == "DIRECT"
    nested = await served.src.platform("POST", f"groups/{child['id']}/memberOfGroups", {"id": parent["id"]})
    assert nested.status == 201 and nested.body["id"] == parent["id"]
    listed = await served.src.platform("GET", f"users/{user['id']}/memberOfGroups")
    kinds = {entry["id"]: entry["type"] for entry in listed.body["_embedded"]["groupMemberships"]}
    assert kinds == {child["id"]: "DIRECT", parent["id"]: "INDIRECT"} == env.groups_of(user["id"])
    one = await served.src.platform("GET", f"users/{user['id']}/memberOfGroups/{parent['id']}")
    assert one.status == 200 and one.body["type"] == "INDIRECT"
    parents = await served.src.platform("GET", f"groups/{child['id']}/memberOfGroups")
    assert [entry["id"] for entry in parents.body["_embedded"]["groupMemberships"]] == [parent["id"]]
    again = await served.src.platform("POST", f"users/{user['id']}/memberOfGroups", {"id": child["id"]})
    assert again.status == 409
    assert (await served.src.platform("DELETE", f"groups/{child['id']}/memberOfGroups/{parent['id']}")).status == 204
    assert (await served.src.platform("DELETE", f"users/{user['id']}/memberOfGroups/{child['id']}")).status == 204
    assert env.groups_of(user["id"]) == {} and env.sizes()["nestings"] == 0


async def test_nesting_refuses_cycles_and_more_than_250(served: Served) -> None:
    """A nesting cycle is a 400, and so is a 251st group nested in one group."""
    env = served.src.environment
    parent = env.add_group("Parent")
    children = [env.add_group(f"Child{n}") for n in range(251)]
    for child in children[:250]:
        env.nest(child["id"], parent["id"])
    full = await served.src.platform("POST", f"groups/{children[250]['id']}/memberOfGroups", {"id": parent["id"]})
    assert full.status == 400 and full.body["details"][0]["code"] == "SIZE_LIMIT_EXCEEDED"
    cycle = await served.src.platform("POST", f"groups/{parent['id']}/memberOfGroups", {"id": children[0]["id"]})
    assert cycle.status == 400


async def test_groups_list_without_members_and_unique_names_per_scope(served: Served) -> None:
    """Group listings carry no members; a name is unique per environment-wide scope or population (409)."""
    env = served.src.environment
    env.add_population("Staff")
    group = env.add_group("Eng")
    env.add_member(group["id"], env.add_user("ada")["id"])
    listed = await served.src.platform("GET", "groups")
    assert [g["name"] for g in listed.body["_embedded"]["groups"]] == ["Eng"]
    assert not {"members", "totalMemberCounts"} & set(listed.body["_embedded"]["groups"][0])
    counted = await served.src.platform("GET", f"groups/{group['id']}", params={"include": "totalMemberCounts"})
    assert counted.body["totalMemberCounts"] == {"users": 1}
    assert (await served.src.platform("POST", "groups", {"name": "Eng"})).status == 409
    staff = {"id": env.population_id("Staff")}
    assert (await served.src.platform("POST", "groups", {"name": "Eng", "population": staff})).status == 201
    assert (await served.src.platform("POST", "groups", {"name": "Eng", "population": staff})).status == 409
    renamed = await served.src.platform("PUT", f"groups/{group['id']}", {"name": "Engineering"})
    assert renamed.status == 200 and env.directory.groups[group["id"]]["name"] == "Engineering"
    assert (await served.src.platform("DELETE", f"groups/{group['id']}")).status == 204
    assert env.sizes()["memberships"] == 0


async def test_populations_default_create_read_and_move(served: Served) -> None:
    """One default population; POST/GET populations; moving a user out of a population leaves its groups."""
    env = served.src.environment
    listed = await served.src.platform("GET", "populations")
    assert [p["default"] for p in listed.body["_embedded"]["populations"]] == [True]
    created = await served.src.platform("POST", "populations", {"name": "Staff"})
    assert created.status == 201 and created.body["default"] is False
    read = await served.src.platform("GET", f"populations/{created.body['id']}")
    assert read.body["name"] == "Staff" and read.body["userCount"] == 0
    user = env.add_user("ada", population="Staff")
    group = env.add_group("StaffOnly", population="Staff")
    env.add_member(group["id"], user["id"])
    moved = await served.src.platform("PUT", f"users/{user['id']}/population", {"id": env.population_id(None)})
    assert moved.status == 200 and moved.body["id"] == env.population_id(None)
    assert env.groups_of(user["id"]) == {}
    stray = await served.src.platform("POST", f"users/{user['id']}/memberOfGroups", {"id": group["id"]})
    assert stray.status == 400


async def test_dynamic_and_external_groups_compute_members(served: Served) -> None:
    """A userFilter group's DIRECT members are the users matching it; its and an external group's are not writable."""
    env = served.src.environment
    boss, dev = env.add_user("ada", title="Manager"), env.add_user("bob", title="Dev")
    created = await served.src.platform("POST", "groups", {"name": "Managers", "userFilter": 'title eq "Manager"'})
    dynamic = created.body["id"]
    assert env.member_ids(dynamic) == {boss["id"]} and env.groups_of(boss["id"]) == {dynamic: "DIRECT"}
    members = await served.src.platform("GET", "users", params={"filter": f'memberOfGroups[id eq "{dynamic}"]'})
    assert [u["username"] for u in members.body["_embedded"]["users"]] == ["ada"]
    refused = await served.src.platform("POST", f"users/{dev['id']}/memberOfGroups", {"id": dynamic})
    assert refused.status == 400
    external = env.add_group("FromIdP", source_type="IDP", source_id="idp-1")
    read = await served.src.platform("GET", f"groups/{external['id']}")
    assert read.body["sourceType"] == "IDP"
    assert (await served.src.platform("POST", f"users/{dev['id']}/memberOfGroups", {"id": external["id"]})).status == 400


async def test_correlation_id_request_log_and_counts(served: Served) -> None:
    """Every answer has a Correlation-Id; each environment logs its own (method, path, status)."""
    answer = await served.src.platform("GET", "users/nobody")
    assert answer.status == 404 and answer.headers["Correlation-Id"]
    env = served.src.environment
    assert env.request_log == [("POST", "/src-env/as/token", 200), ("GET", "/v1/environments/src-env/users/nobody", 404)]
    assert env.counts() == {"POST": 1, "GET": 1}
    assert served.dst.environment.counts() == {"POST": 1}
    assert (await served.src.platform("GET", "", url=f"{served.emulator.api_url}/environments/nope/users")).status == 404


async def test_wrong_method_is_a_logged_405(served: Served) -> None:
    """A method the document does not give a path (PATCH groups/{id}) is a 405 P1Error, logged."""
    group = served.src.environment.add_group("Eng")
    answer = await served.src._send("PATCH", f"{served.emulator.api_url}/environments/src-env/groups/{group['id']}",
                                    {"name": "x"}, None)
    assert answer.status == 405 and answer.body["code"] == "METHOD_NOT_ALLOWED"
    assert served.src.environment.request_log[-1][2] == 405
