"""The workers (`Workers`): `concurrency` tasks taking steps from a queue and running them, one by one
or, when the destination takes SCIM Bulk, gathered into Bulk requests (bulk.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from replicator.cycle.context import CycleContext
from replicator.cycle.work import StepQueue
from replicator.pipeline.plan import CREATE, Step

_BULK_LINGER_ROUNDS = 5  # of 1 ms: how long a worker waits to fill a Bulk request


class Workers:
    """Runs the steps handed to it, `concurrency` at a time."""

    def __init__(self, cx: CycleContext) -> None:
        self.cx = cx
        self._steps: StepQueue | None = None  # the queue of the workers running now

    @asynccontextmanager
    async def running(self) -> AsyncIterator[StepQueue]:
        """`concurrency` workers taking steps from a queue; on exit, waits until all work is done.

        The reader's puts are bounded (memory stays flat however large the source); steps released
        by finished writes (objects that waited for them) are queued without bound, so a worker never
        blocks on its own queue. A plain asyncio.Queue: anyio's memory streams add a scheduling
        checkpoint to every item, which measured as a quarter of the per-object CPU time. The bound
        leaves room for a whole page beyond what the workers hold, so that while the reader fetches
        and plans the next page the workers still have a page of work."""
        cx = self.cx
        steps = StepQueue(cx.config.concurrency * max(2, cx.bulk.size) + cx.config.source.page_size)
        previous, self._steps = self._steps, steps
        try:
            async with anyio.create_task_group() as tg:
                for _ in range(cx.config.concurrency):
                    tg.start_soon(self._worker, steps)
                try:
                    yield steps
                    await steps.queue.join()  # includes steps released while others still run
                finally:
                    for _ in range(cx.config.concurrency):
                        steps.queue.put_nowait(None)
        finally:
            self._steps = previous
        if cx.fatal is not None:
            raise cx.fatal

    def put_released(self, step: Step) -> None:
        """A step released by a finished write: queued without waiting for room."""
        assert self._steps is not None, "released steps come from workers"
        self._steps.put_released(step)

    async def _worker(self, steps: StepQueue) -> None:
        cx = self.cx
        while (item := await steps.queue.get()) is not None:
            items = [item]
            lingered = 0
            while len(items) < cx.bulk.size:  # Bulk: gather what waits, lingering a little for more
                if steps.queue.empty():
                    if lingered >= _BULK_LINGER_ROUNDS:
                        break
                    lingered += 1
                    await asyncio.sleep(0.001)
                    continue
                extra = steps.queue.get_nowait()
                if extra is None:
                    steps.queue.put_nowait(None)  # an end marker: leave it for the next worker round
                    break
                items.append(extra)
            try:
                first = items[0][0]
                if len(items) == 1 and not (cx.bulk.size > 1 and first.action == CREATE
                                            and cx.waiters.waits_for(first.source_id)):
                    await cx.writer.run_step(first)  # (a create others wait for goes in Bulk, which they may join)
                else:
                    await cx.bulk.run_batch([step for step, _ in items])
            finally:
                for _, from_reader in items:
                    if from_reader:
                        steps.room.release()
                    steps.queue.task_done()
