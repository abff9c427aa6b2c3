"""What a destination's answer to a write says of a group's members. Pure; no I/O."""

from __future__ import annotations

from typing import Any


def answered_member_values(answer: dict[str, Any] | None) -> set[str] | None:
    """The member values a server's answer lists; None when it carries no `members` list (many
    servers leave members out of their answers, which then tells nothing)."""
    members = answer.get("members") if answer is not None else None
    if not isinstance(members, list):
        return None
    return {str(member.get("value")) for member in members if isinstance(member, dict)}


def members_left_out(sent: list[dict[str, Any]], created: dict[str, Any]) -> set[str]:
    """Values of the sent members that the create's answer lists no member for."""
    held = answered_member_values(created)
    if not sent or held is None:
        return set()
    return {member["value"] for member in sent if member["value"] not in held}
