"""What an operator's approval of held removals (`scim-replicator approve`) lets through, pure: a guard's
limits for the one cycle that takes it (`approved_policy`), what an approval covers when the operator
names no number (`held_by`: what the last run held), and its reach in words (`approval_reach`). No I/O.

An approval is the bounded, one-cycle form of `--allow-mass-delete` and `--allow-member-removals` for a
daemon that runs on: up to N removals of a kind (the guard on objects) and up to M member removals of a
group (the membership guard) go through, whatever share of the tracked objects or of the group's
members they are; each guard has its own number (0: that guard is not raised). It does not lift what no
number measures: a source read that returned no object while objects are tracked, or a scope that
matches nothing; those still need the flags.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from replicator.config import SyncConfig

DEFAULT_STANDS_MINUTES = 60  # how long an approval stands for the next cycle unless `--expires-in` says


def approved_policy(policy: SyncConfig, up_to: int) -> SyncConfig:
    """A guard's settings for a cycle that took an approval of `up_to` removals (0: that guard is not
    raised): at most that many, of any share; a configured limit above it stays."""
    if not up_to:
        return policy
    return msgspec.structs.replace(policy, max_delete_count=max(policy.max_delete_count, up_to), max_delete_percent=100.0)


def held_by(counts: Mapping[str, Any]) -> tuple[int, int]:
    """What an approval must cover for a cycle to let through what a run with these counts held: (the
    removals of objects, the member removals), each its guard's."""
    return int(counts.get("removals_held") or 0), int(counts.get("member_removals_held") or 0)


def approval_reach(up_to: int, members_up_to: int) -> str:
    """What an approval lets through, in words."""
    parts = [f"up to {up_to} removals of users or of groups" if up_to else "",
             f"up to {members_up_to} member removals of a group" if members_up_to else ""]
    return " and ".join(part for part in parts if part)
