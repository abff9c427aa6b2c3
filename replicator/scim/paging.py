"""Paged reads: how far a listing got, duplicates, page sizes, and whether the read is complete.

`ReadReport.complete` is the only licence to treat an object absent from a listing as deleted: the read
must have finished, met no problem, and seen at least the totalResults the server announced.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from replicator.scim.wire import ListResponse, any_decoder, id_decoder


@dataclass
class ReadReport:
    """How a listing went; `complete` is the only licence to treat an absent object as deleted."""

    kind: str
    total_results: int | None = None
    seen: int = 0
    duplicates: int = 0
    pages: int = 0
    problems: list[str] = field(default_factory=list)
    finished: bool = False

    @property
    def complete(self) -> bool:
        if not self.finished or self.problems:
            return False
        return self.total_results is None or self.seen >= self.total_results


def uses_cursor(paging: str, advertised: bool) -> bool:
    """Cursor paging when configured so ("cursor"), index paging when configured so ("index"); otherwise
    ("auto") cursors whenever the server advertises them: they stay stable while the directory changes."""
    return {"cursor": True, "index": False}.get(paging, advertised)


def note_total(report: ReadReport, total: int | None) -> None:
    """Record a page's totalResults: the first one counts; a different one later is a problem of the read."""
    if total is None:
        return
    if report.total_results is not None and total != report.total_results:
        report.problems.append(f"totalResults changed during the read ({report.total_results} -> {total})")
    report.total_results = total if report.total_results is None else report.total_results


def next_count(count: int, page_size: int, max_page_bytes: int, resources: int, payload_bytes: int,
               read: int) -> int:
    """The count to ask for next when pages should stay under `max_page_bytes`: as many resources as the
    last page (`resources` in `payload_bytes`) averages into that size, at most four times `count` and
    `page_size`, at least one, and a divisor of `read` (`aligned_count`)."""
    fits = int(max_page_bytes * resources / max(1, payload_bytes))
    return aligned_count(max(1, min(page_size, 4 * count, fits)), read)


def aligned_count(wanted: int, read: int) -> int:
    """The largest page size up to `wanted` that divides `read`, the number of resources read so far.

    Some servers list page number (startIndex-1) // count instead of starting at startIndex; with such
    a count they still start the next page where the last one ended. Pure."""
    return next((size for size in range(wanted, 1, -1) if read % size == 0), 1)


def remembering() -> Callable[[list[str]], Awaitable[set[str]]]:
    """A `read_before` that keeps the ids read in a set."""
    seen: set[str] = set()

    async def read_before(ids: list[str]) -> set[str]:
        earlier = {rid for rid in ids if rid in seen}
        seen.update(ids)
        return earlier

    return read_before


async def fresh_resources(
    page: ListResponse, report: ReadReport, with_raw: bool,
    read_before: Callable[[list[str]], Awaitable[set[str]]],
) -> list[Any]:
    """The page's resources with an id that was not read before: decoded, or (id, JSON) pairs, each
    JSON a `msgspec.Raw` view into the page's payload, which it keeps (memory: no copy of every
    resource beside the payload; a page holding a group of a million members is tens of megabytes)."""
    identified: list[tuple[str, Any]] = []
    for raw in page.Resources:
        try:
            if with_raw:
                resource = None
                rid = id_decoder.decode(raw).id
            else:
                resource = any_decoder.decode(raw)
                rid = resource.get("id") if isinstance(resource, dict) else None
        except (msgspec.DecodeError, msgspec.ValidationError):
            rid = None
        if isinstance(rid, int) and not isinstance(rid, bool):
            rid = str(rid)  # some servers number their resources
            if isinstance(resource, dict):
                resource["id"] = rid
        if not isinstance(rid, str) or not rid:
            report.problems.append(f"page {report.pages}: a resource without id")
            continue
        identified.append((rid, (rid, raw) if with_raw else resource))
    earlier = await read_before(list(dict.fromkeys(rid for rid, _ in identified)))
    fresh: list[Any] = []
    on_page: set[str] = set()
    for rid, item in identified:
        if rid in earlier or rid in on_page:
            report.duplicates += 1
            continue
        on_page.add(rid)
        fresh.append(item)
    report.seen += len(fresh)
    return fresh
