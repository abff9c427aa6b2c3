"""The directory seam: what a replication cycle asks of a source or a destination (`Directory`).

The cycle talks to this protocol only, never to a client class: `ScimClient` implements it for SCIM 2.0
servers, and another kind of directory (PingOne's Platform API) implements it the same way. Resources
travel as SCIM-shaped dicts (`schemas`, `id`, attributes, `members` of `{"value": id}`); errors are
those of `replicator.errors` (NotFoundError for a 404, ConflictError for a taken key, ...), whichever
protocol lies beneath. `tests/contract/` runs one suite over every implementation.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from replicator.scim.paging import ReadReport
from replicator.scim.wire import BulkResult, ServerFeatures


class Directory(Protocol):
    """One side of the replication: discover it, read it page by page, write it object by object."""

    name: str  # which side this is, in messages ("source", "destination")
    features: ServerFeatures  # what `discover` learned (safe defaults before)

    @property
    def requests(self) -> Mapping[str, int]:
        """Requests sent so far, by HTTP method (or the implementation's equivalent)."""
        ...

    def flow(self) -> dict[str, float]:
        """How the calls went so far, as floats: `concurrency`, `concurrency_cuts` and `paused_seconds`
        always; `latency_p50_ms`, `latency_p90_ms`, `latency_p99_ms` once a call was made; counters such as
        `retries`, `429`, `503`, `timeouts`, `bulk_operations` once they are not zero."""
        ...

    def storable(self, kind: str, form: dict[str, Any]) -> tuple[dict[str, Any], Sequence[str]]:
        """What this directory can hold of a (canonical) form, and the names of what it cannot: a
        destination that drops them is then not written again every cycle for them."""
        ...

    def notes(self) -> list[str]:
        """What a cycle should tell the operator about this side (read paths, objects left out)."""
        ...

    async def discover(self) -> ServerFeatures:
        """What the directory supports (safe defaults where it does not say), kept as `features`."""
        ...

    def iter_pages(
        self, kind: str, report: ReadReport, *, page_size: int = 500, cursor: bool | None = None,
        with_raw: bool = False, read_before: Callable[[list[str]], Awaitable[set[str]]] | None = None,
        max_page_bytes: int | None = None,
    ) -> AsyncGenerator[list[Any], None]:
        """Every object of `kind`, in pages, filling `report` (complete or not, and why); `with_raw`:
        pages of (id, JSON bytes) pairs; `read_before(ids)`: which of these ids an earlier page held."""
        ...

    async def get(self, kind: str, resource_id: str) -> dict[str, Any]:
        """One object; NotFoundError when the directory holds no such id."""
        ...

    async def find(self, kind: str, filter_expression: str) -> list[dict[str, Any]]:
        """The objects a SCIM filter (`userName eq "ann"`) matches."""
        ...

    async def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """The object as created, with the `id` the directory gave it; ConflictError when its key is taken."""
        ...

    async def patch(self, kind: str, resource_id: str, body: dict[str, Any], *, answer: bool = True) -> dict[str, Any] | None:
        """Apply a SCIM PatchOp body; the object answered, or None when none was (always None when not
        `answer`: the caller does not read it, and a large group's is not held)."""
        ...

    async def replace(self, kind: str, resource_id: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Replace the whole object (SCIM PUT); the object answered, or None when none was."""
        ...

    async def delete(self, kind: str, resource_id: str) -> None:
        """NotFoundError when the directory holds no such id."""
        ...

    async def bulk(self, operations: list[dict[str, Any]]) -> list[BulkResult | None]:
        """SCIM Bulk (only called when `features.bulk`) of SCIM Bulk operations (`method`, `path` such as
        "/Users" or "/Users/ID", `bulkId`, `data`): one result per operation, None when unanswered."""
        ...
