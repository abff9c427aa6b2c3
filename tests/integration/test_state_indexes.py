"""The state's indexes and connection settings (schema version 8): partial indexes that a create's
intent row does not touch, an upgrade from version 7 that keeps working, and the connection's pragmas."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from replicator.app import replicate
from replicator.config import Config, SideConfig
from replicator.cycle import INCREMENTAL
from replicator.state import open_state
from replicator.state import schema as state_schema
from replicator.state.errors import StateUnusableError
from replicator.state.records import SYNCED
from replicator.state.store import _SYNCED_WITH_DIGEST
from replicator.testing import MemoryScimServer
from tests.harness import writes

_USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
_GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"


def _as_version_7(path: Path) -> None:
    """Give a state file version 7's indexes back, as a file written by the previous build has them."""
    db = sqlite3.connect(path)
    db.execute("DROP INDEX resources_dest")
    db.execute("DROP INDEX resources_synced")
    db.execute("CREATE INDEX resources_dest ON resources (kind, dest_id)")
    db.execute("CREATE INDEX resources_unchanged ON resources (kind, source_id, source_digest, status)")
    db.execute("DROP TABLE IF EXISTS removal_approvals")  # (version 9's)
    db.execute("DROP TABLE IF EXISTS removed_objects")  # (version 10's)
    db.execute("PRAGMA user_version = 7")
    db.commit()
    db.close()


def _rows(path: Path) -> list[tuple[object, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT * FROM resources ORDER BY kind, source_id").fetchall()
    finally:
        db.close()


async def test_a_version_7_state_is_migrated_and_its_zero_change_cycle_writes_nothing(tmp_path: Path) -> None:
    """A state written with version 7's indexes gains the partial ones, and the next cycle over an
    unchanged source takes the zero-change path for every object: no request writes, no row changes."""
    source, destination = MemoryScimServer(), MemoryScimServer()
    await source.start()
    await destination.start()
    try:
        users = [source.add_user({"schemas": [_USER_SCHEMA], "userName": f"user{i}"}) for i in range(3)]
        source.add_group({"schemas": [_GROUP_SCHEMA], "displayName": "team",
                          "members": [{"value": user["id"], "type": "User"} for user in users]})
        config = Config(source=SideConfig(url=source.base_url or ""),
                        destination=SideConfig(url=destination.base_url or ""), state=str(tmp_path / "s.db"))
        first = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert first.counts["created"] == 4
        _as_version_7(tmp_path / "s.db")
        before = _rows(tmp_path / "s.db")
        again = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert writes(again.destination_requests) == 0 and again.counts["unchanged"] == 4
        assert _rows(tmp_path / "s.db") == before
        db = sqlite3.connect(tmp_path / "s.db")
        indexes = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' "
                                                  "AND name NOT LIKE 'sqlite_%'")}
        version = db.execute("PRAGMA user_version").fetchone()[0]
        db.close()
        assert indexes == {"resources_dest", "resources_match", "resources_synced"}
        assert version == state_schema.SCHEMA_VERSION
    finally:
        await source.stop()
        await destination.stop()


async def test_the_zero_change_marks_are_those_of_synced_rows_answered_from_their_index(tmp_path: Path) -> None:
    """`unchanged_marks` answers synced rows with a source digest only (not a create noted before its
    POST, a failure, a row without a digest), and SQLite answers it from the partial index alone."""
    path = tmp_path / "s.db"
    async with open_state(path) as store:
        await store.record_success("User", "synced", dest_id="d1", digest="x", canonical={"userName": "a"},
                                   match_key="a", source_digest="digest-a")
        await store.record_success("User", "no-digest", dest_id="d2", digest="x", canonical={"userName": "b"},
                                   match_key="b")
        await store.intents.note_creating("User", {"noted": "c"})
        await store.record_failure("User", "failed", "refused", source_digest="digest-d")
        marks = await store.unchanged_marks("User", ["synced", "no-digest", "noted", "failed", "unknown"])
    assert marks == {"synced": ("digest-a", SYNCED)}
    db = sqlite3.connect(path)
    plan = db.execute("EXPLAIN QUERY PLAN SELECT source_id, source_digest FROM resources WHERE kind = ? AND "
                      f"{_SYNCED_WITH_DIGEST} AND source_id IN (?, ?)", ("User", "a", "b")).fetchall()
    db.close()
    assert [row[3] for row in plan] == [
        "SEARCH resources USING COVERING INDEX resources_synced (kind=? AND source_id=? AND source_digest>?)"]


async def test_a_create_noted_before_a_crash_is_found_by_the_next_opening(tmp_path: Path) -> None:
    """A create intent committed and then lost to a crash (no success recorded) is still seen by the
    next opening of the state: as a row of its own and among the objects a cycle did not read."""
    path = tmp_path / "s.db"
    async with open_state(path) as store:
        await store.intents.note_creating("User", {"u1": "Alice@Example.com"})
        crashed = sqlite3.connect(path)  # another connection sees only what was committed
        committed = crashed.execute("SELECT status, origin, match_key, dest_id FROM resources").fetchall()
        crashed.close()
    assert committed == [("creating", "created", "alice@example.com", None)]
    async with open_state(path) as store:
        await store.scratch.begin_cycle()
        unread = [(row.source_id, row.origin) for chunk in [c async for c in store.scratch.iter_unread("User")]
                  for row, _ in chunk]
        assert unread == [("u1", "created")]
        assert await store.count("User") == 0  # no destination id yet


async def test_the_connection_is_set_up_for_a_copy_in_bounded_memory(tmp_path: Path) -> None:
    """The state's connection checkpoints every 10,000 WAL pages, keeps 8 MiB of pages for the state
    and 2 MiB for the scratch tables, and journals no scratch table."""
    async with open_state(tmp_path / "s.db") as store:
        settings = {}
        for pragma in ("journal_mode", "wal_autocheckpoint", "cache_size", "temp.cache_size", "temp.journal_mode"):
            async with store._db.execute(f"PRAGMA {pragma}") as cursor:
                row = await cursor.fetchone()
                assert row is not None
                settings[pragma] = row[0]
    assert settings == {"journal_mode": "wal", "wal_autocheckpoint": 10_000, "cache_size": -8192,
                        "temp.cache_size": -2048, "temp.journal_mode": "off"}


async def test_an_upgrade_cut_off_half_way_runs_again_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A migration step that stops after its first statement (a kill while the next index is built)
    leaves the file at the old version with nothing of the step done, so the next opening runs the
    step again and succeeds (no 'no such index' for ever after)."""
    path = tmp_path / "s.db"
    async with open_state(path) as store:
        await store.record_success("User", "a", dest_id="d1", digest="x", canonical={"userName": "a"})
    _as_version_7(path)
    whole = state_schema._MIGRATIONS[8]
    monkeypatch.setitem(state_schema._MIGRATIONS, 8, [whole[0], "CREATE INDEX broken ON no_such_table (x)"])
    with pytest.raises(StateUnusableError):
        async with open_state(path):
            pass
    monkeypatch.setitem(state_schema._MIGRATIONS, 8, whole)
    async with open_state(path) as store:
        assert (await store.rows("User", ["a"]))["a"].dest_id == "d1"
    db = sqlite3.connect(path)
    version = db.execute("PRAGMA user_version").fetchone()[0]
    db.close()
    assert version == state_schema.SCHEMA_VERSION
