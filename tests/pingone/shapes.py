"""Checking bodies against the trimmed PingOne OpenAPI document beside this file
(pingone-openapi-subset.yaml): the request body an operation takes and the response body of each
status it documents, by JSON Schema (draft 4, as OpenAPI 3.0 schemas are; ``pattern`` by the
``regex`` module, since the document's patterns use ``\\p{L}`` classes Python's ``re`` lacks).
"""

from __future__ import annotations

import functools
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
