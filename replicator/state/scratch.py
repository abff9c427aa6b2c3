"""A cycle's bookkeeping, in temporary tables of the state's connection (never in the state file), so
that memory does not grow with the directory.

- `scratch_read`: every source id read this cycle, with why it is out of scope, if it is, and whether
  it differs from what we last wrote;
- `scratch_keys`: which changed or new object claimed a match key first;
- a listing of the destination: `scratch_listed` (ids and, for a full reconcile, canonical forms) and
  `scratch_listed_keys` (match key -> destination id, NULL when several objects share the key).

`begin_cycle` empties them. Reads that join the records flush the buffered writes first, as every
read of the state does. They have no rollback journal (state.schema): nothing may count on a ROLLBACK
undoing what was written to them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from replicator.state.connection import Connection, Room, chunks, marks, state_errors_named
from replicator.state.records import ROW_COLUMNS_R, ResourceRow, decode_form, encode_form
from replicator.state.schema import SCRATCH_TABLES

# reference targets after a complete read: not read out of scope, and not disabled unless read in scope
# (we disable what left the source or the scope); a condition over `resources r`
NOT_DISABLED_UNLESS_READ = """ AND (r.status != 'disabled' OR EXISTS (
    SELECT 1 FROM scratch_read s WHERE s.kind = r.kind AND s.source_id = r.source_id AND s.out_of_scope IS NULL))"""
NOT_READ_OUT_OF_SCOPE = """ AND NOT EXISTS (
    SELECT 1 FROM scratch_read s WHERE s.kind = r.kind AND s.source_id = r.source_id AND s.out_of_scope IS NOT NULL)
    """ + NOT_DISABLED_UNLESS_READ
_READ_IN_SCOPE = """ AND EXISTS (
    SELECT 1 FROM scratch_read s WHERE s.kind = r.kind AND s.source_id = r.source_id AND s.out_of_scope IS NULL)"""
# walks the kind's rows in source id order (the unary + keeps SQLite off the dest_id index, which
# would cost a table lookup per row before the scratch probe)
# (a row with origin 'created' and no destination id is a create noted before its POST, not recorded)
_UNREAD = (f"r.kind = ? AND (+r.dest_id IS NOT NULL OR r.origin = 'created')"
           f" AND NOT{_READ_IN_SCOPE.removeprefix(' AND')}")


@state_errors_named
class CycleScratch(Room):
    """This cycle's reads, key claims and destination listing. Reached as `StateStore.scratch`."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self._read_batches = 0  # numbers the calls of note_read
        self.kinds_read_out_of_scope: set[str] = set()  # kinds of which this cycle marked an object (`mark_read`)

    async def begin_cycle(self) -> None:
        """Empty the scratch tables of the previous cycle."""
        self.kinds_read_out_of_scope.clear()
        async with self._lock:
            for table in SCRATCH_TABLES:
                await self._db.execute(f"DELETE FROM {table}")

    # -- what this cycle read -------------------------------------------------------------------

    async def note_read(self, kind: str, source_ids: list[str]) -> set[str]:
        """Note these source ids as read this cycle; return those noted by an earlier call."""
        unique = list(dict.fromkeys(source_ids))
        self._read_batches += 1
        batch = self._read_batches
        async with self._lock:
            inserted = await self._insert_many("INSERT OR IGNORE INTO scratch_read (kind, source_id, batch)",
                                               [(kind, sid, batch) for sid in unique])
            if inserted == len(unique):
                return set()  # all new: the common case costs one statement
        rows = await self._select_in("SELECT source_id FROM scratch_read WHERE kind = ? AND batch != ? AND source_id IN",
                                     kind, unique, params=(batch,))
        return {row[0] for row in rows}

    async def mark_read(self, kind: str, *, out_of_scope: dict[str, str], changed: list[str]) -> None:
        """Of the objects noted as read: these are out of scope (source id -> why; they count as
        absent from the source), and these differ from what we last wrote (they hold no match key
        until they claim one)."""
        async with self._lock:
            if out_of_scope:
                self.kinds_read_out_of_scope.add(kind)
                await self._db.executemany(
                    "UPDATE scratch_read SET out_of_scope = ? WHERE kind = ? AND source_id = ?",
                    [(why, kind, sid) for sid, why in out_of_scope.items()],
                )
            for chunk in chunks(changed):
                await self._db.execute(
                    f"UPDATE scratch_read SET changed = 1 WHERE kind = ? AND source_id IN ({marks(chunk)})",
                    (kind, *chunk),
                )

    async def read_among(self, kind: str, source_ids: list[str]) -> set[str]:
        """Those of these source ids this cycle read (in scope or not)."""
        unique = list(dict.fromkeys(source_ids))
        rows = await self._select_in("SELECT source_id FROM scratch_read WHERE kind = ? AND source_id IN", kind, unique)
        return {row[0] for row in rows}

    async def in_scope_count(self, kind: str) -> int:
        """Objects of this kind read this cycle and in scope."""
        return await self._scalar(
            "SELECT COUNT(*) FROM scratch_read WHERE kind = ? AND out_of_scope IS NULL", (kind,)
        )

    async def unread_count(self, kind: str) -> int:
        """Objects with a destination counterpart (or a create noted before its POST) that this cycle
        did not read in scope."""
        return sum([len(chunk) async for chunk in self.iter_unread(kind)])

    async def iter_unread(self, kind: str, chunk: int = 2000) -> AsyncIterator[list[tuple[ResourceRow, str | None]]]:
        """The rows `unread_count` counts, each with why it was out of scope (None: not read at all),
        in chunks."""
        select = f"""SELECT {ROW_COLUMNS_R}, (SELECT s.out_of_scope FROM scratch_read s
                                               WHERE s.kind = r.kind AND s.source_id = r.source_id)
                     FROM resources r WHERE {_UNREAD}"""
        async for rows in self._pages(select, kind, chunk):
            yield [(ResourceRow(*row[:-1]), row[-1]) for row in rows]

    # -- match keys -----------------------------------------------------------------------------

    async def claim_keys(self, kind: str, claims: list[tuple[str, str]]) -> dict[str, str]:
        """Claim match keys (case-folded) for source objects that need writing, in order; return key
        -> the source id that claimed it first this cycle (another object's id means a duplicate)."""
        first: dict[str, str] = {}
        for key, sid in claims:
            first.setdefault(key, sid)
        async with self._lock:
            inserted = await self._insert_many("INSERT OR IGNORE INTO scratch_keys (kind, key, source_id)",
                                               [(kind, key, sid) for key, sid in first.items()])
            if inserted == len(first):
                return first  # no key was claimed before: the common case costs one statement
        rows = await self._select_in("SELECT key, source_id FROM scratch_keys WHERE kind = ? AND key IN",
                                     kind, list(first))
        return dict(rows)

    async def key_holders(self, kind: str, keys: list[str]) -> dict[str, str]:
        """Case-folded match key -> source id, for objects that this cycle read so far in scope and
        unchanged (not marked by `mark_read`) and that last wrote these keys: the duplicates a new or
        changed object's key meets."""
        rows = await self._select_in(
            """SELECT match_key, source_id FROM resources r WHERE kind = ? AND EXISTS (
                   SELECT 1 FROM scratch_read s WHERE s.kind = r.kind AND s.source_id = r.source_id
                   AND s.out_of_scope IS NULL AND s.changed = 0)
               AND match_key IN""",
            kind, keys, flush=True,
        )
        return dict(rows)

    # -- the destination listing ----------------------------------------------------------------

    async def note_listed(self, kind: str, listed: list[tuple[str, str | None, dict[str, Any] | None]]) -> None:
        """Keep a page of a destination listing: (destination id, case-folded match key or None,
        canonical form or None). A key listed twice maps to NULL (ambiguous)."""
        async with self._lock:
            await self._insert_many(
                "INSERT OR REPLACE INTO scratch_listed (kind, dest_id, canon)",
                [(kind, dest_id, None if form is None else encode_form(form)) for dest_id, _, form in listed],
            )
            await self._insert_many(
                "INSERT INTO scratch_listed_keys (kind, key, dest_id)",
                [(kind, key, dest_id) for dest_id, key, _ in listed if key is not None],
                "ON CONFLICT (kind, key) DO UPDATE SET dest_id = NULL",
            )

    async def listed_before(self, kind: str, dest_ids: list[str]) -> set[str]:
        """Those of these destination ids that the listing holds already."""
        rows = await self._select_in("SELECT dest_id FROM scratch_listed WHERE kind = ? AND dest_id IN", kind, dest_ids)
        return {row[0] for row in rows}

    async def forget_listing(self, kind: str) -> None:
        """Drop the destination listing of a kind (before listing it again)."""
        async with self._lock:
            await self._db.execute("DELETE FROM scratch_listed WHERE kind = ?", (kind,))
            await self._db.execute("DELETE FROM scratch_listed_keys WHERE kind = ?", (kind,))

    async def listed_keys(self, kind: str, keys: list[str]) -> dict[str, str | None]:
        """Case-folded match key -> destination id (None: ambiguous) for the keys the listing holds."""
        return dict(await self._select_in("SELECT key, dest_id FROM scratch_listed_keys WHERE kind = ? AND key IN",
                                          kind, keys))

    async def listed_forms(self, kind: str, dest_ids: list[str]) -> dict[str, dict[str, Any] | None]:
        """Destination id -> canonical form (None when the listing kept no form) of the listed ones."""
        rows = await self._select_in("SELECT dest_id, canon FROM scratch_listed WHERE kind = ? AND dest_id IN",
                                     kind, dest_ids)
        return {dest_id: None if canon is None else decode_form(canon) for dest_id, canon in rows}
