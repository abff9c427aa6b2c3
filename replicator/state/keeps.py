"""What each destination was learned to lose (`destination_keeps`): per destination (its base URL as shown: pipeline/urls.destination_key),
kind and attribute path, how it loses it (`dropped`, `fewer values`, ...), on how many objects that was
seen, and when it was learned. Reached as `store.keeps`; the cycle replaces a destination's entries of
a kind as a whole at its end (pipeline/keeps decides them). Beside them, the limits a destination was
learned to enforce (`destination_limits`: say `members per request` -> 100), kept until one is learned
anew, or forgotten when the destination takes more again (the cycle decides); each row's `learned_at`
is when its value was learned (a limit raised or learned anew: then). `members per request (raised)`
-> 240 is what a probe of that limit found the destination takes (the limit raised to it: probed on
by every cycle); a destination has one of the two at most.
"""

from __future__ import annotations

import time

from replicator.state.connection import Room, state_errors_named

MEMBERS_PER_REQUEST = "members per request"
MEMBERS_PER_REQUEST_RAISED = "members per request (raised)"

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

    async def limit(self, destination: str, name: str) -> tuple[int, float] | None:
        """(value, learned_at) of a limit learned for the destination, or None."""
        async with self._lock:
            async with self._db.execute(
                "SELECT value, learned_at FROM destination_limits WHERE destination = ? AND name = ?",
                (destination, name)) as cursor:
                row = await cursor.fetchone()
        return None if row is None else (int(row[0]), float(row[1]))

    async def learn_limit(self, destination: str, name: str, value: int, learned_at: float | None = None,
                          *, replacing: tuple[str, ...] = ()) -> None:
        """The destination enforces this limit from now on (learned now, unless `learned_at` says when),
        in place of its limits named in `replacing` (forgotten in the same transaction)."""
        async with self._lock:
            await self._flush()
            await self._forget(destination, replacing)
            await self._db.execute(
                """INSERT INTO destination_limits (destination, name, value, learned_at) VALUES (?, ?, ?, ?)
                   ON CONFLICT (destination, name) DO UPDATE SET value = excluded.value,
                   learned_at = excluded.learned_at""",
                (destination, name, value, time.time() if learned_at is None else learned_at))
            await self._commit()

    async def forget_limit(self, destination: str, *names: str) -> None:
        """The destination no longer enforces these limits (it took more)."""
        async with self._lock:
            await self._flush()
            await self._forget(destination, names)
            await self._commit()

    async def _forget(self, destination: str, names: tuple[str, ...]) -> None:
        if names:
            await self._db.execute(f"DELETE FROM destination_limits WHERE destination = ? AND name IN "
                                   f"({','.join('?' * len(names))})", (destination, *names))

    async def limits(self) -> list[tuple[str, str, int, float]]:
        """Every learned limit: (destination, name, value, learned_at), for `status`."""
        async with self._lock:
            async with self._db.execute(
                "SELECT destination, name, value, learned_at FROM destination_limits ORDER BY destination, name"
            ) as cursor:
                return [(str(d), str(n), int(v), float(t)) for d, n, v, t in await cursor.fetchall()]
