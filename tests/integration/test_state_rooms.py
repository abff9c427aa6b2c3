"""The state's rooms keep the store's promises: one error seam over all of them, the persisted strings,
and written forms found by the fragments the cycle builds."""

from __future__ import annotations

import inspect
import sqlite3
import time
from pathlib import Path

import msgspec
import pytest

from replicator.pipeline.references import reference_values, value_fragments
from replicator.state import Origin, ResourceStatus, StateStore, open_state
from replicator.state.errors import StateUnusableError
from replicator.state.forms import WrittenForms
from replicator.state.intents import CreateIntents
from replicator.state.records import COMPRESSED_FROM, COMPRESSED_MARK, DISABLED, encode_form
from replicator.state.removed import RemovedObjects
from replicator.state.runs import RunLog
from replicator.state.scratch import CycleScratch


@pytest.mark.parametrize("room", [StateStore, CycleScratch, RunLog, WrittenForms, CreateIntents, RemovedObjects])
def test_every_public_method_of_every_room_is_behind_the_error_seam(room: type) -> None:
    """Each public coroutine and async generator method of each room is wrapped by the error seam."""
    public = {name: method for name, method in vars(room).items()
              if not name.startswith("_") and (inspect.iscoroutinefunction(inspect.unwrap(method))
                                               or inspect.isasyncgenfunction(inspect.unwrap(method)))}
    assert public
    assert [name for name, method in public.items() if not hasattr(method, "__wrapped__")] == []


async def test_an_error_in_one_room_breaks_every_room(tmp_path: Path) -> None:
    """An SQLite error met by the scratch names its method, and then the records, the run log and the
    flush on exit raise that same first error: the state is broken for all its rooms at once. (Each
    call's error is kept and checked after the block: a failed check inside it would be replaced by
    the flush's error on exit.)"""
    state = tmp_path / "state.db"
    first = f"state file {state}: no such table: scratch_read (note_read)"
    met: list[str] = []
    with pytest.raises(StateUnusableError) as on_exit:  # the flush on exit
        async with open_state(state) as store:
            await store._db.execute("DROP TABLE temp.scratch_read")  # (temporary: only this connection sees it)
            for call in (store.scratch.note_read("User", ["a"]), store.count("User"), store.runs.last_runs(1)):
                try:
                    await call
                except StateUnusableError as exc:
                    met.append(str(exc))
    assert met == [first] * 3
    assert str(on_exit.value) == first


async def test_the_written_forms_and_the_create_intents_raise_the_first_error_of_the_state(tmp_path: Path) -> None:
    """After the scratch met an SQLite error, the written forms and the create intents raise that same
    error (each call's error is kept, and checked once the flush on exit has raised it too)."""
    state = tmp_path / "state.db"
    first = f"state file {state}: no such table: scratch_read (note_read)"
    met: list[str] = []
    with pytest.raises(StateUnusableError):  # the flush on exit
        async with open_state(state) as store:
            await store._db.execute("DROP TABLE temp.scratch_read")  # (temporary: only this connection sees it)
            with pytest.raises(StateUnusableError):
                await store.scratch.note_read("User", ["a"])
            for call in (store.forms.owners("User", "d1"), store.forms.canonicals("User", ["u1"]),
                         store.intents.note_creating("User", {"u1": None})):
                try:
                    await call
                except StateUnusableError as exc:
                    met.append(str(exc))
    assert met == [first] * 3


async def test_statuses_and_origins_are_stored_as_the_strings_of_the_file_format(tmp_path: Path) -> None:
    """The enums' values are the state file's strings, and a status recorded as an enum is stored as
    plain text."""
    assert [status.value for status in ResourceStatus] == ["synced", "disabled", "failed", "creating"]
    assert [origin.value for origin in Origin] == ["created", "adopted"]
    state = tmp_path / "state.db"
    async with open_state(state) as store:
        await store.record_success("User", "u1", dest_id="d1", digest="x", canonical={}, status=DISABLED,
                                   origin=Origin.ADOPTED)
    with sqlite3.connect(state) as db:
        assert db.execute("SELECT status, typeof(status), origin, typeof(origin) FROM resources").fetchall() == [
            ("disabled", "text", "adopted", "text")]


async def test_written_forms_are_found_by_the_fragments_naming_an_id(tmp_path: Path) -> None:
    """The fragments of an id find the stored forms naming it as a member or manager, also an id that
    JSON escapes; a longer id that starts with it is no match; past 20 fragments every form comes back."""
    odd = 'd"1/é\\'
    forms = {
        "g-odd": {"displayName": "odd", "members": [{"value": odd, "type": "User"}]},
        "g-longer": {"displayName": "longer", "members": [{"value": "d22"}]},
        "g-short": {"displayName": "short", "members": [{"value": "d2"}]},
    }
    async with open_state(tmp_path / "state.db") as store:
        for source_id, form in forms.items():
            await store.record_success("Group", source_id, dest_id="x" + source_id, digest="x", canonical=form)
        found = await store.forms.written_forms_containing("Group", value_fragments({odd, "d2"}))
        assert sorted(sid for sid, _, _ in found) == ["g-odd", "g-short"]
        assert await store.forms.written_forms_containing("Group", value_fragments(set())) == []
        many = value_fragments({f"n{index}" for index in range(21)})
        assert len(await store.forms.written_forms_containing("Group", many)) == 3  # a superset the caller narrows
    assert all(fragment in encode_form(forms["g-odd"]) for fragment in value_fragments({odd}))
    assert reference_values(forms["g-odd"], "Group") == {odd}


async def test_a_big_form_is_stored_compressed_and_still_found_and_read_back(tmp_path: Path) -> None:
    """A group form past COMPRESSED_FROM bytes of JSON is stored compressed (SQLite holds what it inserts
    twice), reads back the same (buffered and committed), and is found by the fragments of a member's id,
    which SQL cannot look for in it; a small form stays plain JSON."""
    big = {"displayName": "everyone",
           "members": [{"value": f"{index:08d}-5d1c-4f5e-9a0b-c0ffee", "type": "User"} for index in range(8000)]}
    small = {"displayName": "few", "members": [{"value": "d1", "type": "User"}]}
    assert len(msgspec.json.encode(big)) >= COMPRESSED_FROM > len(msgspec.json.encode(small))
    state = tmp_path / "state.db"
    async with open_state(state) as store:
        await store.record_success("Group", "g-big", dest_id="x1", digest="x", canonical=big)
        await store.record_success("Group", "g-small", dest_id="x2", digest="x", canonical=small)
        assert await store.forms.canonical("Group", "g-big") == big  # (buffered)
    with sqlite3.connect(state) as db:
        stored = dict(db.execute("SELECT source_id, canon FROM resources").fetchall())
    assert stored["g-big"][:1] == COMPRESSED_MARK and len(stored["g-big"]) < len(msgspec.json.encode(big)) / 2
    assert stored["g-small"] == encode_form(small) and stored["g-small"][:1] == b"{"
    async with open_state(state) as store:
        assert await store.forms.canonical("Group", "g-big") == big
        member = big["members"][4321]["value"]
        found = await store.forms.written_forms_containing("Group", value_fragments({member}))
        assert [(sid, form) for sid, _, form in found] == [("g-big", big)]  # (the small one does not name it)
        assert sorted(sid for sid, _, _ in await store.forms.written_forms_containing("Group", value_fragments({"d1"}))) == [
            "g-big", "g-small"]  # (a superset: the compressed one is always among them)


async def test_a_removal_is_noted_with_the_forgetting_of_its_row(tmp_path: Path) -> None:
    """A removal noted and its row forgotten are buffered, and committed in one transaction: a crash
    after the commit finds both, one before finds neither (the row still there: the removal is planned
    again)."""
    state = tmp_path / "state.db"
    async with open_state(state, batch_size=1000, commit_interval=3600) as store:
        await store.record_success("Group", "g1", dest_id="d1", digest="x", canonical={})
        await store.flush()
        await store.removed.note("Group", "d1")
        await store.forget("Group", "g1")
        with sqlite3.connect(state) as other:  # another connection sees what is committed only
            assert other.execute("SELECT COUNT(*) FROM removed_objects").fetchone() == (0,)
            assert other.execute("SELECT COUNT(*) FROM resources").fetchone() == (1,)
    with sqlite3.connect(state) as db:
        assert db.execute("SELECT kind, dest_id FROM removed_objects").fetchall() == [("Group", "d1")]
        assert db.execute("SELECT COUNT(*) FROM resources").fetchone() == (0,)


async def test_removals_are_found_by_kind_and_time_and_not_once_an_object_of_ours_holds_the_id_again(
        tmp_path: Path) -> None:
    """`among` answers the ids of one kind removed since a time; an id an object of ours holds again (a
    user enabled again, a destination reusing ids) is no removal any more, a disabled one still is;
    `forget` and `expire` drop entries."""
    async with open_state(tmp_path / "state.db") as store:
        for kind, dest_id in (("User", "u1"), ("User", "u2"), ("User", "u3"), ("Group", "g1")):
            await store.removed.note(kind, dest_id)
        assert await store.removed.among("User", ["u1", "u2", "g1", "x"], since=0) == {"u1", "u2"}
        assert await store.removed.among("Group", ["u1", "g1"], since=0) == {"g1"}
        assert await store.removed.among("User", ["u1"], since=time.time() + 60) == set()
        await store.record_success("User", "s2", dest_id="u2", digest="x", canonical={})
        await store.record_success("User", "s3", dest_id="u3", digest="x", canonical={}, status=DISABLED)
        assert await store.removed.among("User", ["u1", "u2", "u3"], since=0) == {"u1", "u3"}
        await store.removed.forget("User", ["u1"])
        assert await store.removed.among("User", ["u1", "u3"], since=0) == {"u3"}
        assert await store.removed.expire(time.time() - 60) == 0
        assert await store.removed.expire(time.time() + 60) == 3  # u2, u3, g1
        assert await store.removed.among("User", ["u3"], since=0) == set()
