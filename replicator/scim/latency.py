"""Request durations of one SCIM client, kept in bounded memory. Pure; no I/O."""

from __future__ import annotations

import random
from collections.abc import Callable


class Latencies:
    """Request durations: a fixed-size uniform sample (for percentiles) and an optional observer that
    sees each one as it happens (the daemon's histogram). Memory does not grow with the request count."""

    def __init__(self, keep: int = 4096) -> None:
        self.sample: list[float] = []
        self.count = 0
        self.observer: Callable[[float], None] | None = None
        self._keep = keep
        self._random = random.Random(0)

    def add(self, seconds: float) -> None:
        self.count += 1
        if len(self.sample) < self._keep:
            self.sample.append(seconds)
        else:  # reservoir sampling: every duration so far is in the sample with the same chance
            slot = self._random.randrange(self.count)
            if slot < self._keep:
                self.sample[slot] = seconds
        if self.observer is not None:
            self.observer(seconds)


def percentiles_ms(samples: list[float]) -> dict[str, float]:
    """p50/p90/p99 request latency in milliseconds (empty when there was no request)."""
    if not samples:
        return {}
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"latency_p50_ms": pick(0.5), "latency_p90_ms": pick(0.9), "latency_p99_ms": pick(0.99)}
