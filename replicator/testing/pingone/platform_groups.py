"""The Platform API's group and population routes under ``/v1/environments/{env}/``: ``groups`` (list
without members, filter, cursor paging; create), ``groups/{id}`` (GET with
``include=totalMemberCounts``, PUT, DELETE), ``groups/{id}/memberOfGroups`` (nesting: GET, POST
``{"id": parentId}``, GET/DELETE ``/{parentId}``), ``populations`` (list, create) and
``populations/{id}`` (GET).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from replicator.testing.pingone.context import (
    api_base,
    environment_of,
    hide_new,
    json_body,
    referenced_id,
    visible_group,
)
from replicator.testing.pingone.errors import invalid_data, not_found
from replicator.testing.pingone.filters import FilterError, matches, parse_filter
from replicator.testing.pingone.hal import hal_page, linked
from replicator.testing.pingone.platform_users import PREFIX
from replicator.testing.pingone.switches import MAX_LIMIT


def add_group_routes(app: web.Application) -> None:
    groups, one = f"{PREFIX}/groups", f"{PREFIX}/groups/{{group}}"
    app.router.add_get(groups, list_groups)
    app.router.add_post(groups, create_group)
    app.router.add_get(one, read_group)
    app.router.add_put(one, replace_group)
    app.router.add_delete(one, delete_group)
    app.router.add_get(f"{one}/memberOfGroups", list_nesting)
    app.router.add_post(f"{one}/memberOfGroups", add_nesting)
    app.router.add_get(f"{one}/memberOfGroups/{{parent}}", read_nesting)
    app.router.add_delete(f"{one}/memberOfGroups/{{parent}}", remove_nesting)
    app.router.add_get(f"{PREFIX}/populations", list_populations)
    app.router.add_post(f"{PREFIX}/populations", create_population)
    app.router.add_get(f"{PREFIX}/populations/{{population}}", read_population)


def group_body(request: web.Request, group: dict[str, Any]) -> dict[str, Any]:
    return linked(group, f"{api_base(request)}/groups/{group['id']}")


def filtered(items: list[dict[str, Any]], text: str | None) -> list[dict[str, Any]]:
    """``items`` matching a ``filter`` (no memberOfGroups terms outside users)."""
    if not text:
        return items
    try:
        node = parse_filter(text)
    except FilterError as error:
        raise invalid_data("filter", str(error)) from None
    return [item for item in items if matches(node, item, lambda _group: False)]


async def list_groups(request: web.Request) -> web.Response:
    groups = filtered(list(environment_of(request).directory.groups.values()), request.query.get("filter"))
    bodies = [group_body(request, group) for group in groups]
    return web.json_response(hal_page(bodies, "groups", f"{api_base(request)}/groups", request.query, MAX_LIMIT))


async def create_group(request: web.Request) -> web.Response:
    group = environment_of(request).directory.create_group(await json_body(request))
    hide_new(request, group["id"])
    return web.json_response(group_body(request, group), status=201)


async def read_group(request: web.Request) -> web.Response:
    group = visible_group(request)
    body = group_body(request, group)
    if request.query.get("include") == "totalMemberCounts":
        environment = environment_of(request)
        body["directMemberCounts"] = {"users": len(environment.member_ids(group["id"]))}
        body["totalMemberCounts"] = {"users": len(environment.member_ids(group["id"], indirect=True))}
    return web.json_response(body)


async def replace_group(request: web.Request) -> web.Response:
    group_id = visible_group(request)["id"]
    group = environment_of(request).directory.replace_group(group_id, await json_body(request))
    return web.json_response(group_body(request, group))


async def delete_group(request: web.Request) -> web.Response:
    group_id = visible_group(request)["id"]
    environment = environment_of(request)
    del environment.directory.groups[group_id]
    environment.memberships.forget(group_id=group_id)
    return web.Response(status=204)


def nesting_body(request: web.Request, group_id: str, parent_id: str) -> dict[str, Any]:
    base = api_base(request)
    parent = environment_of(request).directory.groups[parent_id]
    return linked({"id": parent_id, "name": parent["name"], "type": "DIRECT"},
                  f"{base}/groups/{group_id}/memberOfGroups/{parent_id}", group=f"{base}/groups/{parent_id}")


async def list_nesting(request: web.Request) -> web.Response:
    """The groups this group is nested in directly."""
    group = visible_group(request)
    parents = sorted(environment_of(request).memberships.parents.get(group["id"], set()))
    bodies = [nesting_body(request, group["id"], parent) for parent in parents]
    url = f"{api_base(request)}/groups/{group['id']}/memberOfGroups"
    return web.json_response(hal_page(bodies, "groupMemberships", url, request.query, MAX_LIMIT))


async def add_nesting(request: web.Request) -> web.Response:
    group = visible_group(request)
    parent_id = referenced_id(await json_body(request))
    environment_of(request).nest(group["id"], parent_id)
    body = nesting_body(request, group["id"], parent_id)
    return web.json_response({k: body[k] for k in ("_links", "id", "type")}, status=201)


async def read_nesting(request: web.Request) -> web.Response:
    group = visible_group(request)
    parent_id = request.match_info["parent"]
    if parent_id not in environment_of(request).memberships.parents.get(group["id"], set()):
        raise not_found("group nesting")
    body = nesting_body(request, group["id"], parent_id)
    return web.json_response({k: body[k] for k in ("_links", "id", "type")})


async def remove_nesting(request: web.Request) -> web.Response:
    group = visible_group(request)
    environment_of(request).memberships.unnest(group["id"], request.match_info["parent"])
    return web.Response(status=204)


def population_body(request: web.Request, population: dict[str, Any]) -> dict[str, Any]:
    users = environment_of(request).directory.users.values()
    count = sum(1 for user in users if user["population"]["id"] == population["id"])
    return linked({**population, "userCount": count}, f"{api_base(request)}/populations/{population['id']}")


async def list_populations(request: web.Request) -> web.Response:
    populations = filtered(list(environment_of(request).directory.populations.values()), request.query.get("filter"))
    bodies = [population_body(request, population) for population in populations]
    url = f"{api_base(request)}/populations"
    return web.json_response(hal_page(bodies, "populations", url, request.query, MAX_LIMIT))


async def create_population(request: web.Request) -> web.Response:
    population = environment_of(request).directory.add_population(await json_body(request))
    return web.json_response(population_body(request, population), status=201)


async def read_population(request: web.Request) -> web.Response:
    population = environment_of(request).directory.population(request.match_info["population"])
    return web.json_response(population_body(request, population))
