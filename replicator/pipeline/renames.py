"""Renames that need each other's names (a swap a<->b, a rotation a->b->c->a, a chain a->b->c). Pure; no I/O.

A destination keeps `userName` (a group's `displayName`, on most servers) unique, so a PATCH into a
name that another object still holds is answered 409. The cycle parks such renames and, once everything
else (removals included) is written, `plan_renames` orders them: a rename whose wanted name nobody
parked holds goes first, and each one frees a name for the next; where the renames form a cycle, one
object of it is first moved to a temporary name (`temporary_name`: recognisable by its prefix, derived
from the object, so a retry uses the same one), which frees its name for the cycle to turn. A state
lost in the middle leaves an object under such a name that no state row names: `leftover_claims` says
which new source object it is (so that it is adopted, not copied), or that it is not clear.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from replicator.errors import ScimError, ScimStatusError
from replicator.pipeline.canonical import GROUP, USER

NAME_ATTRIBUTE = {USER: "userName", GROUP: "displayName"}
TEMPORARY_PREFIX = "renaming-"  # a name we give an object for the time of a swap; never the end of one


@dataclass(frozen=True)
class Rename:
    """A parked rename: object `key` holds `current` on the destination and wants `wanted`."""

    key: str
    current: str
    wanted: str


@dataclass(frozen=True)
class RenameMove:
    """One PATCH of a rename plan: give object `key` the name `name` (a temporary one, or its wanted one)."""

    key: str
    name: str
    temporary: bool = False


def renamed_to(kind: str, operations: list[dict[str, Any]]) -> str | None:
    """The new name these PATCH operations give an object of `kind`, or None when they rename nothing."""
    attribute = NAME_ATTRIBUTE.get(kind, "").lower()
    for operation in operations:
        path, value = operation.get("path"), operation.get("value")
        if operation.get("op") in ("replace", "add") and isinstance(path, str) and path.lower() == attribute \
                and isinstance(value, str):
            return value
    return None


def name_taken(status: int, scim_type: str | None) -> bool:
    """Whether an error answer to a PATCH says a value is already in use: a 409 (RFC 7644 3.12's
    `uniqueness`), or a 400 whose scimType says so (some servers; PingOne's UNIQUENESS_VIOLATION)."""
    return status == 409 or (status == 400 and (scim_type or "").lower() in ("uniqueness", "uniqueness_violation"))


def refused_for_another_reason(refusal: ScimError) -> bool:
    """Whether this error answer to a PATCH that renames an object refuses something else than the
    name, so that the name alone may still be written: a client error (4xx) that is not "name taken",
    nor one any request would meet (404 gone, 408, 429)."""
    return isinstance(refusal, ScimStatusError) and 400 <= refusal.status < 500 \
        and refusal.status not in (404, 408, 429) and not name_taken(refusal.status, refusal.scim_type)


def temporary_name(current: str, key: str) -> str:
    """The temporary name of object `key` while it gives up `current`: the prefix, a tag derived from
    the object (two objects never share one), then the name it had (a prefix keeps an email-shaped
    userName an email)."""
    return f"{TEMPORARY_PREFIX}{temporary_tag(key)}-{current}"


def temporary_tag(key: str) -> str:
    """The tag `temporary_name` gives object `key` (its source id)."""
    return hashlib.blake2b(key.encode(), digest_size=4).hexdigest()


@dataclass(frozen=True)
class Leftover:
    """A destination object holding a temporary name: `tag` (of the source object moved aside) and `old`
    (the name it gave up, folded), as `temporary_name` wrote them."""

    dest_id: str
    name: str
    tag: str
    old: str


def leftover(dest_id: str, name: str) -> Leftover | None:
    """The `Leftover` this destination object's name makes, or None when it is no temporary name."""
    if not is_temporary_name(name):
        return None
    tag, _, old = name[len(TEMPORARY_PREFIX):].partition("-")
    return Leftover(dest_id, name, tag, old.casefold())


def leftover_claims(leftovers: list[Leftover], source_id: str, key: str,
                    old_name_held: Callable[[Leftover], bool]) -> list[Leftover]:
    """The leftovers (destination objects holding a temporary name, owned by no source object) that
    are the source object `source_id` whose match key `key` no destination object holds, after a
    state lost in the middle of a loop of renames: one that gave up `key` itself (the loop had not
    gone on: its name is the object's, as it would have matched before the loop), or one moved aside
    for this very object (its tag) whose old name another destination object holds now (the loop
    went on, so no source object can claim it by that name). More than one: ambiguous."""
    folded, tag = key.casefold(), temporary_tag(source_id)
    by_name = [left for left in leftovers if left.old == folded]
    by_tag = [left for left in leftovers if left.tag == tag and left.old != folded and old_name_held(left)]
    return by_name + by_tag


def may_claim(leftovers: list[Leftover], source_id: str, key: str) -> bool:
    """Whether a leftover might be this new object's (`leftover_claims` without the held-name check):
    its create must then look before it posts."""
    folded, tag = key.casefold(), temporary_tag(source_id)
    return any(left.old == folded or left.tag == tag for left in leftovers)


def is_temporary_name(name: str) -> bool:
    """Whether `name` has the shape `temporary_name` gives (a swap's middle step)."""
    rest = name[len(TEMPORARY_PREFIX):] if name.startswith(TEMPORARY_PREFIX) else ""
    tag, dash, _ = rest.partition("-")
    return bool(dash) and len(tag) == 8 and all(c in "0123456789abcdef" for c in tag)


def plan_renames(renames: list[Rename]) -> list[RenameMove]:
    """The order in which to write these renames so that none needs a name another of them still
    holds (names compared without case, as userName's uniqueness is): renames into a free name first,
    each freeing its old name for the one that wants it; a cycle is broken by moving one of its
    objects to its temporary name first. Every rename ends with a move to its wanted name. A wanted
    name held by an object not parked here is not this plan's to free: that rename is planned as if
    the name were free (its PATCH tells)."""
    pending = {rename.key: rename for rename in sorted(renames, key=lambda r: r.key)}
    holder = {rename.current.casefold(): rename.key for rename in pending.values()}
    wanting: dict[str, list[str]] = {}  # key -> the keys that want its current name
    blocked: dict[str, str] = {}  # key -> the key holding the name it wants
    ready: deque[str] = deque()
    for key, rename in pending.items():
        blocker = holder.get(rename.wanted.casefold())
        if blocker is None or blocker == key:
            ready.append(key)
        else:
            blocked[key] = blocker
            wanting.setdefault(blocker, []).append(key)
    moves: list[RenameMove] = []

    def free(key: str) -> None:  # `key` gave up its name: whoever wanted it may go
        for waiter in wanting.pop(key, []):
            del blocked[waiter]
            ready.append(waiter)

    while pending:
        while ready:
            key = ready.popleft()
            moves.append(RenameMove(key, pending.pop(key).wanted))
            free(key)
        if pending:
            # every rename left waits for another: a cycle; break it where the smallest key's chain loops
            seen: set[str] = set()
            key = min(pending)
            while key not in seen:
                seen.add(key)
                key = blocked[key]
            moves.append(RenameMove(key, temporary_name(pending[key].current, key), temporary=True))
            free(key)
    return moves
