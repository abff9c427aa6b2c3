"""The one SQLite connection the rooms of an opened state share (the records, the run log, the cycle's
scratch), and the error seam every room's public methods pass through.

`Connection` holds what must be one for all rooms: the lock that serialises every use of the
connection (many workers record results concurrently, and SQLite must never see a cursor of one task
interleaved with a write of another), the buffer of resource writes not yet in the transaction, when a
commit is due, and the first error met. `Room` is the base of the rooms: the flush and commit policy
and the chunked queries they all use.

Writes are buffered and committed in batches (`batch_size` rows, or a flush, or at the first write or
read `commit_interval` seconds after the oldest write not committed), so results are durable as
operations succeed without a commit per row. A read writes the buffered rows first, without
committing them: the connection sees its own open transaction, and a commit per page of the source
was a third of the state's CPU time.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import aiosqlite

from replicator.state.errors import StateUnusableError

_IN_CHUNK = 500  # ids per `IN (...)` query (SQLite allows 999 parameters in old builds)
_MAX_PARAMETERS = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999  # per statement
_ROWS_PER_STATEMENT = 250
# a success's row, as the write buffer holds it
_UPSERT_ROWS = """INSERT INTO resources (kind, source_id, dest_id, digest, canon, status, origin, match_key, error,
                                       attempts, next_attempt_at, created_at, updated_at, source_digest)
                  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                  ON CONFLICT (kind, source_id) DO UPDATE SET
                      dest_id = excluded.dest_id, digest = excluded.digest, canon = excluded.canon,
                      status = excluded.status, source_digest = excluded.source_digest,
                      origin = COALESCE(excluded.origin, resources.origin),
                      match_key = COALESCE(excluded.match_key, resources.match_key),
                      error = NULL, attempts = 0, next_attempt_at = NULL,
                      updated_at = excluded.updated_at"""


class Connection:
    """The connection and what its users share. Made by `open_state`, used through the rooms."""

    def __init__(self, db: aiosqlite.Connection, batch_size: int, commit_interval: float = 1.0,
                 *, path: str = ":memory:") -> None:
        self.db = db
        self.path = path  # the state file, named in errors
        self.broken: str | None = None  # the first error met, raised again by every later call
        self.lock = asyncio.Lock()
        self.batch_size = batch_size
        self.commit_interval = commit_interval
        self.dirty_since: float | None = None  # time.monotonic() of the oldest write not committed
        self.pending: dict[tuple[str, str], tuple[Any, ...]] = {}  # (kind, source id) -> row to write
        self.pending_deletes: set[tuple[str, str]] = set()
        self.pending_digests: dict[tuple[str, str], str] = {}
        self.pending_removed: dict[tuple[str, str], float] = {}  # (kind, destination id) -> when we removed it
        self.uncommitted = 0  # rows written into the open transaction


class Room:
    """Base of the state's rooms: one shared `Connection`, the flush and commit policy, and the chunked
    queries. Its methods are protected: the rooms' public methods (behind the error seam) call them."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._db = connection.db
        self._lock = connection.lock
        self.path = connection.path

    @property
    def broken(self) -> str | None:
        """The first error met by any room of this state (then every call of every room raises it)."""
        return self._connection.broken

    @broken.setter
    def broken(self, message: str | None) -> None:
        self._connection.broken = message

    # -- the write buffer and when it is committed ------------------------------------------------

    def _buffered(self) -> int:
        """Writes buffered and not yet written into the transaction."""
        shared = self._connection
        return len(shared.pending) + len(shared.pending_deletes) + len(shared.pending_digests) + len(shared.pending_removed)

    def _mark_dirty(self) -> None:
        if self._connection.dirty_since is None:
            self._connection.dirty_since = time.monotonic()

    def _commit_due(self) -> bool:
        """A batch of rows waits, or the oldest write not committed is `commit_interval` old."""
        shared = self._connection
        waiting = shared.uncommitted + self._buffered()
        if waiting >= shared.batch_size:
            return True
        return shared.dirty_since is not None and time.monotonic() - shared.dirty_since >= shared.commit_interval

    async def _maybe_flush(self) -> None:
        """Write and commit when one is due, unless the connection is busy (then a later write does:
        workers recording results do not queue up behind each other's commits)."""
        if self._lock.locked():
            return
        if self._commit_due():
            async with self._lock:
                await self._flush()

    async def _flush(self, *, commit: bool = False) -> None:
        """Write the buffered rows into the open transaction (this connection's reads see them); commit
        when `commit`, or when one is due."""
        due = self._commit_due()
        await self._write_pending()
        if commit or due:
            if self._db.in_transaction:
                await self._commit()
            elif not self._buffered():
                self._connection.uncommitted, self._connection.dirty_since = 0, None

    async def _commit(self) -> None:
        await self._db.commit()
        self._connection.uncommitted = 0
        # writes buffered while the commit ran are not in it: their time counts from now
        self._connection.dirty_since = time.monotonic() if self._buffered() else None

    async def _write_pending(self) -> None:
        if not self._buffered():
            return
        shared = self._connection
        shared.uncommitted += self._buffered()
        # only the statements that have rows: each is a round trip to SQLite's thread, and a copy's
        # flushes hold successes alone (the three other statements were empty)
        digests, shared.pending_digests = shared.pending_digests, {}
        if digests:
            await self._db.executemany(
                "UPDATE resources SET source_digest = ? WHERE kind = ? AND source_id = ?",
                [(digest, kind, source_id) for (kind, source_id), digest in digests.items()],
            )
        removed, shared.pending_removed = shared.pending_removed, {}
        if removed:
            await self._db.executemany(  # (state.removed: in the transaction of the rows it forgets)
                """INSERT INTO removed_objects (kind, dest_id, removed_at) VALUES (?, ?, ?)
                   ON CONFLICT (kind, dest_id) DO UPDATE SET removed_at = excluded.removed_at""",
                [(kind, dest_id, at) for (kind, dest_id), at in removed.items()],
            )
        rows, shared.pending = list(shared.pending.values()), {}
        deletes, shared.pending_deletes = list(shared.pending_deletes), set()
        if rows:
            await self._db.executemany(_UPSERT_ROWS, rows)  # (measured: many rows per statement cost more CPU here)
        if deletes:
            await self._db.executemany("DELETE FROM resources WHERE kind = ? AND source_id = ?", deletes)

    # -- chunked queries ------------------------------------------------------------------------

    async def _pages(self, select: str, kind: str, chunk: int) -> AsyncIterator[list[tuple[Any, ...]]]:
        """The rows of `select` (over `resources r`, source id second), `chunk` at a time in source id
        order, buffered writes committed first; no cursor stays open between chunks."""
        after = ""
        while True:
            async with self._lock:
                await self._flush()
                rows = await fetch_all(self._db, f"{select} AND r.source_id > ? ORDER BY r.source_id LIMIT ?",
                                       (kind, after, chunk))
            if rows:
                yield rows
            if len(rows) < chunk:
                return
            after = rows[-1][1]

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
        async for _, rows in self._select_in_chunks(sql, kind, values, flush=flush, params=params):
            out.extend(rows)
        return out

    async def _select_in_chunks(
        self, sql: str, kind: str, values: list[str], *, flush: bool = False, params: tuple[Any, ...] = ()
    ) -> AsyncIterator[tuple[list[str], list[tuple[Any, ...]]]]:
        """`_select_in`, one `IN (...)` chunk at a time: (the chunk of `values`, its rows), so that a
        caller may keep what it needs of each (memory: a million rows are not held at once). Read it to
        the end: it holds the connection's lock until then."""
        if not values:
            return
        async with self._lock:
            if flush:
                await self._flush()
            for chunk in chunks(list(dict.fromkeys(values))):
                yield chunk, await fetch_all(self._db, f"{sql} ({marks(chunk)})", (kind, *params, *chunk))

    async def _scalar(self, sql: str, args: tuple[Any, ...]) -> int:
        async with self._lock:
            await self._flush()
            rows = await fetch_all(self._db, sql, args)
        return int(rows[0][0]) if rows else 0


async def fetch_all(db: aiosqlite.Connection, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """The rows of one query, in one round trip to SQLite's thread (a cursor's execute, fetchall and
    close were three, and each waits for the GIL there while the event loop holds it)."""
    return [tuple(row) for row in await db.execute_fetchall(sql, params)]


def chunks(items: list[str]) -> list[list[str]]:
    """`items` in slices of at most the ids one `IN (...)` takes."""
    return [items[start : start + _IN_CHUNK] for start in range(0, len(items), _IN_CHUNK)]


def marks(chunk: list[str]) -> str:
    """The `?, ?, ...` of an `IN (...)` over `chunk`."""
    return ",".join("?" * len(chunk))


# -- the error seam ------------------------------------------------------------------------------

R = TypeVar("R", bound=Room)


def state_errors_named(cls: type[R]) -> type[R]:
    """Class decorator, a room's error seam: every public coroutine and async generator method raises
    StateUnusableError naming the file (and the method) where SQLite or the OS raised. After one, the
    state is broken for good: every later call of any of its rooms raises it again, so that a cycle
    that met it is never recorded as finished (its run stays unfinished, as after a crash, and the next
    one recovers)."""
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
    async def named(self: Room, *args: Any, **kwargs: Any) -> Any:
        if self.broken is not None:
            raise StateUnusableError(self.broken)
        try:
            return await method(self, *args, **kwargs)
        except (sqlite3.Error, OSError) as exc:
            self.broken = unusable_message(self.path, exc, method.__name__)
            raise StateUnusableError(self.broken) from exc

    return named


def _naming_generator(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def named(self: Room, *args: Any, **kwargs: Any) -> Any:
        if self.broken is not None:
            raise StateUnusableError(self.broken)
        items = method(self, *args, **kwargs)
        try:
            async for item in items:
                yield item
        except (sqlite3.Error, OSError) as exc:
            self.broken = unusable_message(self.path, exc, method.__name__)
            raise StateUnusableError(self.broken) from exc
        finally:
            await items.aclose()

    return named


def unusable_message(path: str, exc: BaseException, doing: str | None = None) -> str:
    """One line naming the state file and what is wrong with it (sqlite's or the OS's words)."""
    if isinstance(exc, sqlite3.DatabaseError) and "file is not a database" in str(exc):
        return f"state file {path} is not a SQLite database ({exc})"
    reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
    return f"state file {path}: {reason}" + (f" ({doing})" if doing else "")
