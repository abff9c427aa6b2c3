"""The SQLite state store (aiosqlite, WAL). It is the only writer of the state database.

Tables:
- `resources`: one row per (kind, source id): destination id, digest and canonical form last written to
  the destination, status (`synced`, `disabled`, `failed`, or `creating`: a create is about to be
  POSTed, noted and committed first so that a crash cannot orphan its object), how the destination
  object came to be ours (`created` or `adopted`; `created` without a destination id: a create noted
  whose result was not recorded), its case-folded match key, the digest of the source bytes last written
  (the zero-change check), the last error and retry bookkeeping.
- `runs`: one row per cycle: mode, start/end, outcome and counts (JSON).

Writes are buffered and committed in batches (`batch_size` rows, or `flush()`, or at the first write
or read `commit_interval` seconds after the oldest write not committed), so results are durable as
operations succeed without a commit per row. A read writes the buffered rows first, without
committing them: the connection sees its own open transaction, and a commit per page of the source
was a third of the state's CPU time. One lock serialises every use of the
connection: many workers record results concurrently, and SQLite must never see a cursor of one task
interleaved with a write of another.

A cycle's bookkeeping lives in temporary tables of the same connection (never in the state file), so
memory does not grow with the directory: `scratch_read` (every source id read this cycle, with why it
is out of scope, if it is), `scratch_keys` (which changed or new object claimed a match key first) and
a listing of the destination (`scratch_listed`: ids and, for a full reconcile, canonical forms;
`scratch_listed_keys`: match key -> destination id, NULL when several objects share the key). The
state is read per page of the source (`unchanged_marks`, `rows`, `dest_ids`), never whole.

The schema is versioned with `PRAGMA user_version` and migrated step by step; a database from a newer
version is refused.

A state file that cannot be used (not SQLite, a directory, a folder that cannot be made, no permission,
a full disk, an I/O error) raises `StateUnusableError` naming the file, from `open_state` and from every
public method of the store: callers translate one error, not sqlite3's and the OS's.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import aiosqlite
import msgspec

from state.errors import StateUnusableError
from state.lock import make_state_folder

SCHEMA_VERSION = 4

_MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE resources (
            kind TEXT NOT NULL,
            source_id TEXT NOT NULL,
            dest_id TEXT,
            digest TEXT,
            canon BLOB,
            status TEXT NOT NULL,
            origin TEXT,
            match_key TEXT,
            error TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (kind, source_id)
        )""",
        "CREATE INDEX resources_dest ON resources (kind, dest_id)",
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            mode TEXT NOT NULL,
            dry_run INTEGER NOT NULL,
            started_at REAL NOT NULL,
            ended_at REAL,
            outcome TEXT,
            counts TEXT
        )""",
    ],
    # 2: the digest of the source object as read, for the zero-change fast path
    2: ["ALTER TABLE resources ADD COLUMN source_digest TEXT"],
    # 3: match keys case-folded and indexed (duplicate checks ask the state); an index that answers
    # the zero-change check without reading the rows
    3: [
        "UPDATE resources SET match_key = casefold(match_key) WHERE match_key IS NOT NULL",
        "CREATE INDEX resources_match ON resources (kind, match_key)",
        "CREATE INDEX resources_unchanged ON resources (kind, source_id, source_digest, status)",
    ],
    # 4: the digest of the source object as read when it last failed: a source that changed since
    # (fixed bad data) is tried again at once, not after the failure's delay
    4: ["ALTER TABLE resources ADD COLUMN failed_source_digest TEXT"],
}

_SCRATCH = [
    """CREATE TEMP TABLE IF NOT EXISTS scratch_read (
        kind TEXT NOT NULL, source_id TEXT NOT NULL, out_of_scope TEXT, batch INTEGER NOT NULL,
        changed INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (kind, source_id)) WITHOUT ROWID""",
    """CREATE TEMP TABLE IF NOT EXISTS scratch_keys (
        kind TEXT NOT NULL, key TEXT NOT NULL, source_id TEXT NOT NULL,
        PRIMARY KEY (kind, key)) WITHOUT ROWID""",
    """CREATE TEMP TABLE IF NOT EXISTS scratch_listed (
        kind TEXT NOT NULL, dest_id TEXT NOT NULL, canon BLOB,
        PRIMARY KEY (kind, dest_id)) WITHOUT ROWID""",
    """CREATE TEMP TABLE IF NOT EXISTS scratch_listed_keys (
        kind TEXT NOT NULL, key TEXT NOT NULL, dest_id TEXT,
        PRIMARY KEY (kind, key)) WITHOUT ROWID""",
]
_SCRATCH_TABLES = ("scratch_read", "scratch_keys", "scratch_listed", "scratch_listed_keys")
_IN_CHUNK = 500  # ids per `IN (...)` query (SQLite allows 999 parameters in old builds)
_MAX_PARAMETERS = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999  # per statement
_ROWS_PER_STATEMENT = 250
_ROW_COLUMNS = ("kind, source_id, dest_id, digest, status, origin, attempts, next_attempt_at, match_key, "
                "source_digest, failed_source_digest")

_ROW_COLUMNS_R = ", ".join("r." + column.strip() for column in _ROW_COLUMNS.split(","))

_encode = msgspec.json.Encoder(order="deterministic").encode
_decode = msgspec.json.Decoder().decode

SYNCED = "synced"
DISABLED = "disabled"
FAILED = "failed"
CREATING = "creating"  # a create is about to be sent: committed first, so a crash cannot orphan its object


class ResourceRow(NamedTuple):
    """What we know of one source object (without its canonical form, which is fetched on demand).
    A tuple: one is made per object read, and this is the cheapest immutable record."""

    kind: str
    source_id: str
    dest_id: str | None
    digest: str | None
    status: str
    origin: str | None
    attempts: int = 0
    next_attempt_at: float | None = None
    match_key: str | None = None  # case-folded
    source_digest: str | None = None
    failed_source_digest: str | None = None  # the source digest of the last failure (while next_attempt_at is set)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One cycle as stored in `runs`."""

    id: int
    mode: str
    dry_run: bool
    started_at: float
    ended_at: float | None
    outcome: str | None
    counts: dict[str, Any]


def _state_errors_named(cls: type[StateStore]) -> type[StateStore]:
    """Class decorator, the store's error seam: every public coroutine and async generator method raises
    StateUnusableError naming the file (and the method) where SQLite or the OS raised. After one, the
    store is broken for good: every later call raises it again, so that a cycle that met it is never
    recorded as finished (its run stays unfinished, as after a crash, and the next one recovers)."""
    for name, method in list(vars(cls).items()):
        if name.startswith("_"):
            continue
        if inspect.isasyncgenfunction(method):
            setattr(cls, name, _naming_generator(method))
        elif inspect.iscoroutinefunction(method):
            setattr(cls, name, _naming_coroutine(method))
    return cls


def _naming_coroutine(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def named(self: StateStore, *args: Any, **kwargs: Any) -> Any:
        if self.broken is not None:
            raise StateUnusableError(self.broken)
        try:
            return await method(self, *args, **kwargs)
        except (sqlite3.Error, OSError) as exc:
            self.broken = _unusable_message(self.path, exc, method.__name__)
            raise StateUnusableError(self.broken) from exc

    return named


def _naming_generator(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def named(self: StateStore, *args: Any, **kwargs: Any) -> Any:
        if self.broken is not None:
            raise StateUnusableError(self.broken)
        items = method(self, *args, **kwargs)
        try:
            async for item in items:
                yield item
        except (sqlite3.Error, OSError) as exc:
            self.broken = _unusable_message(self.path, exc, method.__name__)
            raise StateUnusableError(self.broken) from exc
        finally:
            await items.aclose()

    return named


def _unusable_message(path: str, exc: BaseException, doing: str | None = None) -> str:
    """One line naming the state file and what is wrong with it (sqlite's or the OS's words)."""
    if isinstance(exc, sqlite3.DatabaseError) and "file is not a database" in str(exc):
        return f"state file {path} is not a SQLite database ({exc})"
    reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
    return f"state file {path}: {reason}" + (f" ({doing})" if doing else "")


@_state_errors_named
class StateStore:
    """Async access to the state database. Create with `open_state`."""

    def __init__(self, db: aiosqlite.Connection, batch_size: int, commit_interval: float = 1.0,
                 *, path: str = ":memory:") -> None:
        self.path = path  # the state file, named in errors
        self.broken: str | None = None  # the first error met, raised again by every later call
        self._db = db
        self._batch_size = batch_size
        self._commit_interval = commit_interval
        self._dirty_since: float | None = None  # time.monotonic() of the oldest write not committed
        self._intents: dict[tuple[str, str], str | None] = {}  # creates to note (kind, source id) -> match key
        self._intent_writer: asyncio.Future[None] | None = None  # the commit of the notes taken so far
        self._pending: dict[tuple[str, str], tuple[Any, ...]] = {}  # (kind, source id) -> row to write
        self._pending_deletes: set[tuple[str, str]] = set()
        self._pending_digests: dict[tuple[str, str], str] = {}
        self._uncommitted = 0  # rows written into the open transaction
        self._lock = asyncio.Lock()
        self._read_batches = 0  # numbers the calls of note_read

    # -- reads ---------------------------------------------------------------------------------

    async def iter_rows(self, kind: str, chunk: int = 5000) -> AsyncIterator[ResourceRow]:
        """Every row of a kind, streamed in chunks (no cursor stays open between chunks)."""
        async for rows in self._pages(f"SELECT {_ROW_COLUMNS_R} FROM resources r WHERE r.kind = ?", kind, chunk):
            for row in rows:
                yield ResourceRow(*row)

    async def _pages(self, select: str, kind: str, chunk: int) -> AsyncIterator[list[tuple[Any, ...]]]:
        """The rows of `select` (over `resources r`, source id second), `chunk` at a time in source id
        order, buffered writes committed first; no cursor stays open between chunks."""
        after = ""
        while True:
            async with self._lock:
                await self._flush()
                async with self._db.execute(
                    f"{select} AND r.source_id > ? ORDER BY r.source_id LIMIT ?", (kind, after, chunk)
                ) as cursor:
                    rows = [tuple(row) for row in await cursor.fetchall()]
            if rows:
                yield rows
            if len(rows) < chunk:
                return
            after = rows[-1][1]

    async def rows(self, kind: str, source_ids: list[str]) -> dict[str, ResourceRow]:
        """The rows of these objects (those that have one), buffered writes included."""
        rows = await self._select_in(f"SELECT {_ROW_COLUMNS} FROM resources WHERE kind = ? AND source_id IN",
                                     kind, source_ids, flush=True)
        return {row[1]: ResourceRow(*row) for row in rows}

    async def unchanged_marks(self, kind: str, source_ids: list[str]) -> dict[str, tuple[str | None, str]]:
        """Source id -> (source digest, status) of those of these objects that have a row: what the
        zero-change check needs, answered from an index alone."""
        rows = await self._select_in(
            "SELECT source_id, source_digest, status FROM resources WHERE kind = ? AND source_id IN",
            kind, source_ids, flush=True,
        )
        return {source_id: (source_digest, status) for source_id, source_digest, status in rows}

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
            pending = self._pending.get(key)
            if pending is not None:
                if pending[2]:
                    out[source_id] = pending[2]
            elif key not in self._pending_deletes:
                missing.append(source_id)
        # no `dest_id IS NOT NULL` in SQL: SQLite would then scan the kind's rows by that index
        scope = _NOT_READ_OUT_OF_SCOPE if not_out_of_scope else ""
        rows = await self._select_in(
            f"SELECT source_id, dest_id FROM resources r WHERE kind = ?{scope} AND source_id IN", kind, missing
        )
        for source_id, dest_id in rows:
            if dest_id and (kind, source_id) not in self._pending_deletes:
                out.setdefault(source_id, dest_id)
        return out

    async def written_since(self, kind: str, source_ids: list[str], since: float) -> set[str]:
        """Those of these objects written successfully at or after `since` (time.time()). A failure
        does not count as a write (`record_failure` leaves `updated_at` alone on an existing row)."""
        written = {sid for sid in source_ids if (kind, sid) in self._pending}
        rows = await self._select_in(
            "SELECT source_id FROM resources WHERE kind = ? AND updated_at >= ? AND source_id IN",
            kind, [sid for sid in source_ids if sid not in written], params=(since,),
        )
        return written | {row[0] for row in rows}

    async def canonical(self, kind: str, source_id: str) -> dict[str, Any] | None:
        """The canonical form last written to the destination for this object."""
        return (await self.canonicals(kind, [source_id])).get(source_id)

    async def owners(self, kind: str, dest_id: str) -> list[str]:
        """Source ids whose row points at this destination object."""
        async with self._lock:
            await self._flush()
            async with self._db.execute(
                "SELECT source_id FROM resources WHERE kind = ? AND dest_id = ?", (kind, dest_id)
            ) as cursor:
                return [row[0] for row in await cursor.fetchall()]

    async def canonicals(self, kind: str, source_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The last written canonical forms of many objects: buffered writes first, then the database
        (a read does not force a commit)."""
        out: dict[str, dict[str, Any]] = {}
        missing = []
        for source_id in source_ids:
            pending = self._pending.get((kind, source_id))
            if pending is not None:
                out[source_id] = _decode(pending[4])
            else:
                missing.append(source_id)
        rows = await self._select_in("SELECT source_id, canon FROM resources WHERE kind = ? AND source_id IN",
                                     kind, missing)
        for source_id, canon in rows:
            if canon and source_id not in out:
                out[source_id] = _decode(canon)
        return out

    async def count(self, kind: str | None = None) -> int:
        """Objects that have a destination counterpart (of one kind, or all)."""
        sql, args = "SELECT COUNT(*) FROM resources WHERE dest_id IS NOT NULL", tuple[str, ...]()
        if kind:
            sql, args = sql + " AND kind = ?", (kind,)
        return await self._scalar(sql, args)

    async def failures(self) -> list[tuple[str, str, str | None, int]]:
        """(kind, source id, error, attempts) of every failed resource."""
        async with self._lock:
            await self._flush()
            async with self._db.execute(
                "SELECT kind, source_id, error, attempts FROM resources WHERE status = ? "
                "ORDER BY kind, source_id",
                (FAILED,),
            ) as cursor:
                return [(r[0], r[1], r[2], r[3]) for r in await cursor.fetchall()]

    # -- this cycle's scratch (temporary tables) -------------------------------------------------

    async def begin_cycle(self) -> None:
        """Empty the scratch tables of the previous cycle."""
        async with self._lock:
            for table in _SCRATCH_TABLES:
                await self._db.execute(f"DELETE FROM {table}")

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
                await self._db.executemany(
                    "UPDATE scratch_read SET out_of_scope = ? WHERE kind = ? AND source_id = ?",
                    [(why, kind, sid) for sid, why in out_of_scope.items()],
                )
            for chunk in _chunks(changed):
                await self._db.execute(
                    f"UPDATE scratch_read SET changed = 1 WHERE kind = ? AND source_id IN ({_marks(chunk)})",
                    (kind, *chunk),
                )

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

    async def note_listed(self, kind: str, listed: list[tuple[str, str | None, dict[str, Any] | None]]) -> None:
        """Keep a page of a destination listing: (destination id, case-folded match key or None,
        canonical form or None). A key listed twice maps to NULL (ambiguous)."""
        async with self._lock:
            await self._insert_many(
                "INSERT OR REPLACE INTO scratch_listed (kind, dest_id, canon)",
                [(kind, dest_id, None if form is None else _encode(form)) for dest_id, _, form in listed],
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
        return {dest_id: None if canon is None else _decode(canon) for dest_id, canon in rows}

    async def _insert_many(self, head: str, rows: list[tuple[Any, ...]], tail: str = "") -> int:
        """`head VALUES (...), (...) tail` over `rows`, as many rows per statement as SQLite takes
        parameters; returns the rows changed. Not executemany: it steps once per row, and SQLite's
        thread gives the GIL up at every step and waits for it back while the event loop runs (500
        ids took 30 ms of wall time for 4 ms of work, and the reader waited on it)."""
        changed = 0
        if not rows:
            return changed
        width = len(rows[0])
        per_statement = min(_ROWS_PER_STATEMENT, _MAX_PARAMETERS // width)  # full chunks reuse one statement
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            values = ",".join(["(" + ",".join("?" * width) + ")"] * len(chunk))
            cursor = await self._db.execute(f"{head} VALUES {values} {tail}", [v for row in chunk for v in row])
            changed += cursor.rowcount
        return changed

    async def _select_in(
        self, sql: str, kind: str, values: list[str], *, flush: bool = False, params: tuple[Any, ...] = ()
    ) -> list[tuple[Any, ...]]:
        """Rows of `sql` + ` (?, ...)` over `values` (duplicates dropped) in chunks, with `kind` and
        `params` bound first; `flush` commits buffered writes first."""
        out: list[tuple[Any, ...]] = []
        if not values:
            return out
        async with self._lock:
            if flush:
                await self._flush()
            for chunk in _chunks(list(dict.fromkeys(values))):
                async with self._db.execute(f"{sql} ({_marks(chunk)})", (kind, *params, *chunk)) as cursor:
                    out.extend(tuple(row) for row in await cursor.fetchall())
        return out

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
        select = f"""SELECT {_ROW_COLUMNS_R}, (SELECT s.out_of_scope FROM scratch_read s
                                               WHERE s.kind = r.kind AND s.source_id = r.source_id)
                     FROM resources r WHERE {_UNREAD}"""
        async for rows in self._pages(select, kind, chunk):
            yield [(ResourceRow(*row[:-1]), row[-1]) for row in rows]

    async def _scalar(self, sql: str, args: tuple[Any, ...]) -> int:
        async with self._lock:
            await self._flush()
            async with self._db.execute(sql, args) as cursor:
                row = await cursor.fetchone()
        return int(row[0]) if row else 0

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
        canon = _encode(canonical)
        self._mark_dirty()
        self._pending_deletes.discard((kind, source_id))
        self._pending[(kind, source_id)] = (
            kind, source_id, dest_id, digest, canon, status, origin, match_key and match_key.casefold(), None, 0,
            None, now, now,
            source_digest,
        )
        await self._maybe_flush()

    async def record_failure(
        self, kind: str, source_id: str, error: str, *, backoff: Callable[[int], float] = lambda attempts: 0.0,
        source_digest: str | None = None,
    ) -> None:
        """Remember that replicating this object failed, keeping whatever destination id we had; the
        next attempt is due `backoff(failed attempts so far, this one included)` seconds from now.
        `source_digest`: the object as read when it failed (a changed source need not wait)."""
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
                                          created_at, updated_at, failed_source_digest)
                   VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?)
                   ON CONFLICT (kind, source_id) DO UPDATE SET
                       status = CASE WHEN resources.dest_id IS NULL THEN excluded.status
                                     ELSE resources.status END,
                       error = excluded.error,
                       attempts = resources.attempts + 1,
                       next_attempt_at = excluded.next_attempt_at,
                       failed_source_digest = excluded.failed_source_digest""",
                (kind, source_id, FAILED, error[:2000], now + retry_delay, now, now, source_digest),
            )
            self._uncommitted += 1
            self._mark_dirty()
            await self._flush()  # commits with the next batch

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

    async def note_source_digest(self, kind: str, source_id: str, source_digest: str) -> None:
        """The source object's bytes changed but not what we replicate: remember the new digest."""
        self._mark_dirty()
        self._pending_digests[(kind, source_id)] = source_digest
        await self._maybe_flush()

    async def forget(self, kind: str, source_id: str) -> None:
        """Drop an object we deleted from the destination."""
        self._mark_dirty()
        self._pending.pop((kind, source_id), None)
        self._pending_deletes.add((kind, source_id))
        await self._maybe_flush()

    async def written_forms_naming(self, kind: str, dest_ids: set[str]) -> list[tuple[str, str, dict[str, Any]]]:
        """(source id, destination id, last written form) of our objects of `kind` whose written form
        may name one of these destination ids (as a member or a manager value): a superset, which the
        caller narrows. Up to 20 ids SQLite looks for them in the JSON (one scan); past that every
        written form of the kind is returned."""
        if not dest_ids:
            return []
        needles = [b'"value":' + _encode(dest_id) for dest_id in sorted(dest_ids)] if len(dest_ids) <= 20 else []
        where = " AND (" + " OR ".join(["instr(canon, ?) > 0"] * len(needles)) + ")" if needles else ""
        async with self._lock:
            await self._flush()
            async with self._db.execute(
                f"SELECT source_id, dest_id, canon FROM resources WHERE kind = ? AND dest_id IS NOT NULL{where}",
                (kind, *needles),
            ) as cursor:
                rows = await cursor.fetchall()
        return [(source_id, dest_id, _decode(canon)) for source_id, dest_id, canon in rows if canon]

    async def forget_source_digests(self, kind: str, source_ids: list[str]) -> None:
        """These objects lose their source digest: the next cycle plans them even if their source is
        unchanged."""
        if not source_ids:
            return
        async with self._lock:
            await self._flush()
            await self._db.executemany("UPDATE resources SET source_digest = NULL WHERE kind = ? AND source_id = ?",
                                       [(kind, source_id) for source_id in source_ids])
            self._uncommitted += 1
            self._mark_dirty()
            await self._flush()

    def _buffered(self) -> int:
        """Writes buffered and not yet written into the transaction."""
        return len(self._pending) + len(self._pending_deletes) + len(self._pending_digests)

    def _mark_dirty(self) -> None:
        if self._dirty_since is None:
            self._dirty_since = time.monotonic()

    def _commit_due(self) -> bool:
        """A batch of rows waits, or the oldest write not committed is `commit_interval` old."""
        waiting = self._uncommitted + self._buffered()
        if waiting >= self._batch_size:
            return True
        return self._dirty_since is not None and time.monotonic() - self._dirty_since >= self._commit_interval

    async def _maybe_flush(self) -> None:
        """Write and commit when one is due, unless the connection is busy (then a later write does:
        workers recording results do not queue up behind each other's commits)."""
        if self._lock.locked():
            return
        if self._commit_due():
            async with self._lock:
                await self._flush()

    async def flush(self) -> None:
        """Commit buffered writes."""
        async with self._lock:
            await self._flush(commit=True)

    async def _flush(self, *, commit: bool = False) -> None:
        """Write the buffered rows into the open transaction (this connection's reads see them); commit
        when `commit`, or when one is due."""
        due = self._commit_due()
        await self._write_pending()
        if commit or due:
            if self._db.in_transaction:
                await self._commit()
            elif not self._buffered():
                self._uncommitted, self._dirty_since = 0, None

    async def _commit(self) -> None:
        await self._db.commit()
        self._uncommitted = 0
        # writes buffered while the commit ran are not in it: their time counts from now
        self._dirty_since = time.monotonic() if self._buffered() else None

    async def _write_pending(self) -> None:
        if not self._buffered():
            return
        self._uncommitted += self._buffered()
        digests, self._pending_digests = self._pending_digests, {}
        await self._db.executemany(
            "UPDATE resources SET source_digest = ? WHERE kind = ? AND source_id = ?",
            [(digest, kind, source_id) for (kind, source_id), digest in digests.items()],
        )
        rows, self._pending = list(self._pending.values()), {}
        deletes, self._pending_deletes = list(self._pending_deletes), set()
        await self._db.executemany(  # (measured: many rows per statement cost more CPU here)
            """INSERT INTO resources (kind, source_id, dest_id, digest, canon, status, origin,
                                      match_key, error, attempts, next_attempt_at, created_at, updated_at,
                                      source_digest)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (kind, source_id) DO UPDATE SET
                   dest_id = excluded.dest_id, digest = excluded.digest, canon = excluded.canon,
                   status = excluded.status, source_digest = excluded.source_digest,
                   origin = COALESCE(excluded.origin, resources.origin),
                   match_key = COALESCE(excluded.match_key, resources.match_key),
                   error = NULL, attempts = 0, next_attempt_at = NULL,
                   updated_at = excluded.updated_at""",
            rows,
        )
        await self._db.executemany(
            "DELETE FROM resources WHERE kind = ? AND source_id = ?", deletes
        )

    # -- runs ----------------------------------------------------------------------------------

    async def start_run(self, mode: str, dry_run: bool) -> int:
        async with self._lock:
            cursor = await self._db.execute(
                "INSERT INTO runs (mode, dry_run, started_at) VALUES (?, ?, ?)",
                (mode, int(dry_run), time.time()),
            )
            await self._commit()
            return int(cursor.lastrowid or 0)

    async def last_run_unfinished(self) -> bool:
        """True when the latest non-dry run did not finish its plan: the process died mid-cycle (no end
        recorded), or it ended `interrupted` (a signal, a cancellation) or `failed` (a fatal error).
        Its writes may not all be recorded: the next run treats it like a crash."""
        async with self._lock:
            async with self._db.execute(
                "SELECT ended_at, outcome FROM runs WHERE dry_run = 0 ORDER BY id DESC LIMIT 1"
            ) as cursor:
                row = await cursor.fetchone()
            return row is not None and (row[0] is None or row[1] in ("interrupted", "failed"))

    async def finish_run(self, run_id: int, outcome: str, counts: dict[str, Any]) -> None:
        """Record how a run ended and commit what is buffered, also when the caller is cancelled: the
        write runs in a task of its own, which a cancelled caller still waits for before it re-raises
        (called from the `finally` of a cycle being cancelled, a further cancellation, such as a second
        signal, would otherwise stop the record half-way)."""
        write = asyncio.ensure_future(self._finish_run(run_id, outcome, counts))
        cancelled = False
        while not write.done():
            try:
                await asyncio.wait([write])  # (wait, unlike await, leaves the write running when we are cancelled)
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError
        write.result()

    async def _finish_run(self, run_id: int, outcome: str, counts: dict[str, Any]) -> None:
        async with self._lock:
            await self._flush()
            await self._db.execute(
                "UPDATE runs SET ended_at = ?, outcome = ?, counts = ? WHERE id = ?",
                (time.time(), outcome, json.dumps(counts, sort_keys=True), run_id),
            )
            await self._commit()

    async def last_runs(self, limit: int = 10) -> list[RunRecord]:
        async with self._lock:
            async with self._db.execute(
                "SELECT id, mode, dry_run, started_at, ended_at, outcome, counts FROM runs "
                "ORDER BY id DESC LIMIT ?",
                (limit,),
            ) as cursor:
                rows = await cursor.fetchall()
            return [
                RunRecord(r[0], r[1], bool(r[2]), r[3], r[4], r[5], json.loads(r[6]) if r[6] else {})
                for r in rows
            ]


# reference targets after a complete read: not read out of scope, and not disabled unless read in scope
# (we disable what left the source or the scope)
_NOT_READ_OUT_OF_SCOPE = """ AND NOT EXISTS (
    SELECT 1 FROM scratch_read s WHERE s.kind = r.kind AND s.source_id = r.source_id AND s.out_of_scope IS NOT NULL)
    AND (r.status != 'disabled' OR EXISTS (
    SELECT 1 FROM scratch_read s WHERE s.kind = r.kind AND s.source_id = r.source_id AND s.out_of_scope IS NULL))"""
_READ_IN_SCOPE = """ AND EXISTS (
    SELECT 1 FROM scratch_read s WHERE s.kind = r.kind AND s.source_id = r.source_id AND s.out_of_scope IS NULL)"""
# walks the kind's rows in source id order (the unary + keeps SQLite off the dest_id index, which
# would cost a table lookup per row before the scratch probe)
# (a row with origin 'created' and no destination id is a create noted before its POST, not recorded)
_UNREAD = (f"r.kind = ? AND (+r.dest_id IS NOT NULL OR r.origin = 'created')"
           f" AND NOT{_READ_IN_SCOPE.removeprefix(' AND')}")


def _casefold(value: object) -> object:
    return value.casefold() if isinstance(value, str) else value


def _chunks(items: list[str]) -> list[list[str]]:
    return [items[start : start + _IN_CHUNK] for start in range(0, len(items), _IN_CHUNK)]


def _marks(chunk: list[str]) -> str:
    return ",".join("?" * len(chunk))


async def _migrate(db: aiosqlite.Connection, path: str) -> None:
    async with db.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    version = int(row[0]) if row else 0
    if version == 0:
        async with db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN "
                              "('resources', 'runs') LIMIT 3") as cursor:
            foreign = [str(name) for (name,) in await cursor.fetchall()]
        if foreign:  # someone else's database (a mistyped path): adding our tables to it would change it
            raise StateUnusableError(f"state file {path} is an SQLite database of something else (it holds tables "
                                     f"{', '.join(foreign)}), not a scim-replicator state: give another path")
    if version > SCHEMA_VERSION:
        from state.errors import NewerSchemaError

        raise NewerSchemaError(
            f"state file {path} has schema version {version}; this build knows up to {SCHEMA_VERSION}"
        )
    for step in range(version + 1, SCHEMA_VERSION + 1):
        for statement in _MIGRATIONS[step]:
            await db.execute(statement)
        await db.execute(f"PRAGMA user_version = {step}")
        await db.commit()


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
        raise StateUnusableError(_unusable_message(shown, exc)) from exc
    try:
        try:
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")
            await db.execute("PRAGMA busy_timeout = 5000")
            await db.create_function("casefold", 1, _casefold, deterministic=True)
            await _migrate(db, shown)
            await db.execute("PRAGMA temp_store = FILE")  # scratch tables spill to disk, not to memory
            await db.execute("PRAGMA cache_size = -16384")  # 16 MiB of pages for the state...
            await db.execute("PRAGMA temp.cache_size = -16384")  # ...and as much for the scratch tables
            for statement in _SCRATCH:
                await db.execute(statement)
        except (sqlite3.Error, OSError) as exc:
            raise StateUnusableError(_unusable_message(shown, exc)) from exc
        store = StateStore(db, batch_size, commit_interval, path=shown)
        try:
            yield store
        finally:
            await store.flush()
    finally:
        await db.close()
