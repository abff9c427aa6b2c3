"""The SCIM API under ``/scim/environments/{env}/v2``: ``/Users`` (list and ``POST /Users/.search``,
which needs a JSON body; ``filter`` and ``count``, capped at 200), ``/Users/{id}``,
``/ServiceProviderConfig`` (patch yes; bulk, sort, etag, changePassword no; filter.maxResults 200),
and ``/Groups`` only with :attr:`PingOneSwitches.scim_groups`. ``startIndex`` pages only with
:attr:`PingOneSwitches.scim_start_index_advances`; otherwise it is ignored and answers carry none.
Users are the Platform users in the SCIM form of the plan (userName, name, emails, active, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from replicator.testing.pingone.context import environment_of, json_body, switches_of
from replicator.testing.pingone.errors import PlatformProblem
from replicator.testing.pingone.filters import FilterError, matches, parse_filter
from replicator.testing.pingone.switches import SCIM_MAX_RESULTS

PREFIX = "/scim/environments/{env}/v2"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
POPULATION_EXTENSION = "urn:pingidentity:schemas:extension:2.0:PingOneUser"
USER_ATTRIBUTES = {"id": "id", "username": "username", "externalid": "externalId", "active": "enabled",
                   "name.givenname": "name.given", "name.familyname": "name.family", "emails": "email",
                   "emails.value": "email", "title": "title", "nickname": "nickname"}
GROUP_ATTRIBUTES = {"id": "id", "displayname": "name", "externalid": "externalId"}


def add_scim_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/ServiceProviderConfig", service_provider_config)
    for kind in ("Users", "Groups"):
        app.router.add_get(f"{PREFIX}/{kind}", list_resources)
        app.router.add_post(f"{PREFIX}/{kind}/.search", search_resources)
        app.router.add_get(f"{PREFIX}/{kind}/{{id}}", read_resource)


def scim_error(problem: PlatformProblem) -> web.Response:
    """The problem as a SCIM error body (RFC 7644 3.12)."""
    body = {"schemas": [ERROR], "status": str(problem.status), "detail": problem.message}
    return web.json_response(body, status=problem.status, headers=problem.headers, content_type="application/scim+json")


def scim_json(body: dict[str, Any]) -> web.Response:
    return web.json_response(body, content_type="application/scim+json")


def scim_user(user: Mapping[str, Any], population_name: str) -> dict[str, Any]:
    """A Platform user in SCIM form."""
    name = user.get("name") or {}
    scim: dict[str, Any] = {"schemas": [USER_SCHEMA, POPULATION_EXTENSION], "id": user["id"],
                            "userName": user["username"], "active": user["enabled"],
                            "emails": [{"value": user["email"], "primary": True}],
                            POPULATION_EXTENSION: {"population": {"id": user["population"]["id"],
                                                                  "name": population_name}},
                            "meta": {"resourceType": "User", "created": user["createdAt"],
                                     "lastModified": user["updatedAt"]}}
    names = {"givenName": "given", "familyName": "family", "middleName": "middle", "formatted": "formatted"}
    if found := {scim_key: name[key] for scim_key, key in names.items() if key in name}:
        scim["name"] = found
    for scim_key, key in (("externalId", "externalId"), ("nickName", "nickname"), ("title", "title"),
                          ("userType", "type"), ("locale", "locale"), ("timezone", "timezone")):
        if key in user:
            scim[scim_key] = user[key]
    return scim


def _resources(request: web.Request, kind: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    environment = environment_of(request)
    if kind == "Groups":
        if not switches_of(request).scim_groups:
            raise PlatformProblem(404, "NOT_FOUND", "The requested resource was not found.")
        groups = environment.directory.groups.values()
        return [_scim_group(request, group) for group in groups], GROUP_ATTRIBUTES
    populations = environment.directory.populations
    return [scim_user(user, populations[user["population"]["id"]]["name"])
            for user in environment.directory.users.values()], USER_ATTRIBUTES


def _scim_group(request: web.Request, group: Mapping[str, Any]) -> dict[str, Any]:
    memberships = environment_of(request).memberships
    members = [{"value": uid, "type": "User"} for uid in sorted(memberships.member_ids(group["id"]))]
    members += [{"value": gid, "type": "Group"} for gid in sorted(memberships.nested_in(group["id"]))]
    return {"schemas": [GROUP_SCHEMA], "id": group["id"], "displayName": group["name"], "members": members,
            "meta": {"resourceType": "Group"}}


def _listing(request: web.Request, kind: str, query: Mapping[str, str]) -> web.Response:
    resources, attributes = _resources(request, kind)
    if text := query.get("filter"):
        try:
            node = parse_filter(text, attributes)
        except FilterError as error:
            raise PlatformProblem(400, "INVALID_FILTER", str(error)) from None
        source = {r["id"]: r for r in _platform_objects(request, kind)}
        ignore_case = frozenset({"username"}) if switches_of(request).username_case_insensitive else frozenset()
        resources = [r for r in resources if matches(node, source[r["id"]], lambda _g: False, ignore_case)]
    count = min(_integer(query, "count", SCIM_MAX_RESULTS), SCIM_MAX_RESULTS)
    advances = switches_of(request).scim_start_index_advances
    start = max(_integer(query, "startIndex", 1), 1) if advances else 1
    page = resources[start - 1:start - 1 + count]
    body: dict[str, Any] = {"schemas": [LIST_RESPONSE], "totalResults": len(resources), "Resources": page}
    if advances:
        body.update(startIndex=start, itemsPerPage=len(page))
    return scim_json(body)


def _platform_objects(request: web.Request, kind: str) -> list[dict[str, Any]]:
    directory = environment_of(request).directory
    return list((directory.groups if kind == "Groups" else directory.users).values())


def _integer(query: Mapping[str, Any], key: str, default: int) -> int:
    value = query.get(key, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PlatformProblem(400, "INVALID_VALUE", f"{key} must be an integer") from None


async def list_resources(request: web.Request) -> web.Response:
    return _listing(request, request.path.rsplit("/", 1)[1], request.query)


async def search_resources(request: web.Request) -> web.Response:
    """``POST /Users/.search``: the query as a JSON body, which is required (even ``{}``)."""
    body = await json_body(request)
    return _listing(request, request.path.split("/")[-2], {k: str(v) for k, v in body.items()})


async def read_resource(request: web.Request) -> web.Response:
    kind = request.path.split("/")[-2]
    resources, _ = _resources(request, kind)
    for resource in resources:
        if resource["id"] == request.match_info["id"]:
            return scim_json(resource)
    raise PlatformProblem(404, "NOT_FOUND", f"{kind[:-1]} {request.match_info['id']} not found")


async def service_provider_config(request: web.Request) -> web.Response:
    return scim_json({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": SCIM_MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": [{"type": "oauthbearertoken", "name": "OAuth Bearer Token",
                                   "description": "A PingOne worker app's access token", "primary": True}],
    })
