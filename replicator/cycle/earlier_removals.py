"""The removals of earlier cycles (`EarlierRemovals`), as this cycle's member drops need them: which of
the members the membership guard held name objects an earlier cycle removed (state.removed: a group
whose drop of them failed then, or was not written, still names them), and, once this cycle's drops
are written, which removals the state forgets. The decisions are pure (pipeline/removals.py:
`removed_lookups`, `forgotten_removals`, `REMOVALS_REMEMBERED`); this is their I/O."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from replicator.cycle.context import CycleContext
from replicator.pipeline.canonical import GROUP, KINDS, USER
from replicator.pipeline.removals import REMOVALS_REMEMBERED, forgotten_removals, removed_lookups

log = logging.getLogger("replicator.cycle")


class EarlierRemovals:
    """Asks the state for earlier cycles' removals, and has it forget those no longer needed."""

    def __init__(self, cx: CycleContext) -> None:
        self.cx = cx

    async def named_by(self, held: Iterable[dict[str, Any]], removed: dict[str, set[str]]) -> dict[str, set[str]]:
        """Per kind, the destination ids of objects earlier cycles removed (within `REMOVALS_REMEMBERED`)
        that these held members name; `removed`: this cycle's removals, known already. Only the held
        members are asked for, so memory is what the holds already take."""
        found: dict[str, set[str]] = {kind: set() for kind in KINDS}
        since = self.cx.started_at - REMOVALS_REMEMBERED
        for kind, values in removed_lookups(held, removed[USER], removed[GROUP]).items():
            found[kind] = await self.cx.store.removed.among(kind, values, since=since) if values else set()
        if any(found.values()):
            log.info("%d objects earlier cycles removed are still named by groups whose member removals were "
                     "held: those groups lose them now", sum(map(len, found.values())))
        return found

    async def forget(self, considered: dict[str, set[str]], still_named: set[str]) -> None:
        """The state forgets the removals this cycle's member drops took into account (`considered`, per
        kind) but those the groups whose drop failed or was not written still name, and every removal
        older than `REMOVALS_REMEMBERED`. A dry run changes nothing."""
        cx = self.cx
        if cx.dry_run:
            return
        for kind, dest_ids in forgotten_removals(considered, still_named).items():
            await cx.store.removed.forget(kind, dest_ids)
        await cx.store.removed.expire(cx.started_at - REMOVALS_REMEMBERED)
