"""The HAL answers of the Platform API: one object with ``_links.self``, and lists
``{_links: {self, next?}, _embedded: {<key>: [...]}, count, size}`` paged by an opaque cursor
(follow ``_links.next.href`` until it is absent). ``count`` is every match, ``size`` this page's.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from replicator.testing.pingone.errors import invalid_data
from replicator.testing.pingone.switches import DEFAULT_LIMIT, MAX_LIMIT


def linked(resource: Mapping[str, Any], href: str, **links: str) -> dict[str, Any]:
    """``resource`` with ``_links.self`` (and the other links given) added."""
    return {**resource, "_links": {"self": {"href": href}, **{k: {"href": v} for k, v in links.items()}}}


def page_limit(query: Mapping[str, str], cap: int) -> int:
    """The page size: ``limit`` (1..1000, default 100), at most ``cap``."""
    text = query.get("limit", str(DEFAULT_LIMIT))
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise invalid_data("limit", f"limit must be an integer 1..{MAX_LIMIT}")
    return min(int(text), cap)


def cursor_offset(query: Mapping[str, str]) -> int:
    """Where the page starts: the offset the ``cursor`` encodes (none: 0)."""
    cursor = query.get("cursor")
    if cursor is None:
        return 0
    try:
        return int(base64.urlsafe_b64decode(cursor.encode() + b"==").decode().removeprefix("offset:"))
    except ValueError:
        raise invalid_data("cursor", "the cursor is not valid") from None


def hal_page(items: Sequence[Mapping[str, Any]], key: str, collection_url: str, query: Mapping[str, str],
             cap: int) -> dict[str, Any]:
    """One page of ``items`` from the query's cursor, of the query's limit (at most ``cap``)."""
    limit = page_limit(query, cap)
    offset = cursor_offset(query)
    page = list(items[offset:offset + limit])
    kept = {k: v for k, v in query.items() if k not in ("cursor",)}
    links: dict[str, Any] = {"self": {"href": _url(collection_url, query)}}
    if offset + limit < len(items):
        cursor = base64.urlsafe_b64encode(f"offset:{offset + limit}".encode()).decode().rstrip("=")
        links["next"] = {"href": _url(collection_url, {**kept, "limit": str(limit), "cursor": cursor})}
    return {"_links": links, "_embedded": {key: page}, "count": len(items), "size": len(page)}


def _url(base: str, query: Mapping[str, str]) -> str:
    return f"{base}?{urlencode(query)}" if query else base
