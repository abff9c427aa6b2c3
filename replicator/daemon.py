"""The daemon: the same cycle as `run --once`, on an interval, with health, metrics and signals.

- An incremental cycle every `interval` seconds (plus up to `interval_jitter` of it at random), a full
  reconcile at start when the state is empty and then every `full_interval`. Cycles never overlap.
- `/healthz` (alive), `/readyz` (ready after a cycle that reached both servers; not ready while the
  last cycle could not: unreachable, credentials refused), `/metrics` (Prometheus) on `listen`.
- SIGTERM/SIGINT: stop reading, let calls in flight finish within `grace` seconds, flush the state,
  exit 0. A second signal cancels the cycle at once (exit 130).

The HTTP endpoint is this module's own seam (aiohttp.web); the SCIM side stays in `replicator.scim`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import time
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from replicator.config import Config
from replicator.errors import AuthError, ListenError, ReplicatorError, TransportError
from replicator.pipeline.cycle import FULL, INCREMENTAL, CycleResult
from replicator.scim.client import ScimClient

log = logging.getLogger("replicator.daemon")

EXIT_OK, EXIT_INTERRUPTED = 0, 130
_OPERATIONS = ("created", "adopted", "recreated", "updated", "disabled", "deleted", "unchanged", "skipped",
               "failed", "removals_held", "backing_off")


class Metrics:
    """The Prometheus metrics of one daemon (own registry, so tests can run several)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.cycles = Counter("scimrep_cycles", "Cycles run, by mode and outcome", ["mode", "outcome"], registry=r)
        self.operations = Counter("scimrep_operations", "Objects handled, by operation", ["operation"], registry=r)
        self.requests = Counter("scimrep_requests", "HTTP requests sent, by side and method", ["side", "method"],
                                registry=r)
        self.retries = Counter("scimrep_retries", "Retried calls, by side", ["side"], registry=r)
        self.rate_limited = Counter("scimrep_rate_limited", "429 answers, by side", ["side"], registry=r)
        self.latency = Histogram("scimrep_request_duration_seconds", "SCIM request latency", ["side"],
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r)
        self.cycle_seconds = Gauge("scimrep_last_cycle_duration_seconds", "Duration of the last cycle", registry=r)
        self.last_success = Gauge("scimrep_last_success_timestamp_seconds",
                                  "Unix time of the end of the last cycle that completed", registry=r)
        self.tracked = Gauge("scimrep_resources_tracked", "Objects replicated, by kind (from the state)", ["kind"],
                             registry=r)
        self.concurrency = Gauge("scimrep_concurrency_current", "Current adaptive concurrency to the destination",
                                 registry=r)
        self.ready = Gauge("scimrep_ready", "1 when /readyz answers 200", registry=r)

    def record(self, result: CycleResult, clients: list[ScimClient]) -> None:
        self.cycles.labels(result.mode, result.outcome).inc()
        for name in _OPERATIONS:
            if result.counts.get(name):
                self.operations.labels(name).inc(result.counts[name])
        self.cycle_seconds.set(result.seconds)
        for client in clients:
            for method, count in client.requests.items():
                self.requests.labels(client.name, method).inc(count)
            self.retries.labels(client.name).inc(client.stats.get("retries", 0))
            self.rate_limited.labels(client.name).inc(client.stats.get("429", 0))
        if result.outcome in ("ok", "partial", "held"):
            self.last_success.set(time.time())

    def observe_latency(self, side: str, seconds: float) -> None:
        self.latency.labels(side).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class Daemon:
    """Runs cycles until stopped. `run()` returns the exit code."""

    def __init__(self, config: Config, *, metrics: Metrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.ready = False
        self.cycles_done = 0
        self._stop = asyncio.Event()  # no new cycle; the current one drains
        self._cycle_stop = asyncio.Event()  # handed to the running cycle
        self._signals = 0
        self._cycle_task: asyncio.Task[CycleResult] | None = None
        self._clients: list[ScimClient] = []
        self._runner: web.AppRunner | None = None
        self.bound: tuple[str, int] | None = None

    # -- HTTP endpoint --------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        async def healthz(request: web.Request) -> web.Response:
            return web.json_response({"status": "alive", "cycles": self.cycles_done})

        async def readyz(request: web.Request) -> web.Response:
            status = 200 if self.ready else 503
            return web.json_response({"ready": self.ready}, status=status)

        async def metrics(request: web.Request) -> web.Response:
            if self._clients:
                self.metrics.concurrency.set(self._clients[-1].limit.current)
            return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

        app = web.Application()
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz)
        app.router.add_get("/metrics", metrics)
        return app

    async def _start_http(self) -> None:
        host, _, port = self.config.listen.rpartition(":")
        self._runner = web.AppRunner(self.make_app(), access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, host.strip("[]"), int(port)).start()
        except OSError as exc:  # in use, or not an address of this host
            await self._runner.cleanup()
            self._runner = None
            reason = os.strerror(exc.errno).lower() if exc.errno and exc.errno > 0 else exc.strerror or str(exc)
            raise ListenError(f"listen {self.config.listen}: cannot serve health and metrics there: {reason}") from exc
        address = self._runner.addresses[0]
        self.bound = (str(address[0]), int(address[1]))
        log.info("health and metrics on http://%s:%d", *self.bound)

    # -- signals --------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """First call: drain and stop. Second call: cancel the running cycle at once."""
        self._signals += 1
        if self._signals == 1:
            log.info("stopping: finishing calls in flight (grace %.0fs)", self.config.grace)
            self._stop.set()
            self._cycle_stop.set()
            asyncio.get_running_loop().call_later(self.config.grace, self._cancel_cycle)
        else:
            log.warning("second signal: stopping now")
            self._cancel_cycle()

    def _cancel_cycle(self) -> None:
        if self._cycle_task is not None and not self._cycle_task.done():
            self._cycle_task.cancel()

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)

    # -- the loop -------------------------------------------------------------------------------

    async def run(self) -> int:
        from replicator.cli import replicate
        from state import open_state

        self._install_signal_handlers()
        await self._start_http()
        last_full = time.monotonic()  # the next full reconcile is due full_interval from now...
        try:
            async with open_state(self.config.state) as store:
                state_empty = await store.count() == 0  # ...or at once, when nothing is replicated yet
            while not self._stop.is_set():
                full_due = state_empty or time.monotonic() - last_full >= self.config.full_interval
                mode = FULL if full_due else INCREMENTAL
                self._cycle_stop = asyncio.Event()
                if self._stop.is_set():
                    break
                self._clients = []
                self._cycle_task = asyncio.create_task(
                    replicate(self.config, mode=mode, dry_run=False, stop=self._cycle_stop, clients=self._clients,
                              on_latency=self.metrics.observe_latency)
                )
                try:
                    result = await self._cycle_task
                except asyncio.CancelledError:
                    if self._signals:
                        log.warning("cycle cancelled by shutdown")
                        return EXIT_INTERRUPTED if self._signals > 1 else EXIT_OK
                    raise
                except ReplicatorError as exc:
                    self._after_failure(mode, exc)
                else:
                    self._after_cycle(result)
                    if mode == FULL and result.outcome in ("ok", "partial", "held"):
                        last_full, state_empty = time.monotonic(), False
                await self._sleep(self._next_delay())
            return EXIT_OK if self._signals < 2 else EXIT_INTERRUPTED
        finally:
            if self._runner is not None:
                await self._runner.cleanup()

    def _after_cycle(self, result: CycleResult) -> None:
        self.cycles_done += 1
        self.metrics.record(result, self._clients)
        self.ready = result.outcome in ("ok", "partial", "held") or (result.outcome == "interrupted" and self.ready)
        self.metrics.ready.set(1 if self.ready else 0)
        summary: dict[str, Any] = result.summary()
        counts = ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items()) if v) or "nothing to do"
        log.info("%s cycle %s in %.2fs: %s", result.mode, result.outcome, result.seconds, counts,
                 extra={"fields": summary})

    def _after_failure(self, mode: str, exc: ReplicatorError) -> None:
        self.cycles_done += 1
        self.metrics.cycles.labels(mode, "failed").inc()
        if isinstance(exc, AuthError | TransportError):
            self.ready = False
        self.metrics.ready.set(1 if self.ready else 0)
        log.error("%s cycle failed: %s", mode, exc)

    def _next_delay(self) -> float:
        return self.config.interval * (1 + random.uniform(0, self.config.interval_jitter))

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
