"""What the PingOne emulator does where PingOne's documents are silent, and the faults it injects:
one options object, :class:`PingOneSwitches`, whose every field may be changed while it runs.

The defaults are the cautious reading of the documents (see the PingOne notes of issue 15): SCIM
``startIndex`` ignored, no SCIM ``/Groups``, member filters DIRECT only, usernames unique regardless
of case, no eventual-consistency 404s, no rate cap (when set: per environment), no 503s.
"""

from __future__ import annotations

from dataclasses import dataclass

USER_PAGE_CAP = 200  # doc: users come at most 200 a page, whatever `limit` asks
DEFAULT_LIMIT = 100  # a Platform list without `limit` (guess)
MAX_LIMIT = 1000  # spec: limit 1..1000
SCIM_MAX_RESULTS = 200  # doc: ServiceProviderConfig filter.maxResults
MAX_NESTED_GROUPS = 250  # doc: at most 250 groups nested in one group
TOKEN_LIFETIME = 3600  # doc: expires_in of a worker app's token


@dataclass
class PingOneSwitches:
    """The emulator's choices where the documents say nothing, and its injected faults."""

    # SCIM: True: `startIndex` pages through a list; False: it is ignored (every page starts at 1)
    scim_start_index_advances: bool = False
    # SCIM: True: `/Groups` is served (as when PingOne provisions into PingOne); False: 404
    scim_groups: bool = False
    # Platform: True: `users?filter=memberOfGroups[id eq "g"]` also returns INDIRECT (nested) members
    member_filter_includes_indirect: bool = False
    # usernames unique regardless of case (and `username eq` compares so); False: case-exact
    username_case_insensitive: bool = True
    # after a create, the next N requests naming the new user or group (by id in the path) answer 404
    not_found_after_create: int = 0
    # at most this many requests per second (one second of burst); beyond: 429 REQUEST_LIMITED with
    # `Retry-After` in seconds
    rate_cap: float | None = None
    # True: the cap counts each environment on its own (doc: an IP's share is per environment);
    # False: all environments together
    rate_cap_per_environment: bool = True
    # the next N requests answer 503 with an HTTP-date `Retry-After` this many seconds ahead
    unavailable_next: int = 0
    unavailable_retry_after: int = 2
