"""One emulated PingOne environment: its worker-app credentials and tokens, its directory and
memberships, its request log, and the direct Python API tests seed and inspect it with.

Seeding goes through the same rules as HTTP (uniqueness, populations, nesting limits) and raises
:class:`~replicator.testing.pingone.errors.PlatformProblem` where PingOne would refuse.
"""

from __future__ import annotations

import collections
import secrets
import time
from collections.abc import Callable
from typing import Any

from replicator.testing.pingone.directory import Directory
from replicator.testing.pingone.memberships import Memberships, MembershipType
from replicator.testing.pingone.switches import TOKEN_LIFETIME


class Environment:
    """An environment: ``id``, ``client_id``/``client_secret``, ``directory``, ``memberships``,
    ``request_log`` of (method, path, status), and seeding helpers taking names or ids."""

    def __init__(self, environment_id: str, client_id: str, client_secret: str,
                 folds_case: Callable[[], bool]) -> None:
        self.id = environment_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.directory = Directory(environment_id, folds_case)
        self.memberships = Memberships(self.directory)
        self.request_log: list[tuple[str, str, int]] = []
        self.request_times: list[float] = []  # time.monotonic() of each request_log entry
        self.tokens: dict[str, float] = {}  # access token -> time.monotonic() it expires at
        self.hidden: dict[str, int] = {}  # id of a just-created object -> 404s still to answer for it

    def issue_token(self) -> str:
        token = secrets.token_urlsafe(24)
        self.tokens[token] = time.monotonic() + TOKEN_LIFETIME
        return token

    def accepts(self, token: str) -> bool:
        """Whether ``token`` was issued by this environment and has not expired."""
        return self.tokens.get(token, 0.0) > time.monotonic()

    def expire_tokens(self) -> None:
        """Every token issued so far is expired from now on (as after ``expires_in``)."""
        self.tokens = dict.fromkeys(self.tokens, 0.0)

    def counts(self) -> collections.Counter[str]:
        """Requests to this environment so far, by HTTP method."""
        return collections.Counter(method for method, _, _ in self.request_log)

    def add_population(self, name: str, **attributes: Any) -> dict[str, Any]:
        """Create a population; return it (its ``id`` is what users and groups refer to)."""
        return self.directory.add_population({"name": name, **attributes})

    def population_id(self, name: str | None) -> str:
        """The id of the population named ``name`` (None: the default population)."""
        if name is None:
            return self.directory.default_population_id
        return next(pid for pid, p in self.directory.populations.items() if p["name"] == name)

    def add_user(self, username: str, *, email: str | None = None, population: str | None = None,
                 **attributes: Any) -> dict[str, Any]:
        """Create a user (email default ``<username>@example.com``; population by name, default the
        environment's default); return the stored Platform user."""
        body = {"username": username, "email": email or f"{username}@example.com", **attributes,
                "population": {"id": self.population_id(population)}}
        return self.directory.create_user(body)

    def add_group(self, name: str, *, population: str | None = None, user_filter: str | None = None,
                  source_type: str | None = None, source_id: str | None = None, **attributes: Any) -> dict[str, Any]:
        """Create a group: environment-wide unless ``population`` (a name); dynamic with
        ``user_filter``; external with ``source_type`` ("IDP"/"GATEWAY") and ``source_id``."""
        body: dict[str, Any] = {"name": name, **attributes}
        if population is not None:
            body["population"] = {"id": self.population_id(population)}
        if user_filter is not None:
            body["userFilter"] = user_filter
        group = self.directory.create_group(body)
        if source_type is not None:
            group.update(sourceType=source_type, sourceId=source_id or "")
        return group

    def add_member(self, group_id: str, user_id: str) -> None:
        """Put a user into a static group (as POST users/{user}/memberOfGroups)."""
        self.memberships.add_member(user_id, group_id)

    def nest(self, group_id: str, parent_id: str) -> None:
        """Put ``group_id`` inside ``parent_id`` (as POST groups/{group}/memberOfGroups)."""
        self.memberships.nest(group_id, parent_id)

    def member_ids(self, group_id: str, indirect: bool = False) -> set[str]:
        """Ids of the group's DIRECT members (with ``indirect``: also those through nesting)."""
        return self.memberships.member_ids(group_id, indirect)

    def groups_of(self, user_id: str) -> dict[str, MembershipType]:
        """The user's groups by id, each DIRECT or INDIRECT."""
        return self.memberships.groups_of(user_id)

    def sizes(self) -> dict[str, int]:
        """How many populations, users, groups, static memberships and nestings are stored."""
        return {"populations": len(self.directory.populations), "users": len(self.directory.users),
                "groups": len(self.directory.groups),
                "memberships": sum(len(g) for g in self.memberships.static.values()),
                "nestings": sum(len(p) for p in self.memberships.parents.values())}
