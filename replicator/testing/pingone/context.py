"""What every handler of the emulator needs from a request: its environment (found by the
middleware), its JSON body, the environment's Platform URL, and lookups of users and groups that
honour :attr:`PingOneSwitches.not_found_after_create` (a new object is briefly not found).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from replicator.testing.pingone.environment import Environment
from replicator.testing.pingone.errors import PlatformProblem, invalid_data, not_found
from replicator.testing.pingone.switches import PingOneSwitches

SWITCHES_KEY = web.AppKey("pingone_switches", PingOneSwitches)
ENVIRONMENT_OF_REQUEST = web.RequestKey("pingone_environment", Environment)


def environment_of(request: web.Request) -> Environment:
    """The environment the middleware found for this request."""
    return request[ENVIRONMENT_OF_REQUEST]


def switches_of(request: web.Request) -> PingOneSwitches:
    return request.app[SWITCHES_KEY]


def api_base(request: web.Request) -> str:
    """``{api_url}/environments/{env}`` of this request's environment."""
    return f"{request.scheme}://{request.host}/v1/environments/{environment_of(request).id}"


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's body, which must be a JSON object (else 400)."""
    try:
        body = json.loads(await request.read() or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PlatformProblem(400, "INVALID_REQUEST", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise PlatformProblem(400, "INVALID_REQUEST", "The request body must be a JSON object.")
    return body


def referenced_id(body: dict[str, Any]) -> str:
    """The ``id`` of a ``{"id": ...}`` body (memberships, nesting, population)."""
    if not isinstance(body.get("id"), str):
        raise invalid_data("id", 'the body must be {"id": "<id>"}', "REQUIRED_VALUE")
    return str(body["id"])


def hide_new(request: web.Request, object_id: str) -> None:
    """A just-created object: the next N requests naming it answer 404 (eventual consistency)."""
    count = switches_of(request).not_found_after_create
    if count > 0:
        environment_of(request).hidden[object_id] = count


def visible_user(request: web.Request, key: str = "user") -> dict[str, Any]:
    """The user named in the path (404 if none, or still hidden after its create)."""
    return environment_of(request).directory.user(_visible_id(request, key))


def visible_group(request: web.Request, key: str = "group") -> dict[str, Any]:
    return environment_of(request).directory.group(_visible_id(request, key))


def _visible_id(request: web.Request, key: str) -> str:
    object_id = request.match_info[key]
    hidden = environment_of(request).hidden
    if hidden.get(object_id, 0) > 0:
        hidden[object_id] -= 1
        raise not_found()
    return object_id
