"""The workers (`Workers`): `concurrency` tasks taking steps from a queue and running them, one by one
or, when the destination takes SCIM Bulk, gathered into Bulk requests (bulk.py); and `send_together`,
the independent requests of one step (a large group's member adds) sent side by side."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import anyio

from replicator.cycle.context import CycleContext
from replicator.cycle.work import StepQueue
from replicator.pipeline.plan import CREATE, Step

_BULK_LINGER_ROUNDS = 5  # of 1 ms: how long a worker waits to fill a Bulk request

Item = TypeVar("Item")
Refusal = TypeVar("Refusal", bound=Exception)


async def send_together(items: list[Item], send: Callable[[Item], Awaitable[None]], *, at_most: int,
                        collect: type[Refusal]) -> list[tuple[Item, Refusal]]:
    """`send` each item, up to `at_most` at a time (every request still waits for its turn under the
    destination's concurrency limit, pause and rate limit). Errors of type `collect` are returned with
    their items, in the items' order; any other error stops sending more and is raised once the sends
    in flight have ended (the first one met)."""
    collected: dict[int, tuple[Item, Refusal]] = {}
    stopped: list[BaseException] = []
    queue = iter(enumerate(items))

    async def sender() -> None:
        for index, item in queue:
            if stopped:
                return
            try:
                await send(item)
            except collect as exc:
                collected[index] = (item, exc)
            except Exception as exc:  # (cancellation is not caught: gather passes it on)
                stopped.append(exc)

    await asyncio.gather(*(sender() for _ in range(max(1, min(at_most, len(items))))))
    if stopped:
        raise stopped[0]
    return [collected[index] for index in sorted(collected)]


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
