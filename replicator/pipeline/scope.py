"""Provisioning scope: which source users and groups replicate, and why one does not. Pure; no I/O.

Users are in scope when they match `scope.user_filter` (a SCIM filter, evaluated here with the same
semantics as a server would) AND, when `scope.user_groups` names source groups, are members of one
of them (directly, or through nested groups when `scope.nested`). Groups are in scope when their
displayName is listed in `scope.group_names` (if any) AND they match `scope.group_filter` (if any).
Both settings name groups case-insensitively, folded as SCIM filters fold strings (`fold_case`: NFC, then
`str.casefold`), as RFC 7643 section 8.7.1 makes a Group's displayName caseExact false; messages keep the
spelling configured.
An object read from the source but out of scope is treated like one gone from the source: the
configured remove action applies, under the same mass-delete guard; the reason is kept for reports.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from replicator.errors import ConfigError
from replicator.pipeline.canonical import GROUP, USER
from replicator.pipeline.filter_eval import FilterError, compile_filter, fold_case

Predicate = Callable[[Mapping[str, Any]], bool]


@dataclass
class Scope:
    """Compiled scope rules, plus the user ids the scoping groups hold (filled in by the cycle).

    `user_groups` and `group_names` hold the names as configured, one spelling per name (`make_scope`
    drops a name that folds to an earlier one); a name matches every source group whose displayName
    folds to it, so two source groups "Sales" and "SALES" are both named by "sales".
    """

    user_filter_text: str | None = None
    user_filter: Predicate | None = None
    user_groups: tuple[str, ...] = ()
    nested: bool = True
    group_names: frozenset[str] = frozenset()
    group_filter_text: str | None = None
    group_filter: Predicate | None = None
    group_members: set[str] | None = None  # user ids in the scoping groups; None until computed
    _listed: dict[str, str] = field(init=False, repr=False, compare=False)  # folded -> group_names entry

    def __post_init__(self) -> None:
        self._listed = {fold_case(name): name for name in self.group_names}

    @property
    def configured(self) -> bool:
        return bool(self.user_filter or self.user_groups or self.group_names or self.group_filter)

    @property
    def needs_groups_first(self) -> bool:
        return bool(self.user_groups)

    def exclusion(self, kind: str, resource: Mapping[str, Any]) -> str | None:
        """None when the object is in scope, else the rule that keeps it out."""
        if kind == USER:
            if self.user_filter is not None and not self.user_filter(resource):
                return f"does not match scope.user_filter ({self.user_filter_text})"
            if self.user_groups and resource.get("id") not in (self.group_members or set()):
                return f"not a member of {_names(self.user_groups)}"
            return None
        if self.group_names and self.listed_group_name(resource.get("displayName")) is None:
            return "not listed in scope.group_names"
        if self.group_filter is not None and not self.group_filter(resource):
            return f"does not match scope.group_filter ({self.group_filter_text})"
        return None

    def listed_group_name(self, display_name: object) -> str | None:
        """The `scope.group_names` entry, as configured, naming a group of this displayName (compared
        case-insensitively), or None."""
        return self._listed.get(fold_case(display_name)) if isinstance(display_name, str) else None

    def inclusion(self, kind: str) -> str:
        """Why an object of this kind is in scope (for dry-run reports)."""
        reasons = []
        if kind == USER and self.user_filter_text:
            reasons.append(f"matches scope.user_filter ({self.user_filter_text})")
        if kind == USER and self.user_groups:
            reasons.append(f"member of {_names(self.user_groups)}")
        if kind == GROUP and self.group_names:
            reasons.append("listed in scope.group_names")
        if kind == GROUP and self.group_filter_text:
            reasons.append(f"matches scope.group_filter ({self.group_filter_text})")
        return "in scope: " + " and ".join(reasons) if reasons else ""


def make_scope(
    *,
    user_filter: str | None = None,
    user_groups: Iterable[str] = (),
    nested: bool = True,
    group_names: Iterable[str] = (),
    group_filter: str | None = None,
) -> Scope:
    """Compile the rules; a filter that does not parse fails with the field's name."""
    return Scope(
        user_filter_text=user_filter,
        user_filter=_compile("scope.user_filter", user_filter),
        user_groups=distinct_names(user_groups),
        nested=nested,
        group_names=frozenset(distinct_names(group_names)),
        group_filter_text=group_filter,
        group_filter=_compile("scope.group_filter", group_filter),
    )


def _compile(field_name: str, text: str | None) -> Predicate | None:
    if not text:
        return None
    try:
        return compile_filter(text)
    except FilterError as exc:
        raise ConfigError(f"{field_name}: {exc}") from None


def distinct_names(names: Iterable[str]) -> tuple[str, ...]:
    """The group names, in order, without one that folds (`fold_case`) to an earlier one: a group
    name configured twice in two cases (or two Unicode forms) is one name, spelled as it was first."""
    first: dict[str, str] = {}
    for name in names:
        first.setdefault(fold_case(name), name)
    return tuple(first.values())


def _names(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names)


def group_member_users(
    groups: Mapping[str, tuple[str | None, list[dict[str, Any]]]], names: Iterable[str], *, nested: bool
) -> tuple[set[str], list[str]]:
    """User ids that are members of the groups named (by displayName), and the names not found.

    `groups`: source group id -> (displayName, None for a group without one, members). Names match
    displayNames case-insensitively (a group without a displayName matches none),
    and a name matches every group so named: with source groups "Sales" and "SALES", "sales" takes the
    members of both. Names not found are returned as given, each once. With `nested`, members of
    member groups count too (cycles in nesting are harmless).
    """
    wanted = {fold_case(name): name for name in distinct_names(names)}
    folded = {gid: fold_case(name) for gid, (name, _) in groups.items() if name is not None}
    start = [gid for gid, name in folded.items() if name in wanted]
    found = {folded[gid] for gid in start}
    users: set[str] = set()
    seen_groups: set[str] = set()
    queue = list(start)
    while queue:
        gid = queue.pop()
        if gid in seen_groups:
            continue
        seen_groups.add(gid)
        for member in groups[gid][1]:
            value = member.get("value")
            if not isinstance(value, str):
                continue
            if value in groups and member.get("type") != USER:
                if nested:
                    queue.append(value)
            else:
                users.add(value)
    return users, sorted(name for folded, name in wanted.items() if folded not in found)


def missing_names_problem(setting: str, missing: Iterable[str], known: Collection[str]) -> str | None:
    """The error for scope group names the source does not have (a typo must not take everyone out of
    scope), with the closest names it does have (compared case-insensitively); None when none is missing."""
    known_by_fold = {fold_case(name): name for name in known}
    parts = []
    for name in missing:
        close = difflib.get_close_matches(fold_case(name), list(known_by_fold), n=1, cutoff=0.6)
        parts.append(repr(name) + (f" (did you mean {known_by_fold[close[0]]!r}?)" if close else ""))
    if not parts:
        return None
    return f"{setting} names groups the source does not have: {', '.join(parts)}"


def empty_scope_problem(kind: str, scope: Scope, *, read: int, in_scope: int, tracked: int) -> str | None:
    """The error for a scope that keeps every object of this kind out while we track some of them
    (a filter that matches nothing would deprovision them all), naming the settings; else None."""
    if in_scope or not tracked or not read:
        return None  # (a source that returned nothing is the removal guard's case)
    if kind == USER:
        settings = [name for name, used in (("scope.user_filter", scope.user_filter_text),
                                            ("scope.user_groups", scope.user_groups)) if used]
    else:
        settings = [name for name, used in (("scope.group_names", scope.group_names),
                                            ("scope.group_filter", scope.group_filter_text)) if used]
    if not settings:
        return None
    verb = "matches" if len(settings) == 1 else "match"
    return (f"{' and '.join(settings)} {verb} none of the {read} {kind}s read from the source while {tracked} "
            "are replicated")
