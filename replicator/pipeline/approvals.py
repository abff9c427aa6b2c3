"""What an operator's approval of held removals (`scim-replicator approve`) lets through, pure: a guard's
limits for the one cycle that takes it (`approved_policy`), what an approval covers when the operator
names no number (`held_by`: what the last run held), and its reach in words (`approval_reach`). No I/O.

An approval is the bounded, one-cycle form of `--allow-mass-delete` and `--allow-member-removals` for a
daemon that runs on: removals of a kind that the guard on objects would hold go through when they are
at most N, and a group's member removals that the membership guard would hold when they are at most M;
more stay held (the approval is all or nothing for each batch), and what the guards let through anyway
still goes. Each guard has its own number (0: that guard is not raised). It does not lift what no
number measures: a source read that returned no object while objects are tracked, or a scope that
matches nothing; those still need the flags.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from replicator.config import SyncConfig

DEFAULT_STANDS_MINUTES = 60  # how long an approval stands for the next cycle unless `--expires-in` says


class ApprovedSync(SyncConfig, kw_only=True, frozen=True):
    """The sync settings of a cycle that took an approval, for one guard: removals it would hold for
    their number or share (`sync.max_delete_count`, `sync.max_delete_percent`) go through when they are
    at most `approved` (pipeline/removals asks `approved_removals`); more stay held, as do removals it
    would hold for an empty source read."""

    approved: int = 0


def approved_policy(policy: SyncConfig, up_to: int) -> SyncConfig:
    """A guard's settings for a cycle that took an approval of `up_to` removals (0: that guard is not
    raised): the configured ones, and up to that many held removals let through."""
    if not up_to:
        return policy
    return ApprovedSync(**{**msgspec.structs.asdict(policy), "approved": up_to})


def approved_removals(policy: SyncConfig) -> int:
    """How many removals an approval lets through under these settings (0: none was taken)."""
    return policy.approved if isinstance(policy, ApprovedSync) else 0


def held_by(counts: Mapping[str, Any]) -> tuple[int, int]:
    """What an approval must cover for a cycle to let through what a run with these counts held: (the
    removals of objects, the member removals), each its guard's."""
    return int(counts.get("removals_held") or 0), int(counts.get("member_removals_held") or 0)


def approval_reach(up_to: int, members_up_to: int) -> str:
    """What an approval lets through, in words."""
    parts = [f"up to {up_to} removals of users or of groups" if up_to else "",
             f"up to {members_up_to} member removals of a group" if members_up_to else ""]
    return " and ".join(part for part in parts if part)
