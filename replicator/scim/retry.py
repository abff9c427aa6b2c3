"""When a failed SCIM call is worth another try, and after how long. Pure; no I/O.

`RetryPolicy` bounds the retry layer; `parse_retry_after` reads the server's Retry-After header.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass


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
