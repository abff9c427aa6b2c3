"""What the state database looks like: the file's schema, its migrations, the connection's settings and
the per-cycle scratch tables.

The schema is versioned with `PRAGMA user_version` and migrated step by step; a database from a newer
version is refused (NewerSchemaError), and so is another application's database (StateUnusableError):
adding our tables to it would change it.
"""

from __future__ import annotations

import aiosqlite

from replicator.state.errors import NewerSchemaError, StateUnusableError

SCHEMA_VERSION = 11

# a checkpoint (WAL pages copied into the file) every this many pages of WAL, not SQLite's 1,000: a copy
# dirties random index pages in every commit, and a page written by several commits is copied once
_WAL_CHECKPOINT_PAGES = 10_000
_CACHE_KIB = 8_192  # SQLite's page cache for the state (KiB; 16 MiB cost 10 MB more RSS at 100k users, no less CPU)
_TEMP_CACHE_KIB = 2_048  # and for the scratch tables (past it they spill to a temporary file; 16 MiB: +11 MB)

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
    # 5: a run's timeline (replicator.timeline: JSON rows of samples), for `status --plot`; the name
    # (userName / displayName) of an object when it last failed, for `status`
    5: [
        "ALTER TABLE runs ADD COLUMN timeline TEXT",
        "ALTER TABLE resources ADD COLUMN failed_label TEXT",
    ],
    # 6: what each destination was learned to lose (state.keeps): not compared again while unchanged
    6: [
        """CREATE TABLE destination_keeps (
            destination TEXT NOT NULL,
            kind TEXT NOT NULL,
            path TEXT NOT NULL,
            how TEXT NOT NULL,
            objects INTEGER NOT NULL,
            learned_at REAL NOT NULL,
            PRIMARY KEY (destination, kind, path)
        )""",
    ],
    # 7: the limits each destination was learned to enforce (state.keeps), say members per request
    7: [
        """CREATE TABLE destination_limits (
            destination TEXT NOT NULL,
            name TEXT NOT NULL,
            value INTEGER NOT NULL,
            learned_at REAL NOT NULL,
            PRIMARY KEY (destination, name)
        )""",
    ],
    # 8: partial indexes, so that a create's intent row (no destination id, status `creating`) touches
    # neither, and its success inserts one entry into each instead of replacing it: the destination
    # index holds rows with a destination id (every query of it names one), the zero-change index
    # only synced rows with a source digest (the only rows the zero-change check can skip)
    8: [
        "DROP INDEX resources_dest",
        "CREATE INDEX resources_dest ON resources (kind, dest_id) WHERE dest_id IS NOT NULL",
        "DROP INDEX resources_unchanged",
        "CREATE INDEX resources_synced ON resources (kind, source_id, source_digest, status) "
        "WHERE status = 'synced' AND source_digest IS NOT NULL",
    ],
    # 9: an operator's approval of held removals for the next cycle (`approve`; state.approvals)
    9: [
        """CREATE TABLE removal_approvals (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            up_to INTEGER NOT NULL,
            members_up_to INTEGER NOT NULL,
            approved_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            used_by_run INTEGER,
            used_at REAL
        )""",
    ],
    # 10: the destination objects we removed (deleted, or disabled) that groups of ours may still name
    # (state.removed): a later cycle's membership guard does not count the removal of such a member
    10: [
        """CREATE TABLE removed_objects (
            kind TEXT NOT NULL,
            dest_id TEXT NOT NULL,
            removed_at REAL NOT NULL,
            PRIMARY KEY (kind, dest_id)
        ) WITHOUT ROWID""",
    ],
    # 11: a big form's `canon` is zlib-compressed (records.encode_form); no statement, but a build before
    # it would misread such a form, so the version makes it refuse the file
    11: [],
}

# a cycle's bookkeeping: temporary tables of the connection, never in the state file (see state.scratch)
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
SCRATCH_TABLES = ("scratch_read", "scratch_keys", "scratch_listed", "scratch_listed_keys")


async def prepare(db: aiosqlite.Connection, path: str) -> None:
    """Set the connection up (WAL, the `casefold` SQL function, caches), migrate the file to
    SCHEMA_VERSION, and create the scratch tables. sqlite3's and the OS's errors are left to the caller."""
    await db.execute("PRAGMA journal_mode = WAL")
    await db.execute("PRAGMA synchronous = NORMAL")
    await db.execute("PRAGMA busy_timeout = 5000")
    await db.create_function("casefold", 1, _casefold, deterministic=True)
    await _migrate(db, path)
    await db.execute(f"PRAGMA wal_autocheckpoint = {_WAL_CHECKPOINT_PAGES}")
    await db.execute("PRAGMA temp_store = FILE")  # scratch tables spill to disk, not to memory
    await db.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")  # KiB of pages for the state...
    await db.execute(f"PRAGMA temp.cache_size = -{_TEMP_CACHE_KIB}")  # ...and for the scratch tables
    # the scratch tables need no rollback journal: their statements cannot fail half-way on a constraint
    # (OR IGNORE / OR REPLACE / ON CONFLICT), and an error that could (disk full) breaks the state for
    # good, whose connection and scratch are then dropped; journaling every page a page of ids touches
    # was a third of their cost
    await db.execute("PRAGMA temp.journal_mode = OFF")
    for statement in _SCRATCH:
        await db.execute(statement)


def _casefold(value: object) -> object:
    return value.casefold() if isinstance(value, str) else value


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
        raise NewerSchemaError(
            f"state file {path} has schema version {version}; this build knows up to {SCHEMA_VERSION}"
        )
    for step in range(version + 1, SCHEMA_VERSION + 1):
        # one transaction a step, its version included: sqlite3 would commit each DDL statement on its
        # own, and a step cut off half-way (a kill while an index is built) could then never run again
        await db.execute("BEGIN")
        for statement in _MIGRATIONS[step]:
            await db.execute(statement)
        await db.execute(f"PRAGMA user_version = {step}")
        await db.commit()
