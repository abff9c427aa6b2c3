"""The values the state stores: a resource's row (and the columns it is read from), a run's record, the
statuses and origins a row holds, and how a canonical form is stored (deterministic JSON bytes; a big
one, a large group's, zlib-compressed).

Plain values only (no I/O). The enums' values are the strings persisted in the state file: changing one
changes the file format.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

import msgspec

from replicator.deterministic_json import encoded_in_parts
from replicator.pipeline.member import decode_form_json


class ResourceStatus(StrEnum):
    """What a resource's row says of its destination object (`resources.status`)."""

    SYNCED = "synced"
    DISABLED = "disabled"
    FAILED = "failed"
    CREATING = "creating"  # a create is about to be sent: committed first, so a crash cannot orphan its object


class Origin(StrEnum):
    """How the destination object came to be ours (`resources.origin`); `created` without a destination
    id: a create noted whose result was not recorded."""

    CREATED = "created"
    ADOPTED = "adopted"


SYNCED = ResourceStatus.SYNCED
DISABLED = ResourceStatus.DISABLED
FAILED = ResourceStatus.FAILED
CREATING = ResourceStatus.CREATING


class ResourceRow(NamedTuple):
    """What we know of one source object (without its canonical form, which is fetched on demand).
    A tuple: one is made per object read, and this is the cheapest immutable record. Its status and
    origin are the strings read from the file (compare them with `ResourceStatus` and `Origin`)."""

    kind: str
    source_id: str
    dest_id: str | None
    digest: str | None
    status: str
    origin: str | None
    attempts: int = 0
    next_attempt_at: float | None = None
    match_key: str | None = None  # case-folded
    source_digest: str | None = None
    failed_source_digest: str | None = None  # the source digest of the last failure (while next_attempt_at is set)


class FailedResource(NamedTuple):
    """A resource whose last attempt failed, as `status` lists it."""

    kind: str
    source_id: str
    error: str | None
    attempts: int
    label: str | None = None  # its userName / displayName when it failed (None: not known, or an older state)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One cycle as stored in `runs`."""

    id: int
    mode: str
    dry_run: bool
    started_at: float
    ended_at: float | None
    outcome: str | None
    counts: dict[str, Any]


# the columns a ResourceRow is read from, in its fields' order (`ROW_COLUMNS_R`: over `resources r`)
ROW_COLUMNS = ("kind, source_id, dest_id, digest, status, origin, attempts, next_attempt_at, match_key, "
               "source_digest, failed_source_digest")
ROW_COLUMNS_R = ", ".join("r." + column.strip() for column in ROW_COLUMNS.split(","))

_decode_json = msgspec.json.Decoder().decode

# JSON of at least this many bytes is stored compressed. Memory: SQLite holds a value it inserts twice
# (its bound copy and the row's record), so a group of a million members, 79 MB of JSON, cost 240 MB at
# its record; compressed (level 1: the ids are random, a higher level gains little) it is about a third.
COMPRESSED_FROM = 256 * 1024
# the first byte of a zlib stream (deflate, 32 KiB window); a form's JSON starts with `{`
COMPRESSED_MARK = b"\x78"


def encode_form(form: dict[str, Any]) -> bytes:
    """A canonical form as a `canon` column holds it: deterministic JSON, compressed when it is big
    (memory: a big form's JSON is compressed as it is encoded, never held whole)."""
    plain: list[bytes] = []
    size = 0
    compressor = None
    compressed: list[bytes] = []
    for part in encoded_in_parts(form, _FORM_CHUNK):
        if compressor is not None:
            compressed.append(compressor.compress(part))
            continue
        plain.append(part)
        size += len(part)
        if size >= COMPRESSED_FROM:
            compressor = zlib.compressobj(1)
            compressed.append(compressor.compress(b"".join(plain)))
            plain = []
    if compressor is None:
        return b"".join(plain)
    compressed.append(compressor.flush())
    return b"".join(compressed)


_FORM_CHUNK = 1024  # entries of a form's long list (a group's members) encoded at a time


def decode_form(canon: bytes) -> Any:
    """The canonical form a `canon` column holds (`encode_form`'s, compressed or not; a big form's
    members held compactly, as `decode_for_canonical` holds a big group's)."""
    if canon[:1] == COMPRESSED_MARK:
        return decode_form_json(zlib.decompress(canon))
    return _decode_json(canon)
