"""What each destination was learned to lose (`destination_keeps`): per destination (its base URL),
kind and attribute path, how it loses it (`dropped`, `fewer values`, ...), on how many objects that was
seen, and when it was learned. Reached as `store.keeps`; the cycle replaces a destination's entries of
a kind as a whole at its end (pipeline/keeps decides them).
"""

from __future__ import annotations

import time

from replicator.state.connection import Room, state_errors_named

# (path, how, objects, learned_at)
KeepsRow = tuple[str, str, int, float]


@state_errors_named
class DestinationKeeps(Room):
    """The learned profiles of the destinations this state wrote to."""

    async def learned(self, destination: str, kind: str) -> list[KeepsRow]:
        async with self._lock:
            async with self._db.execute(
                "SELECT path, how, objects, learned_at FROM destination_keeps WHERE destination = ? AND kind = ? "
                "ORDER BY path", (destination, kind),
            ) as cursor:
                return [(str(p), str(h), int(o), float(t)) for p, h, o, t in await cursor.fetchall()]

    async def replace(self, destination: str, kind: str, entries: dict[str, tuple[str, int]]) -> None:
        """The destination's profile of a kind is now `entries` (path -> (how, objects)); a path
        already there keeps the time it was first learned."""
        async with self._lock:
            await self._flush()
            now = time.time()
            await self._db.execute(
                f"DELETE FROM destination_keeps WHERE destination = ? AND kind = ? AND path NOT IN "
                f"({','.join('?' * len(entries))})", (destination, kind, *entries))
            await self._db.executemany(
                """INSERT INTO destination_keeps (destination, kind, path, how, objects, learned_at)
                   VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (destination, kind, path) DO UPDATE SET
                   how = excluded.how, objects = excluded.objects""",
                [(destination, kind, path, how, objects, now) for path, (how, objects) in entries.items()])
            await self._commit()

    async def every(self) -> list[tuple[str, str, str, str, int, float]]:
        """Every entry: (destination, kind, path, how, objects, learned_at), for `status`."""
        async with self._lock:
            async with self._db.execute(
                "SELECT destination, kind, path, how, objects, learned_at FROM destination_keeps "
                "ORDER BY destination, kind, path") as cursor:
                return [(str(d), str(k), str(p), str(h), int(o), float(t)) for d, k, p, h, o, t in await cursor.fetchall()]
