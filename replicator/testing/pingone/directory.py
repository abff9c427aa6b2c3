"""One environment's populations, users and groups, and the rules PingOne documents for them:
``username`` and ``email`` required (spec), usernames unique per environment (case per
:attr:`PingOneSwitches.username_case_insensitive`), every user in exactly one population (the default
one unless told), group names unique per environment-wide scope or per population, a group's
population fixed at creation. Stored objects are Platform-shaped dicts without ``_links``.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable
from typing import Any

from replicator.testing.pingone.errors import PlatformProblem, conflict, invalid_data, not_found

READ_ONLY_USER = ("id", "environment", "createdAt", "updatedAt", "enabled", "_links", "memberOfGroupIDs",
                  "memberOfGroupNames", "lastSignOn", "emailVerified")
READ_ONLY_GROUP = ("id", "environment", "displayName", "directMemberCounts", "totalMemberCounts", "_links")


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Directory:
    """Populations, users and groups of one environment, with PingOne's create/update rules."""

    def __init__(self, environment_id: str, folds_case: Callable[[], bool]) -> None:
        self.environment_id = environment_id
        self._folds_case = folds_case
        self.populations: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.add_population({"name": "Default"}, default=True)

    def add_population(self, body: dict[str, Any], default: bool = False) -> dict[str, Any]:
        """Create a population (name required, unique); ``default`` makes it the default one."""
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise invalid_data("name", "name is required", "REQUIRED_VALUE")
        if any(p["name"].casefold() == name.casefold() for p in self.populations.values()):
            raise conflict("name", f"a population named {name!r} exists")
        if default:
            for population in self.populations.values():
                population["default"] = False
        stamp = now()
        population = {**{k: v for k, v in body.items() if k not in ("id", "_links", "userCount")},
                      "id": str(uuid.uuid4()), "environment": {"id": self.environment_id},
                      "default": default, "createdAt": stamp, "updatedAt": stamp}
        self.populations[population["id"]] = population
        return population

    @property
    def default_population_id(self) -> str:
        return next(pid for pid, population in self.populations.items() if population["default"])

    def population(self, population_id: str) -> dict[str, Any]:
        if population_id not in self.populations:
            raise not_found("population")
        return self.populations[population_id]

    def user(self, user_id: str) -> dict[str, Any]:
        if user_id not in self.users:
            raise not_found("user")
        return self.users[user_id]

    def group(self, group_id: str) -> dict[str, Any]:
        if group_id not in self.groups:
            raise not_found("group")
        return self.groups[group_id]

    def create_user(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST users: required username and email, a population that exists (default: the default)."""
        user = {k: v for k, v in body.items() if k not in READ_ONLY_USER and k != "password"}
        user.setdefault("population", {"id": self.default_population_id})
        self._check_user(user, None)
        stamp = now()
        user.update(id=str(uuid.uuid4()), environment={"id": self.environment_id}, enabled=True,
                    createdAt=stamp, updatedAt=stamp)
        self.users[user["id"]] = user
        return user

    def update_user(self, user_id: str, body: dict[str, Any], replace: bool) -> dict[str, Any]:
        """PUT (``replace``: every attribute not given is cleared) or PATCH (only those given)."""
        old = self.user(user_id)
        given = {k: v for k, v in body.items() if k not in READ_ONLY_USER and k not in ("password", "population")}
        kept = {k: old[k] for k in ("id", "environment", "createdAt", "enabled", "population")}
        user = {**(kept if replace else old), **given}
        self._check_user(user, user_id)
        user["updatedAt"] = now()
        self.users[user_id] = user
        return user

    def create_group(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST groups: a name unique in its scope; an optional population (fixed from now on)."""
        group = {k: v for k, v in body.items() if k not in READ_ONLY_GROUP and k not in ("sourceId", "sourceType")}
        if "population" in group:
            self.population(_object_id(group["population"], "population"))
        self._check_group(group, None)
        group.update(id=str(uuid.uuid4()), environment={"id": self.environment_id})
        self.groups[group["id"]] = group
        return group

    def replace_group(self, group_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT groups/{id}: every writable attribute replaced; the population may not change."""
        old = self.group(group_id)
        group = {k: v for k, v in body.items() if k not in READ_ONLY_GROUP and k not in ("sourceId", "sourceType")}
        if group.get("population", old.get("population")) != old.get("population"):
            raise invalid_data("population", "a group's population cannot be changed")
        group.update({k: old[k] for k in ("id", "environment", "population", "sourceId", "sourceType") if k in old})
        self._check_group(group, group_id)
        self.groups[group_id] = group
        return group

    def _check_user(self, user: dict[str, Any], user_id: str | None) -> None:
        for attribute in ("username", "email"):
            value = user.get(attribute)
            if not isinstance(value, str) or not value:
                raise invalid_data(attribute, f"{attribute} is required", "REQUIRED_VALUE")
        if len(user["username"]) > 128:
            raise invalid_data("username", "username must be 1-128 characters", "SIZE_LIMIT_EXCEEDED")
        self.population(_object_id(user["population"], "population"))
        fold = self._folds_case()
        wanted = user["username"].casefold() if fold else user["username"]
        for other_id, other in self.users.items():
            name = other["username"].casefold() if fold else other["username"]
            if other_id != user_id and name == wanted:
                raise conflict("username", f"username {user['username']!r} is taken")

    def _check_group(self, group: dict[str, Any], group_id: str | None) -> None:
        name = group.get("name")
        if not isinstance(name, str) or not name:
            raise invalid_data("name", "name is required", "REQUIRED_VALUE")
        scope = group.get("population")
        for other_id, other in self.groups.items():
            if other_id != group_id and other.get("population") == scope and other["name"] == name:
                raise conflict("name", f"a group named {name!r} exists in this scope")


def _object_id(reference: object, target: str) -> str:
    """The id of ``{"id": ...}``, or a 400 naming ``target``."""
    if isinstance(reference, dict) and isinstance(reference.get("id"), str):
        return str(reference["id"])
    raise invalid_data(target, f'{target} must be {{"id": "<{target} id>"}}')


__all__ = ["Directory", "PlatformProblem", "now"]
