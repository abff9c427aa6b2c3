"""The SCIM vocabulary the in-memory server speaks: schema URNs, the two resource kinds, the error answer
(:class:`ScimProblem`, RFC 7644 section 3.12) and JSON in and out of aiohttp.

Names here are what every other part of the server shares; nothing here keeps state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

BASE_PATH = "/v2"
SCIM_JSON = "application/scim+json"

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_RESPONSE_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK_RESPONSE_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
SERVICE_PROVIDER_CONFIG_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

# Attributes the client can never write.
READ_ONLY_ATTRIBUTES = frozenset({"id", "meta"})


class ScimProblem(Exception):
    """An answer in the SCIM error format (RFC 7644 section 3.12), raised inside the server.

    Not :class:`replicator.errors.ScimError`: that one is what the replicator's client reports.
    """

    def __init__(
        self,
        status: int,
        detail: str,
        scim_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(self.status)}
        if self.scim_type is not None:
            body["scimType"] = self.scim_type
        body["detail"] = self.detail
        return body


@dataclass(frozen=True)
class ResourceKind:
    """What differs between Users and Groups."""

    name: str  # meta.resourceType
    endpoint: str  # URL segment under /v2
    core_schema: str
    unique_attribute: str  # required, and unique among resources of this kind
    unique_case_exact: bool


USER = ResourceKind("User", "Users", USER_SCHEMA, "userName", unique_case_exact=False)
GROUP = ResourceKind("Group", "Groups", GROUP_SCHEMA, "displayName", unique_case_exact=True)


def find_key(obj: Mapping[str, Any], name: str) -> str | None:
    """The key of ``obj`` equal to ``name`` ignoring case (SCIM names are case-insensitive)."""
    if name in obj:
        return name
    lowered = name.lower()
    for key in obj:
        if key.lower() == lowered:
            return key
    return None


def json_response(
    status: int, body: Any, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, body=msgspec.json.encode(body), content_type=SCIM_JSON, headers=headers
    )


def error_response(error: ScimProblem) -> web.Response:
    return json_response(error.status, error.body(), headers=error.headers)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise ScimProblem(400, f"request body is not JSON: {exc}", "invalidSyntax") from None
    if not isinstance(body, dict):
        raise ScimProblem(400, "request body must be a JSON object", "invalidSyntax")
    return body


def int_param(query: Mapping[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ScimProblem(400, f"{name} must be an integer, got {raw!r}", "invalidValue") from None
