"""Which new source object an object left under a temporary name by a swap whose state was lost is
(`leftover_claims`), written out step by step for a rotation a -> b -> c -> a: the object moved aside
for A (`renaming-<tag of A>-a`) is claimed by the name it gave up, or by A's tag once another object
holds that name, never by a guess."""

from __future__ import annotations

from replicator.pipeline.renames import Leftover, leftover, leftover_claims, may_claim, temporary_name, temporary_tag


def left_by_a() -> Leftover:
    found = leftover("dest-a", temporary_name("a", "A"))
    assert found is not None
    return found


def claims(source_id: str, key: str, held: set[str]) -> list[str]:
    return [left.dest_id for left in leftover_claims([left_by_a()], source_id, key, lambda left: left.old in held)]


def test_a_name_of_no_temporary_shape_is_no_leftover() -> None:
    """Only `renaming-<8 hex>-<name>` is a leftover; its old name is kept folded, its name as listed."""
    assert leftover("d", "renaming-john") is None and leftover("d", "renaming-XYZ12345-a") is None
    assert leftover("d", temporary_name("Ann", "A")) == Leftover("d", temporary_name("Ann", "A"), temporary_tag("A"), "ann")


def test_after_the_first_step_the_object_that_now_has_the_name_claims_it() -> None:
    """A moved aside, nothing else yet (destination: renaming-..-a, b, c): C, now "a" (in any case) and
    matching nothing, claims it by the name it gave up (A and B match b and c)."""
    assert claims("C", "A", held={"b", "c"}) == ["dest-a"]


def test_after_the_last_step_the_object_moved_aside_claims_it_by_its_tag() -> None:
    """C took "a" and B took "c" (destination: renaming-..-a, c, a): A, now "b" and matching nothing,
    claims it by its tag, as "a" is held by another object."""
    assert claims("A", "b", held={"a", "c"}) == ["dest-a"]


def test_no_claim_by_tag_while_the_name_it_gave_up_is_free() -> None:
    """A's tag alone does not claim it while nobody holds "a": a source object now "a" may be it."""
    assert claims("A", "b", held={"c"}) == []


def test_in_the_middle_of_a_rotation_no_object_claims_it() -> None:
    """C took "a" only (destination: renaming-..-a, b, a): B, now "c", has no claim (neither its name nor
    its tag): the leftover is not adopted by a guess."""
    assert claims("B", "c", held={"a", "b"}) == []


def test_two_leftovers_of_one_name_are_both_claims() -> None:
    """Two objects left under temporary names of "a" (two lost swaps): both are returned, so the create fails."""
    two = [left for left in (leftover("d1", temporary_name("a", "X")), leftover("d2", temporary_name("A", "Y"))) if left]
    assert [left.dest_id for left in leftover_claims(two, "Z", "a", lambda left: False)] == ["d1", "d2"]


def test_a_create_looks_first_when_a_leftover_may_be_it() -> None:
    """`may_claim`: a leftover of its name or of its tag makes a create look before it posts."""
    assert may_claim([left_by_a()], "Z", "A") and may_claim([left_by_a()], "A", "zed")
    assert not may_claim([left_by_a()], "Z", "zed")
