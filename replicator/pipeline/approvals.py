"""What an operator's approval of held removals (`scim-replicator approve`) lets through, pure: the
guards' limits for the one cycle that takes it (`approved_policy`), how many removals an approval covers
when the operator names no number (`held_by`: what the last run held). No I/O; the cycle's note of it is
the runner's, what `approve` and `status` say of it report's (`approval_words`).

An approval is the bounded, one-cycle form of `--allow-mass-delete` and `--allow-member-removals` for a
daemon that runs on: up to N removals of a kind (the guard on objects) and up to N member removals of a
group (the membership guard) go through, whatever share of the tracked objects or of the group's
members they are. It does not lift what no number measures: a source read that returned no object while
objects are tracked, or a scope that matches nothing; those still need the flags.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from replicator.config import SyncConfig

DEFAULT_STANDS_MINUTES = 60  # how long an approval stands for the next cycle unless `--expires-in` says


def approved_policy(policy: SyncConfig, up_to: int | None) -> SyncConfig:
    """The guards' settings for a cycle that took an approval of `up_to` removals (None: no approval,
    as configured): at most that many removals, of any share."""
    if up_to is None:
        return policy
    return msgspec.structs.replace(policy, max_delete_count=max(policy.max_delete_count, up_to), max_delete_percent=100.0)


def held_by(counts: Mapping[str, Any]) -> int:
    """How many removals an approval must cover for a cycle to let through what a run with these
    counts held (of a kind, or of one group's members: the larger of the two totals covers either);
    0 when it held none."""
    return max(int(counts.get("removals_held") or 0), int(counts.get("member_removals_held") or 0))
