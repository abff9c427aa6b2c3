"""The state store: the records of what we replicated (`resources`), reached through `StateStore`, which
also hands out the run log (`store.runs`, state.runs), this cycle's scratch (`store.scratch`,
state.scratch), the written forms (`store.forms`, state.forms), the create intents (`store.intents`,
state.intents), what destinations lose (`store.keeps`, state.keeps) and the destination objects we
removed (`store.removed`, state.removed). `open_state` opens, migrates and closes the database
(state.schema).

`resources` holds one row per (kind, source id): destination id, digest and canonical form last written
to the destination, status (a `ResourceStatus`: `synced`, `disabled`, `failed`, or `creating`: a create
is about to be POSTed, noted and committed first so that a crash cannot orphan its object), how the
destination object came to be ours (an `Origin`), its case-folded match key, the digest of the source
bytes last written (the zero-change check), the last error and retry bookkeeping. The state is read per
page of the source (`unchanged_marks`, `rows`, `dest_ids`), never whole.

Results are buffered and committed in batches (state.connection). A state file that cannot be used (not
SQLite, a directory, a folder that cannot be made, no permission, a full disk, an I/O error) raises
`StateUnusableError` naming the file, from `open_state` and from every public method of every room:
callers translate one error, not sqlite3's and the OS's.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from replicator.state.approvals import RemovalApprovals
from replicator.state.connection import Connection, Room, state_errors_named, unusable_message
from replicator.state.errors import StateUnusableError
from replicator.state.forms import WrittenForms
from replicator.state.intents import CreateIntents
from replicator.state.keeps import DestinationKeeps
from replicator.state.lock import make_state_folder
from replicator.state.records import (
    FAILED,
    ROW_COLUMNS,
    ROW_COLUMNS_R,
    SYNCED,
    FailedResource,
    ResourceRow,
    encode_form,
)
from replicator.state.removed import RemovedObjects
from replicator.state.runs import RunLog
from replicator.state.schema import prepare
from replicator.state.scratch import NOT_DISABLED_UNLESS_READ, NOT_READ_OUT_OF_SCOPE, CycleScratch

# the condition of the partial index `resources_synced`, spelled as it is there so that SQLite uses it
_SYNCED_WITH_DIGEST = "status = 'synced' AND source_digest IS NOT NULL"


@state_errors_named
class StateStore(Room):
    """Async access to the state database. Create with `open_state`."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self.runs = RunLog(connection)
        self.scratch = CycleScratch(connection)
        self.forms = WrittenForms(connection)
        self.intents = CreateIntents(connection)
        self.keeps = DestinationKeeps(connection)
        self.approvals = RemovalApprovals(connection)
        self.removed = RemovedObjects(connection)

    # -- reads ---------------------------------------------------------------------------------

    async def iter_rows(self, kind: str, chunk: int = 5000) -> AsyncIterator[ResourceRow]:
        """Every row of a kind, streamed in chunks (no cursor stays open between chunks)."""
        async for rows in self._pages(f"SELECT {ROW_COLUMNS_R} FROM resources r WHERE r.kind = ?", kind, chunk):
            for row in rows:
                yield ResourceRow(*row)

    async def rows(self, kind: str, source_ids: list[str]) -> dict[str, ResourceRow]:
        """The rows of these objects (those that have one), buffered writes included."""
        rows = await self._select_in(f"SELECT {ROW_COLUMNS} FROM resources WHERE kind = ? AND source_id IN",
                                     kind, source_ids, flush=True)
        return {row[1]: ResourceRow(*row) for row in rows}

    async def unchanged_marks(self, kind: str, source_ids: list[str]) -> dict[str, tuple[str | None, str]]:
        """Source id -> (source digest, status) of those of these objects that are synced and have a
        source digest: the only ones the zero-change check can skip (it skips an object whose mark is
        (its digest as read, synced)); answered from a partial index alone (`resources_synced`)."""
        rows = await self._select_in(
            f"SELECT source_id, source_digest FROM resources WHERE kind = ? AND {_SYNCED_WITH_DIGEST} AND source_id IN",
            kind, source_ids, flush=True,
        )
        return {source_id: (source_digest, SYNCED) for source_id, source_digest in rows}

    async def dest_ids(self, kind: str, source_ids: list[str], *, not_out_of_scope: bool = False) -> dict[str, str]:
        """Source id -> destination id for those of these objects that have a destination counterpart
        (buffered writes first; a read does not force a commit). `not_out_of_scope`: leave out objects
        this cycle read out of scope, and disabled ones it did not read (those it did not read still
        count otherwise: a read can miss an object that is still there, and one really gone is removed
        at the end of the cycle, which takes it out of the groups that name it)."""
        out: dict[str, str] = {}
        missing = []
        for source_id in source_ids:
            key = (kind, source_id)
            pending = self._connection.pending.get(key)
            if pending is not None:
                if pending[2]:
                    out[source_id] = pending[2]
            elif key not in self._connection.pending_deletes:
                missing.append(source_id)
        # no `dest_id IS NOT NULL` in SQL: SQLite would then scan the kind's rows by that index
        if not not_out_of_scope:
            scope = ""
        elif kind in self.scratch.kinds_read_out_of_scope:
            scope = NOT_READ_OUT_OF_SCOPE
        else:  # this cycle read none of the kind out of scope: no mark to probe for, id by id
            scope = NOT_DISABLED_UNLESS_READ
        pending_deletes = self._connection.pending_deletes
        async for chunk, rows in self._select_in_chunks(
            f"SELECT source_id, dest_id FROM resources r WHERE kind = ?{scope} AND source_id IN", kind, missing
        ):
            # memory: keyed by the callers' strings, not the copies SQLite answers (a group of a million
            # members looks up a million ids)
            callers = {source_id: source_id for source_id in chunk}
            for source_id, dest_id in rows:
                if dest_id and (kind, source_id) not in pending_deletes:
                    out.setdefault(callers[source_id], dest_id)
        return out

    async def written_since(self, kind: str, source_ids: list[str], since: float) -> set[str]:
        """Those of these objects written successfully at or after `since` (time.time()). A failure
        does not count as a write (`record_failure` leaves `updated_at` alone on an existing row)."""
        written = {sid for sid in source_ids if (kind, sid) in self._connection.pending}
        rows = await self._select_in(
            "SELECT source_id FROM resources WHERE kind = ? AND updated_at >= ? AND source_id IN",
            kind, [sid for sid in source_ids if sid not in written], params=(since,),
        )
        return written | {row[0] for row in rows}

    async def count(self, kind: str | None = None) -> int:
        """Objects that have a destination counterpart (of one kind, or all)."""
        sql, args = "SELECT COUNT(*) FROM resources WHERE dest_id IS NOT NULL", tuple[str, ...]()
        if kind:
            sql, args = sql + " AND kind = ?", (kind,)
        return await self._scalar(sql, args)

    async def failures(self) -> list[FailedResource]:
        """Every failed resource: kind, source id, error, attempts and its name when it failed."""
        async with self._lock:
            await self._flush()
            async with self._db.execute(
                "SELECT kind, source_id, error, attempts, failed_label FROM resources WHERE status = ? "
                "ORDER BY kind, source_id",
                (FAILED,),
            ) as cursor:
                return [FailedResource(*r) for r in await cursor.fetchall()]

    # -- writes (buffered) ---------------------------------------------------------------------

    async def record_success(
        self,
        kind: str,
        source_id: str,
        *,
        dest_id: str,
        digest: str,
        canonical: dict[str, Any],
        status: str = SYNCED,
        origin: str | None = None,
        match_key: str | None = None,
        source_digest: str | None = None,
    ) -> None:
        """Remember that the destination object `dest_id` now holds `canonical`."""
        now = time.time()
        canon = encode_form(canonical)
        self._mark_dirty()
        self._connection.pending_deletes.discard((kind, source_id))
        self._connection.pending[(kind, source_id)] = (
            kind, source_id, dest_id, digest, canon, status, origin, match_key and match_key.casefold(), None, 0,
            None, now, now,
            source_digest,
        )
        await self._maybe_flush()

    async def record_failure(
        self, kind: str, source_id: str, error: str, *, backoff: Callable[[int], float] = lambda attempts: 0.0,
        source_digest: str | None = None, label: str | None = None,
    ) -> None:
        """Remember that replicating this object failed, keeping whatever destination id we had; the
        next attempt is due `backoff(failed attempts so far, this one included)` seconds from now.
        `source_digest`: the object as read when it failed (a changed source need not wait); `label`:
        its name (userName / displayName), for `status`."""
        async with self._lock:
            await self._flush()
            async with self._db.execute(
                "SELECT attempts FROM resources WHERE kind = ? AND source_id = ?", (kind, source_id)
            ) as cursor:
                row = await cursor.fetchone()
            retry_delay = backoff((int(row[0]) if row else 0) + 1)
            now = time.time()
            await self._db.execute(
                """INSERT INTO resources (kind, source_id, status, error, attempts, next_attempt_at,
                                          created_at, updated_at, failed_source_digest, failed_label)
                   VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?)
                   ON CONFLICT (kind, source_id) DO UPDATE SET
                       status = CASE WHEN resources.dest_id IS NULL THEN excluded.status
                                     ELSE resources.status END,
                       error = excluded.error,
                       attempts = resources.attempts + 1,
                       next_attempt_at = excluded.next_attempt_at,
                       failed_source_digest = excluded.failed_source_digest,
                       failed_label = excluded.failed_label""",
                (kind, source_id, FAILED, error[:2000], now + retry_delay, now, now, source_digest, label or None),
            )
            self._connection.uncommitted += 1
            self._mark_dirty()
            await self._flush()  # commits with the next batch

    async def note_source_digest(self, kind: str, source_id: str, source_digest: str) -> None:
        """The source object's bytes changed but not what we replicate: remember the new digest."""
        self._mark_dirty()
        self._connection.pending_digests[(kind, source_id)] = source_digest
        await self._maybe_flush()

    async def forget(self, kind: str, source_id: str) -> None:
        """Drop an object we deleted from the destination."""
        self._mark_dirty()
        self._connection.pending.pop((kind, source_id), None)
        self._connection.pending_deletes.add((kind, source_id))
        await self._maybe_flush()

    async def flush(self) -> None:
        """Commit buffered writes."""
        async with self._lock:
            await self._flush(commit=True)


@asynccontextmanager
async def open_state(
    path: str | os.PathLike[str], *, batch_size: int = 1000, commit_interval: float = 1.0
) -> AsyncIterator[StateStore]:
    """Open (creating with mode 0600 if needed) and migrate the state database; flush on exit.
    A file that cannot be used raises StateUnusableError (NewerSchemaError for a newer schema)."""
    target, shown = Path(path), os.fspath(path)
    try:
        if shown != ":memory:":
            if target.is_dir():
                raise StateUnusableError(f"state file {shown} is a directory")
            make_state_folder(shown)
            if not target.exists():
                fd = os.open(target, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
        db = await aiosqlite.connect(shown)
    except (sqlite3.Error, OSError) as exc:
        raise StateUnusableError(unusable_message(shown, exc)) from exc
    try:
        try:
            await prepare(db, shown)
        except (sqlite3.Error, OSError) as exc:
            raise StateUnusableError(unusable_message(shown, exc)) from exc
        store = StateStore(Connection(db, batch_size, commit_interval, path=shown))
        try:
            yield store
        finally:
            await store.flush()
    finally:
        await db.close()
