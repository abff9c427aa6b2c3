"""How an in-memory server misbehaves: :class:`Faults` (what goes wrong on the wire, at random or by
script) and :class:`Quirks` (what it supports and where it departs from RFC 7644, as real servers do).

Both are plain mutable options: every field may be changed while the server runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Faults:
    """Faults the server injects; every field may be changed while it runs.

    ``seed`` is read when the Faults are given to the server (built with them, or assigned to its
    ``faults``): the same Faults give the same faults in the same order.
    """

    latency: float = 0.0
    rate_429: float = 0.0
    retry_after: str = "1"
    rate_503: float = 0.0
    rate_500: float = 0.0
    rate_reset: float = 0.0
    page_cap: int | None = None
    fail_list_page: int | None = None
    truncate_total: bool = False
    # totalResults reported at most this (a server under-stating its total)
    total_cap: int | None = None
    seed: int | None = None
    # probability that a write (POST/PUT/PATCH/DELETE) is carried out and then its answer is lost
    rate_reset_after_write: float = 0.0
    # answer these statuses (with Retry-After for 429/503) to the next requests, in order; 0 = no fault
    script: list[int] = field(default_factory=list)
    # a write whose JSON body contains one of these strings is refused with 400 invalidValue
    refuse_values: set[str] = field(default_factory=set)
    # the refusal's detail echoes the request's Authorization header (as careless servers do)
    echo_authorization: bool = False
    # at most this many requests per second (one second of burst); beyond: 429 with Retry-After
    rate_cap: float | None = None


@dataclass
class Quirks:
    """What the server supports and how it departs from the RFCs; the defaults are a well-behaved server.

    Every field may be changed while the server runs.
    """

    patch_supported: bool = True
    filter_supported: bool = True
    cursor_paging: bool = False
    max_page_size: int = 1000
    patch_returns_resource: bool = True
    create_returns_body: bool = True  # False: 201 with only a Location header
    list_omits_members: bool = False  # True: group listings leave `members` out
    bulk_max_operations: int = 0  # 0: no Bulk endpoint (RFC 7644 3.7)
    bulk_max_payload: int = 1_048_576
    # False: a quirk of some servers: `bulkId:x` in an operation's data is stored as given
    bulk_resolves_references: bool = True
    unique_group_names: bool = True  # False: two groups may share a displayName
    # True: a quirk of some servers: they list page number (startIndex-1) // count, so a page
    # starts at a multiple of count whatever startIndex asked for
    pages_by_number: bool = False
    # True: a quirk of some servers (against RFC 7644 3.5.2.3): a replace of a complex attribute
    # (`name`) replaces it whole, dropping the sub-attributes it does not give
    replace_complex_whole: bool = False
    # True: a quirk of some servers (django-scim2): a group POST stores no members and answers
    # `members: []`; members come only by PATCH (RFC 7644 3.3 lets a server ignore POSTed content)
    create_ignores_members: bool = False
    # True: a quirk of some servers (SCIMMY): `userName eq "x"` compares case-exactly, though
    # userName is caseExact=false (RFC 7643 4.1.1, RFC 7644 3.4.2.2); uniqueness still ignores case
    case_exact_filters: bool = False
    # a quirk of some servers (django-scim2): a PATCH with an operation whose path starts with a key
    # of this (`displayName`, `members[`) is answered its (status, scimType), say (501, None) or
    # (400, "invalidPath"), though PATCH is advertised
    patch_refusals: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    put_ignores_members: bool = False  # True: a group PUT keeps the members it had (django-scim2)
    # a quirk of some servers (PingOne): of these multi-valued attributes (`emails`) a POST, PUT or PATCH
    # (not in Bulk) keeps only the first value sent
    keeps_first_value_of: set[str] = field(default_factory=set)
    # a quirk of some servers: these attributes (`nickName`, an extension's URN; `emails.type`: that
    # sub-attribute of each value) are never stored (in Bulk neither), and a write carrying them still
    # succeeds (RFC 7644 3.3 lets a server ignore what it does not support)
    drops_attributes: set[str] = field(default_factory=set)
    # True: a quirk of some servers: a group write with a group among its members is refused (400
    # `members.N.type: Input should be 'User'`)
    refuses_group_members: bool = False
    # a quirk of some servers: a group write (POST, PUT, PATCH) carrying more members than this is
    # refused with a 400 naming the limit; 0: no limit
    max_members_per_request: int = 0
    # a quirk of some servers: a group create's answer names its members by "userName" (users'
    # userNames) or "upper" (ids upper-cased), without `$ref`; what it stores is by id
    create_answers_members_by: str | None = None
    # True: a quirk of some servers: a group write carrying a member that names no stored user or
    # group is refused with a 400 "member '<value>' does not exist"
    refuses_unknown_members: bool = False
    # True: a quirk of some servers: users and groups are numbered apart ("1", "2", ... per kind) and a
    # group member's `type` is ignored: a member whose value is a user's id is stored as that user
    # (answered `type: User`, `$ref .../Users/<id>`), whatever type it was sent with
    ignores_member_type: bool = False
    # 400: a quirk of some servers: a PATCH into a userName/displayName another object holds is answered
    # 400 scimType `uniqueness` instead of RFC 7644's 409
    patch_uniqueness_status: int = 409
