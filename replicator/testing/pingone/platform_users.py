"""The Platform API's user routes under ``/v1/environments/{env}/``: ``users`` (list with filter and
cursor paging, at most 200 a page; create), ``users/{id}`` (GET, PUT, PATCH, DELETE),
``users/{id}/enabled`` and ``users/{id}/population`` (GET, PUT), ``users/{id}/memberOfGroups``
(GET entries typed DIRECT/INDIRECT, POST ``{"id": groupId}``, GET/DELETE ``/{groupId}``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from replicator.testing.pingone.context import (
    api_base,
    environment_of,
    hide_new,
    json_body,
    referenced_id,
    switches_of,
    visible_user,
)
from replicator.testing.pingone.errors import invalid_data, not_found
from replicator.testing.pingone.filters import FilterError, matches, parse_filter
from replicator.testing.pingone.hal import hal_page, linked
from replicator.testing.pingone.memberships import MembershipType
from replicator.testing.pingone.switches import MAX_LIMIT, USER_PAGE_CAP

PREFIX = "/v1/environments/{env}"


def add_user_routes(app: web.Application) -> None:
    users, one = f"{PREFIX}/users", f"{PREFIX}/users/{{user}}"
    app.router.add_get(users, list_users)
    app.router.add_post(users, create_user)
    app.router.add_get(one, read_user)
    app.router.add_put(one, replace_user)
    app.router.add_patch(one, patch_user)
    app.router.add_delete(one, delete_user)
    app.router.add_get(f"{one}/enabled", read_enabled)
    app.router.add_put(f"{one}/enabled", update_enabled)
    app.router.add_get(f"{one}/population", read_population)
    app.router.add_put(f"{one}/population", update_population)
    app.router.add_get(f"{one}/memberOfGroups", list_memberships)
    app.router.add_post(f"{one}/memberOfGroups", add_membership)
    app.router.add_get(f"{one}/memberOfGroups/{{group}}", read_membership)
    app.router.add_delete(f"{one}/memberOfGroups/{{group}}", remove_membership)


def user_body(request: web.Request, user: dict[str, Any]) -> dict[str, Any]:
    """A stored user as the API answers it (``include=memberOfGroupIDs``/``Names`` honoured)."""
    base = api_base(request)
    body = linked(user, f"{base}/users/{user['id']}", population=f"{base}/populations/{user['population']['id']}")
    include = request.query.get("include", "")
    if include in ("memberOfGroupIDs", "memberOfGroupNames"):
        groups = environment_of(request).groups_of(user["id"])
        directory = environment_of(request).directory
        body[include] = sorted(groups) if include == "memberOfGroupIDs" else sorted(
            directory.groups[g]["name"] for g in groups)
    return body


async def list_users(request: web.Request) -> web.Response:
    environment, switches = environment_of(request), switches_of(request)
    users = list(environment.directory.users.values())
    text = request.query.get("filter")
    if text:
        try:
            node = parse_filter(text)
        except FilterError as error:
            raise invalid_data("filter", str(error)) from None
        indirect = switches.member_filter_includes_indirect
        ignore_case = frozenset({"username"}) if switches.username_case_insensitive else frozenset()

        tests: dict[str, Callable[[str], bool]] = {}  # group id -> its membership test, for this request

        def keep(user: dict[str, Any]) -> bool:
            def member_of(group_id: str) -> bool:
                if group_id not in tests:
                    tests[group_id] = environment.memberships.member_test(group_id, indirect)
                return tests[group_id](user["id"])
            return matches(node, user, member_of, ignore_case)
        users = [user for user in users if keep(user)]
    bodies = [user_body(request, user) for user in users]
    return web.json_response(hal_page(bodies, "users", f"{api_base(request)}/users", request.query, USER_PAGE_CAP))


async def create_user(request: web.Request) -> web.Response:
    user = environment_of(request).directory.create_user(await json_body(request))
    hide_new(request, user["id"])
    return web.json_response(user_body(request, user), status=201)


async def read_user(request: web.Request) -> web.Response:
    return web.json_response(user_body(request, visible_user(request)))


async def replace_user(request: web.Request) -> web.Response:
    user_id = visible_user(request)["id"]
    user = environment_of(request).directory.update_user(user_id, await json_body(request), replace=True)
    return web.json_response(user_body(request, user))


async def patch_user(request: web.Request) -> web.Response:
    user_id = visible_user(request)["id"]
    user = environment_of(request).directory.update_user(user_id, await json_body(request), replace=False)
    return web.json_response(user_body(request, user))


async def delete_user(request: web.Request) -> web.Response:
    user_id = visible_user(request)["id"]
    environment = environment_of(request)
    del environment.directory.users[user_id]
    environment.memberships.forget(user_id=user_id)
    return web.Response(status=204)


async def read_enabled(request: web.Request) -> web.Response:
    user = visible_user(request)
    return web.json_response(linked({"enabled": user["enabled"]}, f"{api_base(request)}/users/{user['id']}/enabled"))


async def update_enabled(request: web.Request) -> web.Response:
    user = visible_user(request)
    body = await json_body(request)
    if not isinstance(body.get("enabled"), bool):
        raise invalid_data("enabled", "enabled must be true or false", "REQUIRED_VALUE")
    user["enabled"] = body["enabled"]
    return web.json_response(linked({"enabled": user["enabled"]}, f"{api_base(request)}/users/{user['id']}/enabled"))


async def read_population(request: web.Request) -> web.Response:
    user = visible_user(request)
    href = f"{api_base(request)}/users/{user['id']}/population"
    return web.json_response(linked({"id": user["population"]["id"]}, href))


async def update_population(request: web.Request) -> web.Response:
    """Move a user to another population; it leaves the groups of the one it leaves (doc)."""
    user = visible_user(request)
    environment = environment_of(request)
    population_id = referenced_id(await json_body(request))
    environment.directory.population(population_id)
    old = user["population"]["id"]
    if population_id != old:
        user["population"] = {"id": population_id}
        environment.memberships.leave_population(user["id"], old)
    return web.json_response(linked({"id": population_id}, f"{api_base(request)}/users/{user['id']}/population"))


def membership_body(request: web.Request, user_id: str, group_id: str, kind: MembershipType) -> dict[str, Any]:
    base = api_base(request)
    group = environment_of(request).directory.groups[group_id]
    body = {"id": group_id, "name": group["name"], "type": kind, "environment": {"id": environment_of(request).id}}
    return linked(body, f"{base}/users/{user_id}/memberOfGroups/{group_id}", group=f"{base}/groups/{group_id}")


async def list_memberships(request: web.Request) -> web.Response:
    user = visible_user(request)
    groups = environment_of(request).groups_of(user["id"])
    bodies = [membership_body(request, user["id"], gid, kind) for gid, kind in sorted(groups.items())]
    url = f"{api_base(request)}/users/{user['id']}/memberOfGroups"
    return web.json_response(hal_page(bodies, "groupMemberships", url, request.query, MAX_LIMIT))


async def add_membership(request: web.Request) -> web.Response:
    user = visible_user(request)
    group_id = referenced_id(await json_body(request))
    environment_of(request).add_member(group_id, user["id"])
    return web.json_response(membership_body(request, user["id"], group_id, "DIRECT"), status=201)


async def read_membership(request: web.Request) -> web.Response:
    user = visible_user(request)
    group_id = request.match_info["group"]
    kind = environment_of(request).groups_of(user["id"]).get(group_id)
    if kind is None:
        raise not_found("group membership")
    return web.json_response(membership_body(request, user["id"], group_id, kind))


async def remove_membership(request: web.Request) -> web.Response:
    user = visible_user(request)
    environment_of(request).memberships.remove_member(user["id"], request.match_info["group"])
    return web.Response(status=204)
