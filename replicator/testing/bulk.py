"""SCIM Bulk (RFC 7644 section 3.7) on the in-memory server: POST, PATCH and DELETE operations carried
out in order, ``bulkId:`` references resolved to the ids created so far, ``failOnErrors`` honoured.

Each operation succeeds or fails on its own (its result carries the status); limits on operations and
payload size answer 413 for the whole request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec
from aiohttp import web

from replicator.testing.faults import FaultInjector
from replicator.testing.kept import kept_by
from replicator.testing.options import Quirks
from replicator.testing.protocol import (
    BULK_RESPONSE_SCHEMA,
    GROUP,
    USER,
    ScimProblem,
    json_response,
    read_json_object,
)
from replicator.testing.resources import ResourceStore


async def bulk_response(
    request: web.Request, store: ResourceStore, quirks: Quirks, faults: FaultInjector, base: str,
    bodies: list[dict[str, Any]] | None,
) -> web.Response:
    """The answer to ``POST /Bulk``; each request's body is appended to ``bodies`` when it is a list."""
    if not quirks.bulk_max_operations:
        raise ScimProblem(501, "Bulk is not supported by this server")
    raw = await request.read()
    if len(raw) > quirks.bulk_max_payload:
        raise ScimProblem(413, f"payload of {len(raw)} bytes over maxPayloadSize {quirks.bulk_max_payload}")
    body = await read_json_object(request)
    if bodies is not None:
        bodies.append(body)
    operations = body.get("Operations")
    if not isinstance(operations, list):
        raise ScimProblem(400, "Operations must be an array", "invalidSyntax")
    if len(operations) > quirks.bulk_max_operations:
        raise ScimProblem(413, f"{len(operations)} operations over maxOperations {quirks.bulk_max_operations}")
    fail_on_errors = body.get("failOnErrors")
    created: dict[str, str] = {}  # bulkId -> id
    results, errors = [], 0
    for operation in operations:
        if isinstance(fail_on_errors, int) and fail_on_errors > 0 and errors >= fail_on_errors:
            break
        result = _bulk_operation(operation, created, base, store, quirks, faults)
        if int(result["status"]) >= 400:
            errors += 1
        results.append(result)
    return json_response(200, {"schemas": [BULK_RESPONSE_SCHEMA], "Operations": results})


def _bulk_operation(
    operation: Any, created: dict[str, str], base: str, store: ResourceStore, quirks: Quirks,
    faults: FaultInjector,
) -> dict[str, Any]:
    if not isinstance(operation, dict):
        return {"status": "400", "response": ScimProblem(400, "not an operation", "invalidSyntax").body()}
    method = str(operation.get("method", "")).upper()
    bulk_id = operation.get("bulkId")
    result: dict[str, Any] = {"method": method}
    if bulk_id is not None:
        result["bulkId"] = bulk_id
    try:
        path = _resolve_bulk_ids(str(operation.get("path", "")), created)
        data: Any = operation.get("data")  # anything: a PATCH with a non-object body fails in apply_patch
        if faults.faults.refuse_values:  # Bulk refuses operation by operation
            faults.refuse_values(msgspec.json.encode(data).decode())
        if quirks.bulk_resolves_references:
            data = _resolve_bulk_ids(data, created)
        segments = [p for p in path.split("/") if p]
        kind = {"Users": USER, "Groups": GROUP}.get(segments[0] if segments else "")
        if kind is None:
            raise ScimProblem(400, f"unknown path {path!r}", "invalidPath")
        if method == "POST" and len(segments) == 1:
            if not isinstance(data, dict):
                raise ScimProblem(400, "data must be an object", "invalidSyntax")
            stored = store.insert(kind, kept_by(data, quirks), base,
                                  unique_groups=quirks.unique_group_names)
            if bulk_id is not None:
                created[str(bulk_id)] = stored["id"]
            result.update(status="201", location=stored["meta"]["location"], response=stored)
        elif method == "PATCH" and len(segments) == 2:
            if not quirks.patch_supported:
                raise ScimProblem(501, "PATCH is not supported by this server")
            patched = store.patch(kind, segments[1], data, unique_groups=quirks.unique_group_names)
            if quirks.drops_attributes or quirks.keeps_first_value_of:
                patched = kept_by(patched, quirks)
                store.save(kind, patched)
            result.update(status="200", location=patched["meta"]["location"])
            if quirks.patch_returns_resource:
                result["response"] = patched
        elif method == "DELETE" and len(segments) == 2:
            store.delete(kind, segments[1])
            result.update(status="204")
        else:
            raise ScimProblem(400, f"unsupported bulk operation {method} {path}", "invalidSyntax")
    except ScimProblem as error:
        result.update(status=str(error.status), response=error.body())
    return result


def _resolve_bulk_ids(value: Any, created: Mapping[str, str]) -> Any:
    """Replace `bulkId:x` references (in a path or anywhere in data) by the ids created so far; a
    reference to no resource created so far is a 409 (RFC 7644 3.7.2)."""
    if isinstance(value, str):
        if "bulkId:" not in value:
            return value

        def created_id(match: re.Match[str]) -> str:
            if match.group(1) not in created:
                raise ScimProblem(409, f"no resource was created with bulkId {match.group(1)}", "invalidValue")
            return created[match.group(1)]

        return re.sub(r"bulkId:([^/\s\"]+)", created_id, value)
    if isinstance(value, list):
        return [_resolve_bulk_ids(v, created) for v in value]
    if isinstance(value, dict):
        return {k: _resolve_bulk_ids(v, created) for k, v in value.items()}
    return value
