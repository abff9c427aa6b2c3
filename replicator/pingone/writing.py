"""Writing a PingOne environment from SCIM-shaped forms and PatchOp bodies (`PingOneWriter`): a user's
changed attributes in one PATCH (with `username` and `email`, which the document requires; when one is
cleared, a PUT of the user as PingOne holds it, our attributes replaced: `put_body`), enabled and
population through their own endpoints; a group's own attributes in a PUT (the Platform API has no group PATCH); members one call
each, with no read of the group when the PatchOp names them. A dynamic group's userFilter is sent in our
ids (`platform_group`): the source's population ids become ours by name, and a filter naming an id we
have no counterpart for is not sent (`UntranslatableFilter`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from replicator.errors import ConflictError, NotFoundError, ProtocolError, ScimError
from replicator.pingone.platform import PlatformApi
from replicator.pingone.reading import PingOneReader
from replicator.pipeline import pingone as p1
from replicator.pipeline import user_filters


class RequiredValueMissing(ScimError):
    """A write not sent: PingOne requires a value (a user's email) the form lacks; a failure of the object."""


class UntranslatableFilter(ScimError):
    """A group write not sent: its userFilter names an id this environment has no counterpart for (a
    population missing here, a group not replicated here, a user id); a failure of the object."""


def user_update(after: dict[str, Any], changed: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The method and body sending a user's changed attributes (`after`: the whole user as wanted).
    The document's PATCH body is a User (`username` and `email` required, no attribute nullable): a
    PATCH carries both beside the changes; a cleared attribute cannot be sent as null, so then the whole
    user goes as a PUT without it (PUT replaces every attribute: the writer sends `put_body`, built on the
    user as PingOne holds it)."""
    if any(value is None for value in changed.values()):
        return "PUT", after
    return "PATCH", {key: after[key] for key in ("username", "email") if key in after} | changed


# the user attributes the replicator writes (`user_to_platform`'s; population and enabled have their own endpoints)
MANAGED_USER_ATTRIBUTES = frozenset({"username", "email", "externalId", "nickname", "title", "preferredLanguage",
                                     "locale", "timezone", "type", "name", "primaryPhone", "mobilePhone", "address",
                                     "photo"})
# what the document's User marks readOnly (OpenAPI 3.0: not sent), HAL's parts, and the write-only password
NOT_SENT_BACK = frozenset({"id", "environment", "createdAt", "updatedAt", "lastSignOn", "emailVerified", "enabled",
                           "memberOfGroupIDs", "memberOfGroupNames", "_links", "_embedded", "password"})
READ_ONLY_PARTS = {"account": frozenset({"lockedAt", "secondsUntilUnlock"}), "identityProvider": frozenset({"type"})}


def put_body(live: Mapping[str, Any], after: Mapping[str, Any], cleared: Iterable[str]) -> dict[str, Any]:
    """The body of `PUT users/{id}` clearing `cleared`: the user as PingOne holds it (`live`, its GET),
    every attribute the replicator does not manage kept (custom ones, `account`, `lifecycle`, ...: PUT
    replaces the whole user, so what is left out is wiped), the managed ones as `after` has them, the
    cleared ones left out, nothing the document marks read-only, the population as it is (`{"id"}`)."""
    gone = set(cleared)
    body: dict[str, Any] = {}
    for key, value in live.items():
        if key in NOT_SENT_BACK or key in MANAGED_USER_ATTRIBUTES or key == "population" or key in gone:
            continue
        if key in READ_ONLY_PARTS and isinstance(value, Mapping):
            value = {part: v for part, v in value.items() if part not in READ_ONLY_PARTS[key]}
            if not value:
                continue
        body[key] = value
    body.update({key: value for key, value in after.items() if key in MANAGED_USER_ATTRIBUTES and key not in gone})
    population = live.get("population")
    if isinstance(population, Mapping) and isinstance(population.get("id"), str):
        body["population"] = {"id": population["id"]}
    return body


class PingOneWriter:
    """Creates and changes users, groups and memberships."""

    def __init__(self, api: PlatformApi, reader: PingOneReader) -> None:
        self.api = api
        self.reader = reader
        self.populations = reader.populations
        self.memberships = reader.memberships

    async def create_user(self, body: dict[str, Any]) -> dict[str, Any]:
        """A new user, disabled after the create when the form says so."""
        population = self.populations.id_for(p1.population_name(body))
        platform_body = p1.user_to_platform(body, population_id=population)
        if why := p1.missing_required(platform_body):
            raise RequiredValueMissing(why)
        created: dict[str, Any] = await self.api.call("POST", "users", body=platform_body)
        if (enabled := p1.enabled_body(body)) is not None and not enabled["enabled"]:
            await self.api.call("PUT", "users", created["id"], "enabled", body=enabled)
            created["enabled"] = False
        return p1.user_to_scim(created, population_names=self.populations.names())

    async def create_group(self, body: dict[str, Any]) -> dict[str, Any]:
        """A new group, then its members one by one; the answer holds the members that were added."""
        population = self.populations.id_for(p1.population_name(body))
        created = await self.api.call("POST", "groups", body=await self.platform_group(body, population))
        group_id = str(created["id"])
        self.reader.group_ids.add(group_id)
        added = []
        for member in body.get("members", []):
            try:
                await self.add_member(group_id, member)
                added.append(member)
            except (NotFoundError, ConflictError):
                continue  # left out of the answer: the writer adds it again, and records what fails
        form = p1.group_to_scim(self.reader.as_read(created), user_members=[], group_members=[],
                                population_names=self.populations.names())
        return {**form, "members": added} if added else form

    async def write_user(self, user_id: str, current: dict[str, Any], wanted: dict[str, Any]) -> None:
        """The Platform attributes that differ in one PATCH; enabled and population on their own."""
        before = p1.user_to_platform(current, population_id=None)
        after = p1.user_to_platform(wanted, population_id=None)
        changed = {key: after.get(key) for key in sorted(set(before) | set(after))
                   if key not in ("population", "enabled") and before.get(key) != after.get(key)}
        # a required value missing fails the attribute change, after enabled and population are written
        # (a user disabled while its email is cleared must still lose access)
        missing = p1.missing_required(after) if changed else None
        if changed and not missing:
            method, update = user_update(after, changed)
            if method == "PUT":  # a clear: built on what PingOne holds, so nothing we do not manage is wiped
                live = await self.api.call("GET", "users", user_id)
                if not isinstance(live, dict):
                    raise ProtocolError(f"GET users/{user_id}: {self.api.name} answered with something that is not "
                                        "a user (the PUT clearing its attributes is not sent)")
                update = put_body(live, after, [key for key, value in changed.items() if value is None])
            await self.api.call(method, "users", user_id, body=update)
        if (current.get("active") is not False) != (wanted.get("active") is not False):
            await self.api.call("PUT", "users", user_id, "enabled", body=p1.enabled_body(wanted) or {"enabled": True})
        if self.populations.replicated and p1.population_name(current) != p1.population_name(wanted):
            population = self.populations.id_for(p1.population_name(wanted))
            if population:
                await self.api.call("PUT", "users", user_id, "population", body={"id": population})
        if missing:
            raise RequiredValueMissing(missing)

    async def write_group(self, group_id: str, current: dict[str, Any], wanted: dict[str, Any]) -> None:
        """The group's own attributes (PUT), compared in our ids, then member changes."""
        before = self._in_our_ids(p1.group_to_platform(current, population_id=None))
        after = await self.platform_group(wanted, None)
        if before != after:
            population = self.populations.id_for(p1.population_name(current))
            await self.api.call("PUT", "groups", group_id, body=await self.platform_group(wanted, population))
        had = {m["value"]: m for m in current.get("members", [])}
        want = {m["value"]: m for m in wanted.get("members", [])}
        for value in sorted(want.keys() - had.keys()):
            await self.add_member(group_id, want[value])
        for value in sorted(had.keys() - want.keys()):
            await self.memberships.remove(group_id, value, is_group=had[value].get("type") == "Group")

    async def platform_group(self, form: dict[str, Any], population_id: str | None) -> dict[str, Any]:
        """The Platform body of a group (`group_to_platform`) with its userFilter in our ids: the
        source's population ids become ours (by name), the group ids (translated by the cycle) must be
        groups of ours. Raises UntranslatableFilter for the first id that is neither, and for a user id."""
        body = p1.group_to_platform(form, population_id=population_id)
        text = body.get("userFilter")
        if not isinstance(text, str) or not text:
            return body
        await self.reader.know_groups()
        ids = {user_filters.POPULATION: self.populations.filter_ids(),
               user_filters.GROUP: {gid: gid for gid in self.reader.group_ids}, user_filters.USER: {}}
        try:
            translation = user_filters.translated(text, ids)
        except user_filters.UserFilterError:
            return body  # not a filter we can read: PingOne is the judge of it
        if translation.untranslated:
            reference = translation.untranslated[0]
            names = self.populations.names_for_refusal(reference.value)
            raise UntranslatableFilter(user_filters.refusal(
                reference, side=self.api.name, source_name=names[0], wanted_name=names[1]))
        return {**body, "userFilter": translation.text}

    def _in_our_ids(self, body: dict[str, Any]) -> dict[str, Any]:
        """A body read from us (its userFilter in the source's population ids, `PingOneReader.as_read`)
        back in ours, as PingOne holds it: what a body to send is compared with (when two source
        populations map to one of ours, the filter read names one of them, and compares with either)."""
        text = body.get("userFilter")
        if not isinstance(text, str) or not text:
            return body
        try:
            translation = user_filters.translated(text, {user_filters.POPULATION: self.populations.filter_ids()})
        except user_filters.UserFilterError:
            return body
        return {**body, "userFilter": translation.text}

    async def member_operation(self, group_id: str, op: dict[str, Any]) -> bool:
        """Carry out a PatchOp operation on members: add a list, remove a list or one
        `members[value eq "x"]`; False when it is not one of those (it is applied to the object)."""
        kind, path = str(op.get("op", "")).lower(), str(op.get("path", ""))
        value = op.get("value")
        values: list[Any] = [m for m in value if isinstance(m, Mapping)] if isinstance(value, list) else []
        if path == "members" and kind == "add":
            for member in values:
                await self.add_member(group_id, member)
            return True
        if path == "members" and kind == "remove" and values:
            for member in values:
                await self.memberships.remove(group_id, str(member["value"]), is_group=self._is_group(member))
            return True
        if kind == "remove" and (named := p1.member_filter_value(path)) is not None:
            await self.memberships.remove(group_id, named, is_group=True if named in self.reader.group_ids else None)
            return True
        return False

    def _is_group(self, member: dict[str, Any]) -> bool:
        kind = member.get("type")
        return kind == "Group" if isinstance(kind, str) else str(member.get("value")) in self.reader.group_ids

    async def add_member(self, group_id: str, member: dict[str, Any]) -> None:
        await self.memberships.add(group_id, str(member["value"]), is_group=self._is_group(member))
