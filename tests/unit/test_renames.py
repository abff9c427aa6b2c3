"""plan_renames: any permutation of names (swaps, rotations, chains into free names) is written in an
order where no PATCH needs a name another object still holds, and every object ends with its name."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from replicator.pipeline.renames import (
    Rename,
    RenameMove,
    is_temporary_name,
    name_taken,
    plan_renames,
    renamed_to,
    temporary_name,
)


def replay(holding: dict[str, str], moves: list[RenameMove]) -> dict[str, str]:
    """Apply the moves to `holding` (key -> name), asserting that no move takes a name held by another."""
    names = dict(holding)
    for move in moves:
        taken = {name.casefold(): key for key, name in names.items()}
        assert taken.get(move.name.casefold(), move.key) == move.key, (move, names)
        names[move.key] = move.name
    return names


@given(st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=12, unique_by=str.casefold), st.data())
def test_any_permutation_of_names_converges(names: list[str], data: st.DataObject) -> None:
    """Objects holding `names` are given a permutation of them: the plan never collides and ends right,
    with at most one temporary move per cycle of the permutation."""
    wanted = data.draw(st.permutations(names))
    holding = {f"id{i}": name for i, name in enumerate(names)}
    renames = [Rename(f"id{i}", name, want) for i, (name, want) in enumerate(zip(names, wanted, strict=True))
               if name != want]
    moves = plan_renames(renames)
    final = replay(holding, moves)
    assert final == {f"id{i}": want for i, want in enumerate(wanted)}
    assert not any(is_temporary_name(name) for name in final.values())
    cycles = _cycles(dict(zip(names, wanted, strict=True)))
    assert sum(move.temporary for move in moves) == cycles
    assert len(moves) == len(renames) + cycles


@given(st.lists(st.text(min_size=1, max_size=4), min_size=2, max_size=10, unique_by=str.casefold), st.data())
def test_chains_into_free_names_need_no_temporary_name(names: list[str], data: st.DataObject) -> None:
    """Each object takes the next one's name and the last a name nobody holds: no temporary move."""
    order = data.draw(st.permutations(names))
    renames = [Rename(f"k{i}", order[i], order[i + 1] if i + 1 < len(order) else order[-1] + "!!!!!")
               for i in range(len(order))]
    moves = plan_renames(renames)
    assert not any(move.temporary for move in moves)
    replay({r.key: r.current for r in renames}, moves)


def test_a_swap_moves_one_object_aside_first() -> None:
    """ann <-> bob: one of them goes to its temporary name, the other takes its name, then it takes the other's."""
    moves = plan_renames([Rename("x", "ann", "bob"), Rename("y", "bob", "ann")])
    assert moves == [RenameMove("x", temporary_name("ann", "x"), temporary=True), RenameMove("y", "ann"),
                     RenameMove("x", "bob")]


def test_temporary_names_are_recognisable_and_keep_an_email_an_email() -> None:
    """The temporary name starts with the prefix and keeps the old name after it."""
    name = temporary_name("ann@example.com", "source-id-1")
    assert is_temporary_name(name) and name.endswith("-ann@example.com") and name.count("@") == 1
    assert name == temporary_name("ann@example.com", "source-id-1") != temporary_name("ann@example.com", "other")
    assert not is_temporary_name("renaming-ann") and not is_temporary_name("ann")


def test_renamed_to_reads_the_name_replace() -> None:
    """A replace of userName (any case) is a rename; other operations are not."""
    assert renamed_to("User", [{"op": "replace", "path": "UserName", "value": "b"}]) == "b"
    assert renamed_to("User", [{"op": "replace", "path": "title", "value": "b"}]) is None
    assert renamed_to("Group", [{"op": "replace", "path": "displayName", "value": "g"}]) == "g"


def _cycles(permutation: dict[str, str]) -> int:
    """The number of cycles longer than one in a permutation of names."""
    seen: set[str] = set()
    count = 0
    for start in permutation:
        if start in seen or permutation[start] == start:
            continue
        count += 1
        name = start
        while name not in seen:
            seen.add(name)
            name = permutation[name]
    return count


def test_name_taken_reads_409_and_400_uniqueness() -> None:
    """A 409, or a 400 whose scimType is uniqueness (PingOne: UNIQUENESS_VIOLATION), says a name is taken."""
    assert name_taken(409, None) and name_taken(400, "uniqueness") and name_taken(400, "UNIQUENESS_VIOLATION")
    assert not name_taken(400, "invalidValue") and not name_taken(400, None)
