"""The state file: stepwise schema migrations, refusal of newer files, and the zero-change fast path."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from replicator.app import replicate
from replicator.config import Config, SideConfig
from replicator.cycle import INCREMENTAL
from replicator.state import open_state
from replicator.state.errors import NewerSchemaError
from replicator.state.schema import _MIGRATIONS, SCHEMA_VERSION
from replicator.testing import MemoryScimServer
from tests.harness import writes


async def test_a_version_1_state_file_is_migrated_in_place(tmp_path: Path) -> None:
    """A file made by schema version 1 gains the later columns and indexes and keeps its rows."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    for statement in _MIGRATIONS[1]:
        db.execute(statement)
    db.execute("INSERT INTO resources (kind, source_id, dest_id, digest, status, match_key, created_at, updated_at) "
               "VALUES ('User', 's1', 'd1', 'x', 'synced', 'Straße@Example.COM', 0, 0)")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    async with open_state(path) as store:
        rows = [row async for row in store.iter_rows("User")]
    assert [(r.source_id, r.dest_id, r.source_digest) for r in rows] == [("s1", "d1", None)]
    assert rows[0].match_key == "strasse@example.com"  # version 3 keeps match keys case-folded
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


async def test_the_scratch_tables_track_reads_duplicates_and_keys_within_one_cycle(tmp_path: Path) -> None:
    """Ids read earlier in the cycle come back as duplicates, the first claim of a match key wins,
    and a new cycle starts empty."""
    async with open_state(tmp_path / "s.db") as store:
        assert await store.scratch.note_read("User", ["a", "b"]) == set()
        assert await store.scratch.note_read("User", ["b", "c"]) == {"b"}
        assert await store.scratch.note_read("Group", ["a"]) == set()  # kinds are apart
        owners = await store.scratch.claim_keys("User", [("alice", "a"), ("bob", "b"), ("alice", "c")])
        assert owners == {"alice": "a", "bob": "b"}
        assert await store.scratch.claim_keys("User", [("alice", "c")]) == {"alice": "a"}
        await store.scratch.begin_cycle()
        assert await store.scratch.note_read("User", ["b"]) == set()
        assert await store.scratch.claim_keys("User", [("alice", "c")]) == {"alice": "c"}


async def test_objects_not_read_in_scope_are_the_removal_candidates(tmp_path: Path) -> None:
    """Rows with a destination id that this cycle did not read, or read out of scope (with why),
    are counted and listed; rows without a destination id are not."""
    async with open_state(tmp_path / "s.db", batch_size=1000) as store:
        for sid in ("kept", "gone", "scoped-out"):
            await store.record_success("User", sid, dest_id=f"d-{sid}", digest="x", canonical={"userName": sid},
                                       origin="created")
        await store.record_failure("User", "never-written", "boom")
        await store.scratch.note_read("User", ["kept", "scoped-out"])
        await store.scratch.mark_read("User", out_of_scope={"scoped-out": "not in group Staff"}, changed=[])
        assert await store.scratch.unread_count("User") == 2
        assert await store.scratch.in_scope_count("User") == 1
        unread = [(row.source_id, why) async for chunk in store.scratch.iter_unread("User", chunk=1) for row, why in chunk]
        assert unread == [("gone", None), ("scoped-out", "not in group Staff")]


async def test_destination_ids_come_from_buffered_writes_and_can_leave_out_objects_read_out_of_scope(
        tmp_path: Path) -> None:
    """dest_ids sees writes not yet committed and forgotten rows; `not_out_of_scope` leaves out objects
    this cycle read out of scope, and keeps those it did not read (a read can miss a live object)."""
    async with open_state(tmp_path / "s.db", batch_size=1000) as store:
        await store.record_success("User", "u1", dest_id="d1", digest="x", canonical={})
        await store.flush()
        await store.record_success("User", "u2", dest_id="d2", digest="x", canonical={})  # still buffered
        await store.record_success("User", "u3", dest_id="d3", digest="x", canonical={})
        await store.record_success("User", "u5", dest_id="d5", digest="x", canonical={})
        await store.flush()
        await store.forget("User", "u3")  # buffered delete
        assert await store.dest_ids("User", ["u1", "u2", "u3", "u4"]) == {"u1": "d1", "u2": "d2"}
        await store.scratch.note_read("User", ["u2", "u5"])
        await store.scratch.mark_read("User", out_of_scope={"u5": "inactive"}, changed=[])
        assert await store.dest_ids("User", ["u1", "u2", "u5"], not_out_of_scope=True) == {"u1": "d1", "u2": "d2"}


async def test_a_lookup_in_a_cycle_that_read_nothing_out_of_scope_probes_for_no_such_mark(tmp_path: Path) -> None:
    """While a cycle has read no object of the kind out of scope, its lookups of reference targets leave
    out the probe for an out-of-scope mark (one per id, a quarter of a big group's lookup time) and still
    leave out disabled objects it did not read; once it has read one, they probe again."""
    async with open_state(tmp_path / "s.db") as store:
        await store.scratch.begin_cycle()
        await store.record_success("User", "u1", dest_id="d1", digest="x", canonical={})
        await store.record_success("User", "u2", dest_id="d2", digest="x", canonical={})
        await store.flush()
        await store.scratch.note_read("User", ["u1", "u2"])
        await store.scratch.mark_read("User", out_of_scope={}, changed=[])
        statements: list[str] = []
        await store._db.set_trace_callback(statements.append)
        assert await store.dest_ids("User", ["u1", "u2"], not_out_of_scope=True) == {"u1": "d1", "u2": "d2"}
        await store.scratch.note_read("User", ["u3"])
        await store.scratch.mark_read("User", out_of_scope={"u3": "inactive"}, changed=[])
        assert await store.dest_ids("User", ["u1", "u2"], not_out_of_scope=True) == {"u1": "d1", "u2": "d2"}
        await store._db.set_trace_callback(None)
    told, untold = [sql for sql in statements if "SELECT source_id, dest_id FROM resources" in sql]
    assert "out_of_scope IS NOT NULL" not in told and "status != 'disabled'" in told
    assert "out_of_scope IS NOT NULL" in untold


async def test_destination_ids_of_many_objects_are_keyed_by_the_callers_strings(tmp_path: Path) -> None:
    """dest_ids over more ids than one query takes answers each of them, keyed by the caller's own string
    objects (not SQLite's copies: a group of a million members looks up a million ids)."""
    async with open_state(tmp_path / "s.db", batch_size=5000) as store:
        for i in range(1201):
            await store.record_success("User", f"u{i}", dest_id=f"d{i}", digest="x", canonical={})
        await store.flush()
        wanted = [f"u{i}" for i in range(1203)]  # (new string objects, equal to the recorded ids)
        found = await store.dest_ids("User", wanted)
        assert found == {f"u{i}": f"d{i}" for i in range(1201)}
        mine = {id(source_id) for source_id in wanted}
        assert all(id(source_id) in mine for source_id in found)


async def test_a_failure_backs_off_by_the_number_of_failed_attempts(tmp_path: Path) -> None:
    """record_failure hands the attempt count (this one included) to the backoff."""
    attempts_seen: list[int] = []

    def backoff(attempts: int) -> float:
        attempts_seen.append(attempts)
        return 60.0

    async with open_state(tmp_path / "s.db") as store:
        for _ in range(3):
            await store.record_failure("User", "u1", "boom", backoff=backoff)
        rows = await store.rows("User", ["u1"])
    assert attempts_seen == [1, 2, 3]
    assert rows["u1"].attempts == 3 and rows["u1"].next_attempt_at is not None


async def test_a_destination_listing_is_kept_in_the_scratch_tables(tmp_path: Path) -> None:
    """A listed key shared by two objects (on two pages, or on one) maps to None (ambiguous); forms
    come back as kept; listing a kind again starts from nothing."""
    async with open_state(tmp_path / "s.db") as store:
        await store.scratch.note_listed("User", [("d1", "alice", {"userName": "alice"}), ("d2", "bob", None)])
        await store.scratch.note_listed("User", [("d3", "alice", None), ("d4", None, None), ("d5", "eve", None),
                                         ("d6", "eve", None), ("d7", "dan", None)])
        assert await store.scratch.listed_keys("User", ["alice", "bob", "carol", "eve", "dan"]) == {
            "alice": None, "bob": "d2", "eve": None, "dan": "d7"}
        assert await store.scratch.listed_forms("User", ["d1", "d2", "d9"]) == {"d1": {"userName": "alice"}, "d2": None}
        assert await store.scratch.listed_before("User", ["d4", "d9"]) == {"d4"}
        await store.scratch.forget_listing("User")
        assert await store.scratch.listed_keys("User", ["bob"]) == {}


async def test_written_since_counts_successful_writes_not_later_failures(tmp_path: Path) -> None:
    """An object written this cycle stays 'written' when a later attempt fails; one written before
    does not become 'written' by failing now."""
    import time

    async with open_state(tmp_path / "s.db") as store:
        await store.record_success("User", "old", dest_id="d0", digest="x", canonical={})
        await store.flush()
        since = time.time()
        await store.record_success("User", "new", dest_id="d1", digest="x", canonical={})
        await store.flush()
        await store.record_failure("User", "new", "boom")
        await store.record_failure("User", "old", "boom")
        assert await store.written_since("User", ["old", "new"], since) == {"new"}


async def test_key_holders_are_unchanged_objects_read_in_scope(tmp_path: Path) -> None:
    """A key last written by an object read this cycle holds it, unless that object changed (it
    claims its current key instead), was not read, or is out of scope."""
    async with open_state(tmp_path / "s.db") as store:
        for sid in ("same", "changed", "unread", "scoped-out"):
            await store.record_success("User", sid, dest_id=f"d-{sid}", digest="x", canonical={},
                                       match_key=f"Key-{sid}")
        await store.scratch.note_read("User", ["same", "changed", "scoped-out"])
        await store.scratch.mark_read("User", out_of_scope={"scoped-out": "why"}, changed=["changed"])
        keys = [f"key-{sid}" for sid in ("same", "changed", "unread", "scoped-out")]
        assert await store.scratch.key_holders("User", keys) == {"key-same": "same"}


def committed(path: Path) -> int:
    """Rows another connection sees in the state file (committed ones)."""
    with contextlib.closing(sqlite3.connect(path)) as other:
        return other.execute("SELECT COUNT(*) FROM resources").fetchone()[0]


async def test_reads_see_buffered_rows_that_are_committed_by_the_batch(tmp_path: Path) -> None:
    """A read writes the buffered rows into the open transaction (it sees them) without committing
    them; they are committed when a batch of rows is written, or by flush()."""
    path = tmp_path / "s.db"

    async with open_state(path, batch_size=3) as store:
        await store.record_success("User", "u1", dest_id="d1", digest="x", canonical={})
        assert set(await store.rows("User", ["u1"])) == {"u1"}
        assert committed(path) == 0
        await store.record_success("User", "u2", dest_id="d2", digest="x", canonical={})
        await store.record_failure("User", "u3", "boom")  # the third row: a batch
        assert committed(path) == 3
        await store.record_success("User", "u4", dest_id="d4", digest="x", canonical={})
        await store.flush()
        assert committed(path) == 4


async def test_a_flush_sends_only_the_statements_that_have_rows(tmp_path: Path) -> None:
    """Each statement is a round trip to SQLite's thread: a flush of successes alone (a copy's) sends
    the one upsert, not three empty statements beside it; deletes and source digests still go."""
    path = tmp_path / "s.db"
    async with open_state(path) as store:
        sent: list[tuple[str, int]] = []
        real_executemany = store._db.executemany

        async def counted(sql: str, rows: Any) -> Any:
            rows = list(rows)
            sent.append((sql.split()[0], len(rows)))
            return await real_executemany(sql, rows)

        store._db.executemany = counted  # type: ignore[method-assign]
        for i in range(3):
            await store.record_success("User", f"u{i}", dest_id=f"d{i}", digest="x", canonical={})
        await store.flush()
        assert sent == [("INSERT", 3)]
        sent.clear()
        await store.forget("User", "u0")
        await store.note_source_digest("User", "u1", "new digest")
        await store.flush()
        assert sorted(sent) == [("DELETE", 1), ("UPDATE", 1)]
    db = sqlite3.connect(path)
    assert db.execute("SELECT source_id, source_digest FROM resources ORDER BY source_id").fetchall() == [
        ("u1", "new digest"), ("u2", None)]


async def test_a_query_is_one_round_trip_to_sqlites_thread(tmp_path: Path) -> None:
    """A read of the state (rows, destination ids, a count, a page of rows) is one call on SQLite's
    thread, not a cursor's execute, fetch and close: each waits there for the GIL while the event loop
    runs, and the reader makes several a page."""
    async with open_state(tmp_path / "s.db") as store:
        for i in range(3):
            await store.record_success("User", f"u{i}", dest_id=f"d{i}", digest="x", canonical={})
        await store.flush()
        calls: list[str] = []
        real_execute = store._db._execute

        async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(getattr(fn, "__name__", repr(fn)))
            return await real_execute(fn, *args, **kwargs)

        store._db._execute = counted  # type: ignore[method-assign]
        assert set(await store.rows("User", ["u0", "u1"])) == {"u0", "u1"}
        assert await store.dest_ids("User", ["u2", "missing"]) == {"u2": "d2"}
        assert await store.count("User") == 3
        assert [row.source_id async for row in store.iter_rows("User", chunk=2)] == ["u0", "u1", "u2"]
        assert len(calls) == 5, calls  # one each, and the page of rows two pages


async def test_a_write_a_second_after_the_oldest_uncommitted_one_commits(tmp_path: Path) -> None:
    """Results are not left uncommitted for long when they come slowly: the first write
    `commit_interval` after the oldest uncommitted one commits them all (a crash loses about that much)."""
    path = tmp_path / "s.db"

    async with open_state(path, batch_size=1000, commit_interval=0.2) as store:
        await store.record_success("User", "u1", dest_id="d1", digest="x", canonical={})
        await store.record_success("User", "u2", dest_id="d2", digest="x", canonical={})
        assert committed(path) == 0
        await asyncio.sleep(0.25)
        await store.record_success("User", "u3", dest_id="d3", digest="x", canonical={})
        assert committed(path) == 3
        await store.forget("User", "u1")
        assert committed(path) == 3  # the interval starts again


async def test_a_result_recorded_while_a_commit_runs_is_committed_about_a_second_later(tmp_path: Path) -> None:
    """A write buffered while a commit is in flight is not in it: its time counts from then, so a
    later read commits it once `commit_interval` has passed (it is not left for the end of the run)."""
    path = tmp_path / "s.db"
    async with open_state(path, commit_interval=0.2) as store:
        real_commit = store._db.commit
        in_flight, finish = asyncio.Event(), asyncio.Event()

        async def held_commit() -> None:
            in_flight.set()
            await finish.wait()  # other tasks run while the commit is in flight
            await real_commit()

        store._db.commit = held_commit  # type: ignore[method-assign]
        await store.record_success("User", "A", dest_id="d1", digest="x", canonical={})
        await asyncio.sleep(0.25)
        reading = asyncio.create_task(store.rows("User", ["A"]))  # commits A, which is due
        await in_flight.wait()
        await store.record_success("User", "B", dest_id="d2", digest="x", canonical={})
        finish.set()
        await reading
        assert committed(path) == 1
        await asyncio.sleep(0.25)
        await store.rows("User", ["A"])
        assert committed(path) == 2
        store._db.commit = real_commit  # type: ignore[method-assign]
