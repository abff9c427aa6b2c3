"""Page triage, pure: which source objects read may skip planning (the zero-change fast path) and which
cannot be replicated as they are (a match key another object holds, an oversized object). No I/O."""

from __future__ import annotations

from typing import Any

from replicator.pipeline.canonical import encode


def unchanged_since_last_write(mark: tuple[str | None, str] | None, source_digest: str, *, full: bool,
                               synced: str) -> bool:
    """Zero-change fast path: the source sent the very bytes it sent when we last wrote the object
    (`mark`: the digest then and the object's status, None when it has no row; `synced`: the status
    of an object replicated as it was read).

    Skips canonicalising and planning. Not in a full cycle, which compares everything with the
    destination (and so also catches a reference whose target was re-created meanwhile)."""
    return not full and mark is not None and mark == (source_digest, synced)


def refusal(canonical: dict[str, Any], source_id: str, key_owner: str, match_attribute: str,
            max_resource_bytes: int) -> str | None:
    """Why a source object cannot be replicated as it is (`key_owner`: the object read this cycle that
    holds its match key), or None."""
    if key_owner != source_id:
        return f"duplicate {match_attribute} in the source (also source id {key_owner})"
    size = len(encode({k: v for k, v in canonical.items() if k != "members"} if "members" in canonical else canonical))
    if size > max_resource_bytes:
        return f"oversized: {size} bytes > sync.max_resource_bytes={max_resource_bytes}"
    return None
