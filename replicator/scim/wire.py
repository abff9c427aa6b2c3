"""SCIM wire records: what servers send (ListResponse, ServiceProviderConfig, Bulk answers), decoded.

Decoders are built once, at import. Decoding is tolerant where servers are known to differ (attribute
names in any case, numbers sent as strings) and never guesses beyond that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from yarl import URL

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
    Resources: list[msgspec.Raw] = []  # decoded one by one: each keeps its bytes for the caller
    totalResults: int | str | None = None
    nextCursor: str | None = None


def decode_list(payload: bytes) -> ListResponse:
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
    id: Any = None


_list_decoder = msgspec.json.Decoder(ListResponse)
_raw_fields_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_raw_list_decoder = msgspec.json.Decoder(list[msgspec.Raw])
id_decoder = msgspec.json.Decoder(Identified)  # reads only `id`: the zero-change path needs no more
any_decoder = msgspec.json.Decoder()


def _field(mapping: Any, name: str) -> Any:
    """A JSON attribute by name, case-insensitively (RFC 7643 2.1)."""
    if not isinstance(mapping, dict):
        return None
    if name in mapping:
        return mapping[name]
    lowered = name.lower()
    return next((v for k, v in mapping.items() if k.lower() == lowered), None)


def positive_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def bulk_result(answer: Any) -> BulkResult | None:
    status = _field(answer, "status")
    if isinstance(status, dict):  # an older draft's {"code": 201}
        status = status.get("code")
    try:
        code = int(str(status))
    except (TypeError, ValueError):
        return None
    location = _field(answer, "location")
    return BulkResult(code, location if isinstance(location, str) else None, _field(answer, "response"))
