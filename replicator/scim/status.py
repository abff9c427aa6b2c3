"""HTTP answers and aiohttp failures, translated once into the error tree of `replicator.errors`.

A non-2xx answer becomes the ScimStatusError subclass for its status (`status_error_class`), keeping the
server's words (scimType, detail: redacted, cut short) and its Retry-After. An aiohttp exception becomes
exactly one TransportError kind, saying whether the request can have reached the server (`sent`). This
is the only module outside the client that knows aiohttp's exceptions.
"""

from __future__ import annotations

import msgspec
from yarl import URL

from replicator.errors import ScimStatusError, status_error_class
from replicator.scim.auth import redact
from replicator.scim.retry import parse_retry_after
from replicator.scim.wire import any_decoder


def status_overloads(status: int | None) -> bool:
    """Statuses that mean 'send less': the concurrency limit is cut on them."""
    return status in (429, 503)


def tls_reason(exc: Exception) -> str:
    """The certificate problem in a few words (no URL, no headers)."""
    reason = getattr(exc, "certificate_error", None) or getattr(exc, "os_error", None) or exc
    return f"{type(exc).__name__}: {str(reason)[:200]}"


def error_from_response(method: str, url: URL, status: int, body: bytes, retry_after: str | None,
                        secrets: list[str]) -> ScimStatusError:
    scim_type = detail = None
    try:
        decoded = any_decoder.decode(body) if body else None
    except msgspec.DecodeError:
        decoded = None
    if isinstance(decoded, dict):
        scim_type = redact(decoded["scimType"], secrets)[:100] if isinstance(decoded.get("scimType"), str) else None
        raw_detail = decoded.get("detail")
        # a server may echo what it was sent (the Authorization header included)
        detail = redact(str(raw_detail), secrets)[:500] if raw_detail is not None else None
    words = " ".join(w for w in (scim_type, detail) if w)
    message = f"{method} {url.path} answered {status}" + (f": {words}" if words else "")
    cls = status_error_class(status)
    return cls(message, status=status, scim_type=scim_type, detail=detail, retry_after=parse_retry_after(retry_after))
