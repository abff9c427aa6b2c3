"""List and search answers of the in-memory server: which resources a filter selects, index paging
(``startIndex``/``count``) and RFC 9865 cursor paging, and the ``totalResults`` reported.

Faults (capped pages, a failing list request, lying totals) and quirks (no filtering, page-number
paging, listings without members, case-exact ``userName`` filters) are applied here.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from replicator.testing.faults import FaultInjector
from replicator.testing.filter import Clause, matches_filter, parse_filter
from replicator.testing.options import Quirks
from replicator.testing.protocol import (
    GROUP,
    LIST_RESPONSE_SCHEMA,
    ResourceKind,
    ScimProblem,
    int_param,
    json_response,
)
from replicator.testing.resources import ResourceStore


def list_response(
    store: ResourceStore, kind: ResourceKind, query: Mapping[str, str], quirks: Quirks, faults: FaultInjector
) -> web.Response:
    """The answer to ``GET /<kind>`` (or a ``.search`` with the same fields)."""
    faults.count_list_request(kind.name)
    matched = select(store, kind, query.get("filter"), quirks)
    count = _page_size(query, quirks, faults)
    if quirks.cursor_paging and "cursor" in query:
        return _cursor_page(matched, query["cursor"], count, faults)
    start_index = max(int_param(query, "startIndex", 1), 1)
    if quirks.pages_by_number and count:
        start_index = (start_index - 1) // count * count + 1
    page = matched[start_index - 1 : start_index - 1 + count]
    if quirks.list_omits_members and kind is GROUP:
        page = [{k: v for k, v in item.items() if k != "members"} for item in page]
    return json_response(
        200,
        {
            "schemas": [LIST_RESPONSE_SCHEMA],
            "totalResults": faults.reported_total(len(matched)),
            "startIndex": start_index,
            "itemsPerPage": len(page),
            "Resources": page,
        },
    )


def select(
    store: ResourceStore, kind: ResourceKind, filter_text: str | None, quirks: Quirks
) -> list[dict[str, Any]]:
    """The stored resources of ``kind`` that ``filter_text`` selects, in insertion order."""
    resources = store.of(kind)
    if filter_text is None:
        return list(resources.values())
    if not quirks.filter_supported:
        raise ScimProblem(400, "filtering is not supported", "invalidFilter")
    clauses = parse_filter(filter_text)
    candidates = _indexed_candidates(store, kind, clauses)
    if candidates is None:
        candidates = list(resources.values())
    found = [r for r in candidates if matches_filter(r, clauses, core_schema=kind.core_schema)]
    if quirks.case_exact_filters:
        found = [r for r in found if all(r.get(attr) == expected for attr, expected in clauses if attr in r)]
    return found


def _indexed_candidates(
    store: ResourceStore, kind: ResourceKind, clauses: list[Clause]
) -> list[dict[str, Any]] | None:
    """For ``userName eq "x"`` / ``displayName eq "x"``: the one candidate from the index.

    Keeps a replicator's per-resource lookups O(1) in benchmarks; None means scan.
    """
    if len(clauses) != 1:
        return None
    attr, expected = clauses[0]
    if attr.lower() != kind.unique_attribute.lower() or not isinstance(expected, str):
        return None
    token = expected if kind.unique_case_exact else expected.casefold()
    holder = store.holder_of(kind, token)
    return [store.of(kind)[holder]] if holder is not None else []


def _page_size(query: Mapping[str, str], quirks: Quirks, faults: FaultInjector) -> int:
    count = min(int_param(query, "count", quirks.max_page_size), quirks.max_page_size)
    return max(faults.page_size(count), 0)


def _cursor_page(matched: list[dict[str, Any]], cursor: str, count: int, faults: FaultInjector) -> web.Response:
    """One page of RFC 9865 cursor paging; ``nextCursor`` only when more remain."""
    offset = _decode_cursor(cursor)
    page = matched[offset : offset + count]
    body: dict[str, Any] = {
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": faults.reported_total(len(matched)),
        "itemsPerPage": len(page),
        "Resources": page,
    }
    if page and offset + len(page) < len(matched):
        body["nextCursor"] = _encode_cursor(offset + len(page))
    return json_response(200, body)


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    """The offset an opaque cursor stands for; the empty cursor is the first page."""
    if cursor == "":
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        text = ""
    label, _, number = text.partition(":")
    if label != "offset" or not number.isdigit():
        raise ScimProblem(400, f"unknown cursor {cursor!r}", "invalidCursor")
    return int(number)
