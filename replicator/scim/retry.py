"""When a failed SCIM call is worth another try, and after how long. Pure; no I/O.

`retry_verdict` decides (and may name the delay the server asked for); `RetryPolicy` bounds the retry
layer; `parse_retry_after` reads the server's Retry-After header.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass

from replicator.errors import ScimStatusError, TransportError


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of the retry layer: attempts and total seconds per call, backoff, longest pause."""

    attempts: int = 8
    timeout: float = 300.0
    wait_initial: float = 0.2
    wait_max: float = 30.0
    max_pause: float = 300.0


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def retry_verdict(exc: BaseException, *, idempotent: bool) -> bool | float:
    """Whether a failed call is tried again: False (no), True (after the usual back-off), or the seconds
    the server asked us to wait (Retry-After). The shape of stamina's `on` hook.

    Retried: a retryable status (429, 5xx but 501) and a retryable transport error (not TLS). A call
    that is not idempotent (POST) only when the server surely did not act on it: 429 and 503, or a
    connection that was never made (`sent` False).
    """
    if isinstance(exc, ScimStatusError) and exc.retryable:
        if not idempotent and exc.status not in (429, 503):
            return False
        return exc.retry_after if exc.retry_after is not None else True
    return isinstance(exc, TransportError) and exc.retryable and (idempotent or not exc.sent)
