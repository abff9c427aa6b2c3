"""Which way one PingOne environment is read this cycle (`ReadPaths`), chosen from what it answers.

PingOne documents no SCIM `/Groups` (a newer tutorial shows one when PingOne provisions into PingOne)
and does not document SCIM paging by `startIndex`. So each cycle `probe_paths` asks, cheaply (three
requests of one resource each): does `/Groups` answer as a SCIM list, and does a second page of
`/Users` (startIndex 2) really bring another user than the first? `choose_paths` (pure) then decides:
users through SCIM only when its paging advances, group members through SCIM `/Groups` only when it
is there and its paging advances; the Platform API (cursor paging, complete by its last `next` link)
otherwise. The choice is said in the cycle's notes (`ReadPaths.words`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from yarl import URL

from replicator.errors import ReplicatorError
from replicator.scim.transport import HttpTransport
from replicator.scim.urns import LIST_RESPONSE
from replicator.scim.wire import decode_json


@dataclass(frozen=True)
class ReadPaths:
    """How users and group members are read; `scim_groups` / `scim_paging`: what the probe found."""

    users_by_scim: bool = False
    groups_by_scim: bool = False
    scim_groups: bool = False
    scim_paging: bool = False

    def words(self) -> str:
        users = ("users through SCIM /Users (startIndex paging advances)" if self.users_by_scim else
                 "users through the Platform API (cursor paging" + (")" if self.scim_paging else
                                                                      "; SCIM startIndex paging does not advance)"))
        if self.groups_by_scim:
            groups = "group members and nesting through SCIM /Groups"
        else:
            why = "no SCIM /Groups" if not self.scim_groups else "SCIM /Groups cannot page"
            groups = f"groups, members and nesting through the Platform API ({why})"
        return f"{users}; {groups}"


def scim_list(answer: Any) -> list[dict[str, Any]] | None:
    """The resources of a SCIM ListResponse (RFC 7644 3.4.2), or None when the answer is not one."""
    if not isinstance(answer, dict) or LIST_RESPONSE not in (answer.get("schemas") or []):
        return None
    resources = answer.get("Resources", [])
    return [r for r in resources if isinstance(r, dict)] if isinstance(resources, list) else None


def page_advanced(first: Any, second: Any) -> bool:
    """Whether `/Users?startIndex=2&count=1` brought another user than `startIndex=1&count=1`: both
    SCIM lists of one resource with an id, different ids, and a total of at least two."""
    one, two = scim_list(first), scim_list(second)
    if not one or not two or len(one) != 1 or len(two) != 1:
        return False
    ids = one[0].get("id"), two[0].get("id")
    total = first.get("totalResults")
    return all(isinstance(i, str) and i for i in ids) and ids[0] != ids[1] and isinstance(total, int) and total >= 2


def choose_paths(*, scim_groups: bool, scim_paging: bool) -> ReadPaths:
    """SCIM only where it can be read whole: its paging must advance (lists stop at 200)."""
    return ReadPaths(users_by_scim=scim_paging, groups_by_scim=scim_groups and scim_paging,
                     scim_groups=scim_groups, scim_paging=scim_paging)


async def probe_paths(transport: HttpTransport, scim_base: URL) -> ReadPaths:
    """Ask the SCIM API what it offers (any failure: it does not offer it)."""

    async def listing(kind: str, params: dict[str, str]) -> Any:
        try:
            reply = await transport.request("GET", scim_base / kind, params=params, retry_unconnected=False)
            return decode_json(reply.body, f"GET {kind}")
        except ReplicatorError:
            return None

    groups = scim_list(await listing("Groups", {"count": "1"})) is not None
    first = await listing("Users", {"startIndex": "1", "count": "1"})
    second = await listing("Users", {"startIndex": "2", "count": "1"}) if scim_list(first) else None
    return choose_paths(scim_groups=groups, scim_paging=page_advanced(first, second))
