"""Checking bodies against the trimmed PingOne OpenAPI document beside this file
(pingone-openapi-subset.yaml): the request body an operation takes and the response body of each
status it documents, by JSON Schema (draft 4, as OpenAPI 3.0 schemas are; ``pattern`` by the
``regex`` module, since the document's patterns use ``\\p{L}`` classes Python's ``re`` lacks); and
every request the emulator recorded (``assert_requests_documented``): its operation, query parameters,
body and content type, no read-only property sent (OpenAPI 3.0), and RFC 7644's query of a SCIM GET.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import regex
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

DOCUMENT = Path(__file__).with_name("pingone-openapi-subset.yaml")
URI = "urn:pingone-openapi-subset"


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[jsonschema.ValidationError]:
    if validator.is_type(instance, "string") and not regex.search(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


Validator = jsonschema.validators.extend(jsonschema.Draft4Validator, {"pattern": _pattern})


@functools.cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text())
    return loaded


@functools.cache
def _registry() -> Registry:
    return Registry().with_resource(URI, Resource.from_contents(document(), default_specification=DRAFT4))


def operation(method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The document's (path template, operation) for a Platform request path (after ``/v1``)."""
    for template, operations in document()["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in operations:
            return template, operations[method.lower()]
    raise AssertionError(f"{method} {path} is not an operation of the trimmed OpenAPI document")


def validate(instance: Any, schema_ref: str) -> None:
    """Validate against a ``#/components/...`` reference; raise jsonschema.ValidationError."""
    Validator({"$ref": f"{URI}{schema_ref}"}, registry=_registry()).validate(instance)


def _content_ref(container: dict[str, Any]) -> str | None:
    while "$ref" in container:  # a components/responses reference
        container = document()["components"]["responses"][container["$ref"].rsplit("/", 1)[1]]
    schema = container.get("content", {}).get("application/json", {}).get("schema")
    return None if schema is None else str(schema["$ref"])


def validate_request(method: str, path: str, body: Any) -> None:
    """The body of a Platform request, against its operation's requestBody schema."""
    _, op = operation(method, path)
    if "requestBody" not in op:
        raise AssertionError(f"{method} {path} takes no body in the document")
    ref = _content_ref(op["requestBody"])
    assert ref is not None
    validate(body, ref)


def validate_response(method: str, path: str, status: int, body: Any) -> None:
    """A Platform answer, against the schema its operation documents for ``status`` (503 and other
    undocumented statuses: the P1Error schema every documented error uses)."""
    _, op = operation(method, path)
    response = op["responses"].get(str(status))
    if response is None:
        assert status >= 400, f"{method} {path} documents no {status} answer"
        validate(body, "#/components/schemas/P1Error")
        return
    ref = _content_ref(response)
    if ref is None:
        assert body is None, f"{method} {path} {status} documents no body, got {body!r}"
        return
    validate(body, ref)


# -- every request a client sent, as the emulator recorded it (PingOneEmulator(record=True)) --------

SCIM_QUERY = {"filter", "count", "startIndex", "attributes", "excludedAttributes", "sortBy", "sortOrder"}  # RFC 7644 3.4.2


def _resolved(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document()["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def read_only_sent(instance: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """Properties of a request body the schema marks readOnly (OpenAPI 3.0: not to be sent), nested too."""
    schema = _resolved(schema)
    if not isinstance(instance, dict):
        return []
    found = []
    for name, value in instance.items():
        declared = schema.get("properties", {}).get(name)
        if declared is None:
            continue
        if declared.get("readOnly") or _resolved(declared).get("readOnly"):
            found.append(f"{where}{name}")
        else:
            found += read_only_sent(value, declared, f"{where}{name}.")
    return found


def _query_problems(op: dict[str, Any], query: list[tuple[str, str]]) -> list[str]:
    declared = {p["name"]: p.get("schema", {}) for p in op.get("parameters", []) if p["in"] == "query"}
    problems = []
    for name, value in query:
        if name not in declared:
            problems.append(f"query parameter {name!r} is not declared")
            continue
        schema = _resolved(declared[name])
        try:
            Validator(schema, registry=_registry()).validate(int(value) if schema.get("type") == "integer" else value)
        except (ValueError, jsonschema.ValidationError) as exc:
            problems.append(f"query parameter {name}={value!r}: {str(exc).splitlines()[0]}")
    return problems


def _body_problems(method: str, path: str, op: dict[str, Any], content_type: str, body: bytes) -> list[str]:
    if "requestBody" not in op:
        return [f"a body, where the operation takes none: {body[:80]!r}"] if body.strip() else []
    if content_type != "application/json":
        return [f"body sent as {content_type or 'no content type'!r}, the document says application/json"]
    try:
        instance = json.loads(body)
        validate_request(method, path, instance)
    except (ValueError, jsonschema.ValidationError) as exc:
        return [f"body {body[:120]!r}: {str(exc).splitlines()[0]}"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    return [f"read-only property {name!r} sent" for name in read_only_sent(instance, schema)]


def request_problems(method: str, path: str, query: list[tuple[str, str]], content_type: str, body: bytes) -> list[str]:
    """What is wrong with one request as it arrived (Platform: against the document's operation, its
    query parameters and request body; SCIM: RFC 7644's query parameters of a GET); [] when it conforms."""
    if path.startswith("/scim/"):
        if method != "GET":
            return []  # the replicator only reads through PingOne's SCIM API
        return [f"SCIM query parameter {name!r} is not RFC 7644's" for name, _ in query if name not in SCIM_QUERY] + [
            f"SCIM {name}={value!r} is not a positive integer" for name, value in query
            if name in ("count", "startIndex") and not (value.isdigit() and int(value) >= (name == "startIndex"))]
    if not path.startswith("/v1/"):
        return []  # the token endpoint is no part of the Platform document
    try:
        _, op = operation(method, path.removeprefix("/v1"))
    except AssertionError as exc:
        return [str(exc)]
    return _query_problems(op, query) + _body_problems(method, path.removeprefix("/v1"), op, content_type, body)


def assert_requests_documented(recorded: list[Any] | None) -> None:
    """Every recorded request conforms (see `request_problems`); the failure lists the first ones that do not."""
    assert recorded, "no requests were recorded: serve the emulator with record=True"
    problems = sorted({f"{r.method} {r.path}: {problem}" for r in recorded
                       for problem in request_problems(r.method, r.path, r.query, r.content_type, r.body)})
    assert not problems, f"{len(problems)} requests the OpenAPI document does not allow:\n" + "\n".join(problems[:15])
