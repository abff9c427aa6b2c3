"""The garbage collector's settings for a replicating process (`tune_collector`).

A copy allocates and frees containers by the million (decoded JSON, requests and their answers, plan
steps) and makes few reference cycles. CPython's default starts a young collection every 700 net
allocations of containers: about 770 collections for a 20k-user copy, each walking the containers alive
at that moment, 6-9% of the event loop's CPU. Every 10,000 allocations it is 16 collections and under 1%
(bench/README.md, session 19); cycles still get collected, a little later."""

from __future__ import annotations

import gc

YOUNG_COLLECTION_EVERY = 10_000  # net container allocations between young collections (CPython: 700)


def tune_collector() -> None:
    """Collect the young generation less often, and leave what startup made (modules, classes,
    configuration) out of every later collection (`gc.freeze`): a full collection otherwise walks all
    of it again, about 30 ms each time on this code base."""
    gc.collect()  # (what startup left as garbage is not frozen with the rest)
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, middle, old)


def collect_between_cycles() -> None:
    """A full collection once a daemon's cycle ended: what the cycle made into reference cycles (its
    context, the stages that hold it, failed requests' tracebacks) is freed before the next one begins,
    not whenever the rarer collections of `tune_collector` get to it."""
    gc.collect()
