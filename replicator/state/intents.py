"""The create intents: before a create is POSTed, its row is noted as `creating` (with its match key)
and committed, so that a crash cannot orphan the object it makes: the next cycle still finds what we
created and removes it. Reached as `store.intents`.

Notes of concurrent callers are committed together: one writer task takes every note waiting and
commits them (with the buffered writes) in one transaction, and every caller waits for the commit
that holds its notes.
"""

from __future__ import annotations

import asyncio
import time

from replicator.state.connection import Connection, Room, state_errors_named
from replicator.state.records import CREATING


@state_errors_named
class CreateIntents(Room):
    """Creates about to be POSTed, noted and committed first."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self._intents: dict[tuple[str, str], str | None] = {}  # creates to note (kind, source id) -> match key
        self._intent_writer: asyncio.Future[None] | None = None  # the commit of the notes taken so far

    async def note_creating(self, kind: str, keys: dict[str, str | None]) -> None:
        """Before creating these objects (source id -> match key): note and commit that we are about
        to, so that if a crash loses the result and the source drops the object, the next cycle can
        still find what we created and remove it. Rows with a destination id are left as they are.
        Notes of concurrent callers are committed together (one commit for all who wait)."""
        for source_id, key in keys.items():
            self._intents[(kind, source_id)] = key
        while any((kind, source_id) in self._intents for source_id in keys):
            if self._intent_writer is None:
                self._intent_writer = asyncio.ensure_future(self._write_intents())
            await asyncio.shield(self._intent_writer)

    async def _write_intents(self) -> None:
        try:
            async with self._lock:
                intents, self._intents = self._intents, {}
                now = time.time()
                await self._write_pending()
                await self._db.executemany(
                    """INSERT INTO resources (kind, source_id, status, origin, match_key, attempts, created_at, updated_at)
                       VALUES (?, ?, ?, 'created', ?, 0, ?, ?)
                       ON CONFLICT (kind, source_id) DO UPDATE SET status = excluded.status, origin = excluded.origin,
                           match_key = COALESCE(excluded.match_key, resources.match_key)
                       WHERE resources.dest_id IS NULL""",
                    [(kind, source_id, CREATING, key and key.casefold(), now, now)
                     for (kind, source_id), key in intents.items()],
                )
                await self._commit()
        finally:
            self._intent_writer = None
