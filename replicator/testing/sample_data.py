"""Seeded sample directories (users with realistic attributes, groups of skewed sizes). Pure; no I/O.

Used by the demo, the tests and the benchmarks, so that all three speak of the same kind of data.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from replicator.pipeline.canonical import CORE_SCHEMAS, ENTERPRISE_USER, GROUP, USER

_GIVEN = ["Ada", "Barbara", "Chidi", "Dmitri", "Elena", "Fatima", "Grace", "Hiro", "Ingrid", "José",
          "Kwame", "Leila", "Mateo", "Nadia", "Oren", "Priya", "Quinn", "Rafael", "Sofia", "Tariq"]
_FAMILY = ["Jensen", "Okafor", "Ivanova", "Tanaka", "García", "Nguyen", "Müller", "Haddad", "Kowalski",
           "O'Brien", "Silva", "Rossi", "Dubois", "Larsen", "Cohen", "Kim", "Singh", "Mensah", "Novak", "Park"]
_DEPARTMENTS = ["Engineering", "Sales", "Finance", "Support", "Legal", "People", "Marketing"]
_TITLES = ["Engineer", "Manager", "Analyst", "Director", "Specialist", "Consultant"]


def sample_user(index: int, rng: random.Random, domain: str = "example.com") -> dict[str, Any]:
    """A user with names, emails, phones, title and the enterprise extension (no manager yet)."""
    given, family = rng.choice(_GIVEN), rng.choice(_FAMILY)
    user_name = f"{given.lower()}.{family.lower().replace(chr(39), '')}.{index}@{domain}"
    user: dict[str, Any] = {
        "schemas": [CORE_SCHEMAS[USER], ENTERPRISE_USER],
        "userName": user_name,
        "externalId": f"ext-{index:07d}",
        "name": {"givenName": given, "familyName": family, "formatted": f"{given} {family}"},
        "displayName": f"{given} {family}",
        "title": rng.choice(_TITLES),
        "active": True,
        "emails": [{"value": user_name, "type": "work", "primary": True}],
        "phoneNumbers": [{"value": f"+1-555-{rng.randrange(10**7):07d}", "type": "work"}],
        ENTERPRISE_USER: {
            "employeeNumber": str(100000 + index),
            "department": rng.choice(_DEPARTMENTS),
        },
    }
    if rng.random() < 0.3:
        user["emails"].append({"value": f"{given.lower()}{index}@home.example.net", "type": "home"})
    return user


def sample_users(count: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [sample_user(i, rng) for i in range(count)]


def manager_index(index: int) -> int | None:
    """Index of a user's manager: a tree where user i reports to user (i - 1) // 5."""
    return None if index == 0 else (index - 1) // 5


def sample_group(name: str, member_ids: Sequence[str], *, group_ids: Sequence[str] = ()) -> dict[str, Any]:
    members = [{"value": uid, "type": USER} for uid in member_ids]
    members += [{"value": gid, "type": GROUP} for gid in group_ids]
    group: dict[str, Any] = {"schemas": [CORE_SCHEMAS[GROUP]], "displayName": name}
    if members:
        group["members"] = members
    return group


def group_plan(user_count: int, group_count: int, seed: int = 7) -> list[tuple[str, list[int]]]:
    """(displayName, member user indexes) with skewed sizes: one group has everyone, one is empty."""
    rng = random.Random(seed + 1)
    plans: list[tuple[str, list[int]]] = []
    for g in range(group_count):
        if g == 0:
            members = list(range(user_count))
            name = "All Staff"
        elif g == group_count - 1 and group_count > 2:
            members, name = [], "Empty Group"
        else:
            size = min(user_count, max(1, int(user_count * rng.paretovariate(2.0) / 20)))
            members = sorted(rng.sample(range(user_count), size))
            name = f"{_DEPARTMENTS[g % len(_DEPARTMENTS)]} Team {g}"
        plans.append((name, members))
    return plans
