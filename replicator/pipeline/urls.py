"""URLs fit to show and to name a server by: scheme, host, port and path, never a user, password, query or
fragment (a configured URL may carry credentials). Used by messages (scim.auth) and by the state's names
for a destination (what it was learned to lose, the limits it enforces)."""

from __future__ import annotations

from yarl import URL


def shown_url(url: URL) -> str:
    """A URL fit for a message: scheme, host, port and path; no user, password, query or fragment."""
    return str(url.with_user(None).with_query(None).with_fragment(None))[:300]


def destination_key(url: str) -> str:
    """How a destination is named in the state and in `status`: its shown URL, without a trailing /."""
    return shown_url(URL(url)).rstrip("/")
