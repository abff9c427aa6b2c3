"""Deterministic JSON (sorted keys) of canonical forms, whole or in parts. Pure; no I/O.

A form holding one long list (a group of a million members) can be encoded a chunk of its entries at a
time (`encoded_in_parts`), so that its whole encoding, tens of megabytes, is never held at once: what is
made of it (a digest, a compressed copy) is fed part by part. The parts joined are exactly `encode`'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

encode = msgspec.json.Encoder(order="deterministic").encode


def encoded_in_parts(form: dict[str, Any], chunk: int) -> Iterator[bytes]:
    """`encode(form)` in parts: its longest list, when longer than `chunk`, `chunk` entries at a time;
    else whole, in one part."""
    lists = [(len(value), key) for key, value in form.items() if type(value) is list]
    longest = max(lists)[1] if lists else None
    if longest is None or len(form[longest]) <= chunk:
        yield encode(form)
        return
    entries = form[longest]
    shell = encode({**form, longest: []})
    empty = encode(longest) + b":[]"
    head, found, tail = shell.partition(empty)
    if not found or empty in tail:  # (not where that list goes, for certain: a nested list of that name)
        yield encode(form)
        return
    yield head + empty[:-1]
    for start in range(0, len(entries), chunk):
        part = encode(entries[start:start + chunk])
        yield part[1:-1] if start == 0 else b"," + part[1:-1]
    yield b"]" + tail
