"""The state file: stepwise schema migrations, refusal of newer files, and the zero-change fast path."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from replicator.cli import replicate
from replicator.config import Config, SideConfig
from replicator.pipeline.cycle import INCREMENTAL
from replicator.scim.memory_server import MemoryScimServer
from state import open_state
from state.errors import NewerSchemaError
from state.store import _MIGRATIONS, SCHEMA_VERSION
from tests.harness import writes


async def test_a_version_1_state_file_is_migrated_in_place(tmp_path: Path) -> None:
    """A file made by schema version 1 gains the later columns and keeps its rows."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    for statement in _MIGRATIONS[1]:
        db.execute(statement)
    db.execute("INSERT INTO resources (kind, source_id, dest_id, digest, status, created_at, updated_at) "
               "VALUES ('User', 's1', 'd1', 'x', 'synced', 0, 0)")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    async with open_state(path) as store:
        rows = [row async for row in store.iter_rows("User")]
    assert [(r.source_id, r.dest_id, r.source_digest) for r in rows] == [("s1", "d1", None)]
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_a_state_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    """A schema version above ours is not touched."""
    path = tmp_path / "new.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(NewerSchemaError):
        async with open_state(path):
            pass


async def test_server_owned_changes_take_the_fast_path_next_time(tmp_path: Path) -> None:
    """A source object whose bytes change only in server-owned data is written nowhere; its new digest
    is remembered, so the next cycle skips it without planning."""
    source, destination = MemoryScimServer(), MemoryScimServer()
    await source.start()
    await destination.start()
    user = source.add_user({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "fast"})
    config = Config(source=SideConfig(url=source.base_url or ""), destination=SideConfig(url=destination.base_url or ""),
                    state=str(tmp_path / "s.db"))
    await replicate(config, mode=INCREMENTAL, dry_run=False)
    async with open_state(config.state) as store:
        before = [r.source_digest async for r in store.iter_rows("User")]
    user["meta"] = {**user["meta"], "lastModified": "2030-01-01T00:00:00Z"}
    result = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert writes(result.destination_requests) == 0 and result.counts["unchanged"] == 1
    async with open_state(config.state) as store:
        after = [r.source_digest async for r in store.iter_rows("User")]
    assert before[0] and after[0] and before != after
    await source.stop()
    await destination.stop()
