"""The destination objects we removed (`removed_objects`): per kind, the destination id of an object of
ours we deleted or disabled, and when. Reached as `store.removed`.

A removal is noted as it is recorded (`note`: buffered, written in the transaction of the row it
forgets), so that a later cycle still knows the object was ours and is gone after the cycle that removed
it lost track of it (its row is forgotten): a group of ours that still names it (its member drop failed,
or the cycle stopped first) loses it then without the membership guard counting that removal. Asked
only for the members a guard held (`among`); entries leave when no group of ours names them any more
(`forget`, the cycle decides) or when they are old (`expire`).
"""

from __future__ import annotations

import time

from replicator.state.connection import Room, state_errors_named
from replicator.state.records import DISABLED

# an entry naming an object of ours again (a disabled user enabled, a destination that reuses ids)
# is no removal any more; a disabled one still is
_NOT_OURS_AGAIN = (f" AND NOT EXISTS (SELECT 1 FROM resources r WHERE r.kind = g.kind AND r.dest_id = g.dest_id"
                   f" AND r.status != '{DISABLED}')")


@state_errors_named
class RemovedObjects(Room):
    """Destination ids of objects of ours we removed, kept for the cycles after the one that did."""

    async def note(self, kind: str, dest_id: str) -> None:
        """We removed (deleted or disabled) this destination object: buffered, and written with the
        next batch of rows (with the forgetting of its row, when that is buffered after this note)."""
        self._mark_dirty()
        self._connection.pending_removed[(kind, dest_id)] = time.time()
        await self._maybe_flush()

    async def among(self, kind: str, dest_ids: list[str], *, since: float) -> set[str]:
        """Those of these destination ids that name an object of `kind` we removed at or after `since`
        (time.time()), and that no object of ours holds again (other than disabled)."""
        rows = await self._select_in(
            f"SELECT g.dest_id FROM removed_objects g WHERE g.kind = ? AND g.removed_at >= ?{_NOT_OURS_AGAIN} "
            "AND g.dest_id IN", kind, dest_ids, flush=True, params=(since,))
        return {str(dest_id) for (dest_id,) in rows}

    async def forget(self, kind: str, dest_ids: list[str]) -> None:
        """These entries are no longer needed (no group of ours names them): dropped, committed with
        the next batch."""
        if not dest_ids:
            return
        async with self._lock:
            await self._flush()
            await self._db.executemany("DELETE FROM removed_objects WHERE kind = ? AND dest_id = ?",
                                       [(kind, dest_id) for dest_id in dest_ids])
            self._connection.uncommitted += 1
            self._mark_dirty()
            await self._flush()

    async def expire(self, before: float) -> int:
        """Drop the entries of removals made before `before` (time.time()); how many were dropped. (No
        write when there are none: a cycle that changes nothing writes nothing.)"""
        async with self._lock:
            await self._flush()
            async with self._db.execute("SELECT 1 FROM removed_objects WHERE removed_at < ? LIMIT 1", (before,)) as cursor:
                if await cursor.fetchone() is None:
                    return 0
            cursor = await self._db.execute("DELETE FROM removed_objects WHERE removed_at < ?", (before,))
            dropped = max(cursor.rowcount, 0)
            if dropped:
                self._connection.uncommitted += 1
                self._mark_dirty()
            await self._flush()
        return dropped
