"""The written forms: what the records say we last wrote to the destination (`resources.canon`), read
back by object, by the fragments of an id it may name, and by destination object (who owns it); and
forgetting source digests, so that forms which must be written again are planned even when their
source is unchanged. Reached as `store.forms`.

Reads see the buffered writes (state.connection); `forget_source_digests` writes into the open
transaction and commits with the next batch, as the records' writes do.
"""

from __future__ import annotations

from typing import Any

from replicator.state.connection import Room, fetch_all, state_errors_named
from replicator.state.records import COMPRESSED_MARK, decode_form


@state_errors_named
class WrittenForms(Room):
    """The canonical forms we last wrote to the destination, and who owns each destination object."""

    async def canonical(self, kind: str, source_id: str) -> dict[str, Any] | None:
        """The canonical form last written to the destination for this object."""
        return (await self.canonicals(kind, [source_id])).get(source_id)

    async def owners(self, kind: str, dest_id: str) -> list[str]:
        """Source ids whose row points at this destination object."""
        async with self._lock:
            await self._flush()
            rows = await fetch_all(self._db, "SELECT source_id FROM resources WHERE kind = ? AND dest_id = ?",
                                   (kind, dest_id))
        return [row[0] for row in rows]

    async def canonicals(self, kind: str, source_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The last written canonical forms of many objects: buffered writes first, then the database
        (a read does not force a commit)."""
        out: dict[str, dict[str, Any]] = {}
        missing = []
        for source_id in source_ids:
            pending = self._connection.pending.get((kind, source_id))
            if pending is not None:
                out[source_id] = decode_form(pending[4])
            else:
                missing.append(source_id)
        rows = await self._select_in("SELECT source_id, canon FROM resources WHERE kind = ? AND source_id IN",
                                     kind, missing)
        for source_id, canon in rows:
            if canon and source_id not in out:
                out[source_id] = decode_form(canon)
        return out

    async def written_forms_containing(self, kind: str, fragments: list[bytes]) -> list[tuple[str, str, dict[str, Any]]]:
        """(source id, destination id, last written form) of our objects of `kind` whose written form
        (its stored JSON bytes) may contain one of these fragments: a superset, which the caller narrows.
        Up to 20 fragments SQLite looks for them (one scan), returning every compressed form too; past
        that every written form of the kind is returned. No fragment: none."""
        if not fragments:
            return []
        where, needles = "", fragments if len(fragments) <= 20 else []
        if needles:
            # a compressed form (a big group's) cannot be searched in SQL: it is always returned
            where = " AND (" + " OR ".join(["instr(canon, ?) > 0"] * len(needles) + ["substr(canon, 1, 1) = ?"]) + ")"
            needles = [*needles, COMPRESSED_MARK]
        async with self._lock:
            await self._flush()
            rows = await fetch_all(
                self._db, f"SELECT source_id, dest_id, canon FROM resources WHERE kind = ? AND dest_id IS NOT NULL{where}",
                (kind, *needles),
            )
        return [(source_id, dest_id, decode_form(canon)) for source_id, dest_id, canon in rows if canon]

    async def forget_source_digests(self, kind: str, source_ids: list[str]) -> None:
        """These objects lose their source digest: the next cycle plans them even if their source is
        unchanged."""
        if not source_ids:
            return
        async with self._lock:
            await self._flush()
            await self._db.executemany("UPDATE resources SET source_digest = NULL WHERE kind = ? AND source_id = ?",
                                       [(kind, source_id) for source_id in source_ids])
            self._connection.uncommitted += 1
            self._mark_dirty()
            await self._flush()
