"""SCIM wire records: what servers send (resources, ListResponse, errors, ServiceProviderConfig, Bulk
answers), decoded; an answer that is not JSON, or a resource without an id, is a ProtocolError.

Decoders are built once, at import. Decoding is tolerant where servers are known to differ (attribute
names in any case, numbers sent as strings) and never guesses beyond that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from yarl import URL

from replicator.errors import ProtocolError
from replicator.pipeline.pingone import platform_error_words
from replicator.scim.attributes import get_ci

SCIM_JSON = "application/scim+json"


@dataclass(frozen=True)
class ServerFeatures:
    """What a server says it supports (GET /ServiceProviderConfig), with safe defaults."""

    patch: bool = True
    filter: bool = True
    cursor_paging: bool = False
    max_results: int | None = None
    bulk: bool = False
    bulk_max_operations: int = 0
    bulk_max_payload: int = 0


@dataclass(frozen=True)
class BulkResult:
    """The answer to one operation of a Bulk request (RFC 7644 3.7.3)."""

    status: int
    location: str | None = None
    response: Any = None

    @property
    def resource_id(self) -> str | None:
        if isinstance(self.response, dict) and isinstance(self.response.get("id"), str | int):
            return str(self.response["id"])
        return URL(self.location).name if self.location else None


class ListResponse(msgspec.Struct):
    """A page of a listing (RFC 7644 3.4.2); read it with `decode_list`."""

    Resources: list[msgspec.Raw] = []  # decoded one by one: each keeps its bytes for the caller
    totalResults: int | str | None = None
    nextCursor: str | None = None

    @property
    def total_results(self) -> int | None:
        """totalResults as a number (`decode_list` has turned a numeric string into one), or None."""
        return self.totalResults if isinstance(self.totalResults, int) else None


def decode_list(payload: bytes | bytearray) -> ListResponse:
    """A ListResponse, tolerating other spellings of its attribute names (they are case-insensitive,
    and some servers write `resources`) and totalResults sent as a string."""
    page = _list_decoder.decode(payload)
    if not page.Resources and page.totalResults is None:
        fields = {key.lower(): value for key, value in _raw_fields_decoder.decode(payload).items()}
        if "resources" in fields or "totalresults" in fields:
            page = ListResponse(
                _raw_list_decoder.decode(fields["resources"]) if "resources" in fields else [],
                any_decoder.decode(fields["totalresults"]) if "totalresults" in fields else None,
                any_decoder.decode(fields["nextcursor"]) if "nextcursor" in fields else None,
            )
    if isinstance(page.totalResults, str):
        page.totalResults = int(page.totalResults) if page.totalResults.strip().isdigit() else None
    elif page.totalResults is not None and not isinstance(page.totalResults, int):
        page.totalResults = None
    return page


class Identified(msgspec.Struct):
    """Just the id of a resource."""

    id: Any = None


class ErrorBody(msgspec.Struct):
    """The words of a SCIM error answer (RFC 7644 3.12), as sent: either may be of any JSON type. PingOne's
    Platform API words its errors `{id, code, message, details: [{code, target, message}]}`: read too."""

    scimType: Any = None
    detail: Any = None
    code: Any = None
    message: Any = None
    details: Any = None


_list_decoder = msgspec.json.Decoder(ListResponse)
_raw_fields_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_raw_list_decoder = msgspec.json.Decoder(list[msgspec.Raw])
id_decoder = msgspec.json.Decoder(Identified)  # reads only `id`: the zero-change path needs no more
any_decoder = msgspec.json.Decoder()
_error_decoder = msgspec.json.Decoder(ErrorBody)


def decode_error(body: bytes | bytearray) -> ErrorBody:
    """The scimType and detail of an error answer; neither when the body is empty, not JSON, or not an
    object. A Platform API error gives its code as the scimType, its message (and first detail) as the detail."""
    try:
        words = _error_decoder.decode(body) if body else ErrorBody()
    except msgspec.DecodeError:  # a ValidationError (JSON, but not an object) is one too
        return ErrorBody()
    if words.scimType is None and words.detail is None and isinstance(words.code, str):
        code, detail = platform_error_words(msgspec.json.decode(body))
        return ErrorBody(scimType=code, detail=detail or None)
    return words


def decode_json(payload: bytes | bytearray, where: str) -> Any:
    """Any JSON answer; ProtocolError when it is not JSON (`where`: "GET /v2/Users: source")."""
    try:
        return any_decoder.decode(payload)
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"{where} answered with invalid JSON") from exc


def expect_resource(payload: bytes | bytearray, where: str) -> dict[str, Any]:
    """A resource answer with its id (a numbered id as a string); ProtocolError when it has none."""
    resource = decode_json(payload, where)
    if isinstance(resource, dict) and isinstance(resource.get("id"), int) and not isinstance(resource["id"], bool):
        resource["id"] = str(resource["id"])
    if not isinstance(resource, dict) or not isinstance(resource.get("id"), str):
        raise ProtocolError(f"{where} answered without a resource id")
    return resource


def features_from(config: Any) -> ServerFeatures | None:
    """The features a decoded ServiceProviderConfig advertises; None when it is not an object."""
    if not isinstance(config, dict):
        return None

    def supported(name: str, default: bool) -> bool:
        section = config.get(name)
        return bool(section.get("supported", default)) if isinstance(section, dict) else default

    def section(name: str) -> dict[str, Any]:
        value = config.get(name)
        return value if isinstance(value, dict) else {}

    pagination, filter_section, bulk_section = section("pagination"), section("filter"), section("bulk")
    max_results = filter_section.get("maxResults")
    return ServerFeatures(
        patch=supported("patch", True),
        filter=supported("filter", True),
        bulk=supported("bulk", False),
        bulk_max_operations=positive_int(bulk_section.get("maxOperations")),
        bulk_max_payload=positive_int(bulk_section.get("maxPayloadSize")),
        # cursors stay stable while the directory changes; prefer them whenever advertised
        cursor_paging=bool(pagination.get("cursor")),
        max_results=max_results if isinstance(max_results, int) and max_results > 0 else None,
    )


def positive_int(value: Any) -> int:
    """`value` when it is a positive integer (not a bool), else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def bulk_results(operations: list[dict[str, Any]], answer: Any) -> list[BulkResult | None] | None:
    """One result per operation of a Bulk request from the decoded BulkResponse, None where the server
    gave none (it stopped early); POST results are matched by bulkId, the others by position. None when
    the answer has no Operations list."""
    answers = get_ci(answer, "Operations") if isinstance(answer, dict) else None
    if not isinstance(answers, list):
        return None
    by_bulk_id = {str(get_ci(a, "bulkId")): a for a in answers if isinstance(a, dict) and get_ci(a, "bulkId")}
    others = iter(a for a in answers if isinstance(a, dict) and not get_ci(a, "bulkId"))
    results: list[BulkResult | None] = []
    for operation in operations:
        matched = by_bulk_id.get(str(operation.get("bulkId"))) if operation.get("bulkId") else next(others, None)
        results.append(bulk_result(matched))
    return results


def bulk_result(answer: Any) -> BulkResult | None:
    """One operation's answer; None when it has no status that reads as a number."""
    status = get_ci(answer, "status")
    if isinstance(status, dict):  # an older draft's {"code": 201}
        status = status.get("code")
    try:
        code = int(str(status))
    except (TypeError, ValueError):
        return None
    location = get_ci(answer, "location")
    return BulkResult(code, location if isinstance(location, str) else None, get_ci(answer, "response"))
