"""Where a planned step goes (`StepSink`): the live sink hands it to the workers, the dry-run sink
(dryrun.py) adds it to the plan. `dispatch` counts the steps that need no write and passes on the rest."""

from __future__ import annotations

import logging
from typing import Protocol

from replicator.cycle.context import CycleContext
from replicator.cycle.work import StepQueue
from replicator.pipeline.plan import NOTHING, SKIP, Step

log = logging.getLogger("replicator.cycle")


class StepSink(Protocol):
    async def take(self, step: Step, send: StepQueue | None) -> None:
        """Take a step that writes; `send=None`: a step released by a finished write (never waits)."""

    async def follow_up(self, steps: list[Step]) -> None:
        """Steps that follow the cycle's removals (deleted members and managers taken out of what we wrote)."""

    def finish(self) -> None:
        """The cycle planned everything it will."""


async def dispatch(cx: CycleContext, step: Step, send: StepQueue | None) -> None:
    """Count a step that writes nothing, or hand it to the cycle's sink; `send=None` runs it as a released step."""
    if step.action == NOTHING:
        cx.result.counts["unchanged"] += 1
        return
    if step.action == SKIP:
        cx.result.counts["skipped"] += 1
        log.debug("skipped %s %s: %s", step.kind, step.label, step.reason)
        return
    await cx.sink.take(step, send)


class LiveSink:
    """Steps go to the workers: from the reader through the bounded queue, released ones without bound."""

    def __init__(self, cx: CycleContext) -> None:
        self.cx = cx

    async def take(self, step: Step, send: StepQueue | None) -> None:
        if send is None:
            self.cx.workers.put_released(step)
        else:
            await send.put(step)

    async def follow_up(self, steps: list[Step]) -> None:
        for step in steps:
            await self.cx.writer.run_step(step)

    def finish(self) -> None:
        pass
