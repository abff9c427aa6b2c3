-- The scim-replicator state file's schema at version 11, as `PRAGMA user_version` tells.
-- Written by replicator/state/schema.py's migrations; this copy is for reading and querying the file with
-- sqlite3, and tests/unit/test_state_schema_file.py keeps it equal to a fresh migration (regenerate with
-- `python tests/unit/test_state_schema_file.py`).

CREATE TABLE destination_keeps (
            destination TEXT NOT NULL,
            kind TEXT NOT NULL,
            path TEXT NOT NULL,
            how TEXT NOT NULL,
            objects INTEGER NOT NULL,
            learned_at REAL NOT NULL,
            PRIMARY KEY (destination, kind, path)
        );

CREATE TABLE destination_limits (
            destination TEXT NOT NULL,
            name TEXT NOT NULL,
            value INTEGER NOT NULL,
            learned_at REAL NOT NULL,
            PRIMARY KEY (destination, name)
        );

CREATE TABLE removal_approvals (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            up_to INTEGER NOT NULL,
            members_up_to INTEGER NOT NULL,
            approved_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            used_by_run INTEGER,
            used_at REAL
        );

CREATE TABLE removed_objects (
            kind TEXT NOT NULL,
            dest_id TEXT NOT NULL,
            removed_at REAL NOT NULL,
            PRIMARY KEY (kind, dest_id)
        ) WITHOUT ROWID;

CREATE TABLE resources (
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
            updated_at REAL NOT NULL, source_digest TEXT, failed_source_digest TEXT, failed_label TEXT,
            PRIMARY KEY (kind, source_id)
        );

CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            mode TEXT NOT NULL,
            dry_run INTEGER NOT NULL,
            started_at REAL NOT NULL,
            ended_at REAL,
            outcome TEXT,
            counts TEXT
        , timeline TEXT);

CREATE TABLE sqlite_sequence(name,seq);

CREATE INDEX resources_dest ON resources (kind, dest_id) WHERE dest_id IS NOT NULL;

CREATE INDEX resources_match ON resources (kind, match_key);

CREATE INDEX resources_synced ON resources (kind, source_id, source_digest, status) WHERE status = 'synced' AND source_digest IS NOT NULL;
