"""Seeded benchmark directories: users with realistic attributes (replicator.testing.sample_data) and groups of
Zipf-skewed sizes, the first holding every user, so membership work looks like a real tenant's."""

from __future__ import annotations

import random


def bench_group_plan(users: int, groups: int, seed: int = 7) -> list[tuple[str, list[int]]]:
    """(displayName, member user indexes): group 0 has everyone, group i about users / (i+1)^1.5."""
    rng = random.Random(seed)
    plan: list[tuple[str, list[int]]] = []
    for g in range(groups):
        size = users if g == 0 else max(1, int(users / (g + 1) ** 1.5))
        members = list(range(users)) if size >= users else sorted(rng.sample(range(users), size))
        plan.append((f"Bench Group {g:05d}", members))
    return plan


def memberships(users: int, groups: int) -> int:
    return sum(len(m) for _, m in bench_group_plan(users, groups))
