"""Tests for the case-insensitive attribute lookup (replicator.scim.attributes), both of its readings."""

from __future__ import annotations

from replicator.scim.attributes import get_ci, get_first_ci, key_ci, keys_ci


def test_get_ci_prefers_the_exact_spelling() -> None:
    """get_ci reads the exact spelling first, else the first key equal ignoring case, else None."""
    assert get_ci({"username": "a", "userName": "b"}, "userName") == "b"
    assert get_ci({"USERNAME": "a", "username": "b"}, "userName") == "a"
    assert get_ci({"other": 1}, "userName") is None
    assert get_ci(["userName"], "userName") is None


def test_first_ci_readings_follow_key_order() -> None:
    """get_first_ci and key_ci take the first key in the object's order; keys_ci lists every spelling."""
    both = {"username": "a", "userName": "b", 7: "not a name"}
    assert get_first_ci(both, "userName") == "a"
    assert key_ci(both, "USERNAME") == "username"
    assert key_ci(both, "title") is None
    assert keys_ci(both, "userName") == ["username", "userName"]
    assert get_first_ci("not a mapping", "userName") is None
