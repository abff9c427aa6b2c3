"""The daemon: the same cycle as `run --once`, on an interval, with health, metrics and signals.

- An incremental cycle every `interval` seconds (plus up to `interval_jitter` of it at random), a full
  reconcile at start when the state is empty and then every `full_interval`. Cycles never overlap.
- Consecutive failed cycles back off: the wait after the n-th is interval x 2^(n-1), at most
  interval x BACKOFF_MAX_FACTOR (`backoff_delay`); a cycle that completes resets it.
- Request, retry and 429 counts reach `/metrics` as they happen (each scrape adds what the cycle's
  clients counted since the last), not only when the cycle ends.
- `/healthz` (alive: 200 while the process serves; its JSON says whether the daemon is healthy: not
  after `unhealthy_after` cycles in a row that could not reach a server or were refused credentials,
  which `scim-replicator healthcheck` turns into exit 1), `/livez` (the same JSON, 503 while not
  healthy: Kubernetes' liveness), `/readyz` (ready after a cycle that reached both servers; not ready
  while the last cycle could not: unreachable, credentials refused), `/metrics` (Prometheus) on `listen`.
- A hold (`next_hold`): while the guards hold removals (a cycle held, as `run --once` exits 4), the
  JSON of /healthz, /livez and /readyz says since which cycle and how many (`held`); the daemon stays
  healthy and ready (a restart does not lift a hold: an operator does), and the first cycle that runs
  to the end holding nothing clears it.
- One INFO line a cycle (`cycle finished: ...`, or its error): the progress watch's `cycle started` and
  `cycle ended` records are DEBUG here (`EventsAtDebug`); its `cycle progress` records stay INFO.
- SIGTERM/SIGINT (`replicator.shutdown.Shutdown`, shared with one-shot runs): stop reading, let calls in flight finish
  within `grace` seconds, flush the state, exit 0. A second signal cancels the cycle at once (exit 130).

The HTTP endpoint is this module's own seam (aiohttp.web); the SCIM side stays in `replicator.scim`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from replicator.app import Side, replicate
from replicator.collector import collect_between_cycles
from replicator.config import Config
from replicator.cycle import FULL, INCREMENTAL, CycleResult
from replicator.errors import AuthError, ListenError, ReplicatorError, TransportError
from replicator.exit_codes import ExitCode
from replicator.logs import EventsAtDebug
from replicator.metrics_pair import PairLabelled, pair_label
from replicator.pipeline.canonical import KINDS
from replicator.pipeline.outcome import COMPLETED, Outcome
from replicator.progress import log as progress_log
from replicator.progress import watch_progress
from replicator.report import cycle_line
from replicator.shutdown import Shutdown
from replicator.state import StateStore, open_state
from replicator.state.errors import StateFileError

log = logging.getLogger("replicator.daemon")

EXIT_OK, EXIT_INTERRUPTED = ExitCode.OK, ExitCode.INTERRUPTED
BACKOFF_MAX_FACTOR = 8  # a daemon whose cycles keep failing waits at most interval x this between them
_OPERATIONS = ("created", "adopted", "recreated", "updated", "disabled", "deleted", "unchanged", "skipped",
               "failed", "removals_held", "member_removals_held", "backing_off")
SIDES = ("source", "destination")
LIVENESS_PATH = "/livez"  # 503 while not healthy (deploy/kubernetes/deployment.yaml's livenessProbe)


class Metrics:
    """The Prometheus metrics of one daemon (own registry, so tests can run several); `pair`: the label
    every sample carries (none when "")."""

    def __init__(self, registry: CollectorRegistry | None = None, *, pair: str = "") -> None:
        self.registry = registry or CollectorRegistry()
        self.exposed: CollectorRegistry | PairLabelled = PairLabelled(self.registry, pair) if pair else self.registry
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
        # every series an alert watches exists from the start at 0, so that its first increase counts
        for mode in (FULL, INCREMENTAL):
            for outcome in Outcome:
                self.cycles.labels(mode, outcome)
        for name in _OPERATIONS:
            self.operations.labels(name)
        for side in SIDES:
            self.retries.labels(side)
            self.rate_limited.labels(side)
        for kind in KINDS:
            self.tracked.labels(kind)
        self._added: dict[tuple[str, ...], float] = {}  # what the current cycle's clients have added so far

    def new_cycle(self) -> None:
        """The next cycle's clients count from 0 (`add_requests`)."""
        self._added.clear()

    def add_requests(self, clients: list[Side]) -> None:
        """Add the requests, retries and 429 answers the cycle's clients counted since the last call:
        on each scrape (live, while a cycle runs) and at its end, each of them once."""
        for client in clients:
            for method, count in list(client.requests.items()):
                self._add(self.requests.labels(client.name, method), (client.name, "requests", method), count)
            self._add(self.retries.labels(client.name), (client.name, "retries"), client.stats.get("retries", 0))
            self._add(self.rate_limited.labels(client.name), (client.name, "429"), client.stats.get("429", 0))

    def _add(self, counter: Counter, key: tuple[str, ...], total: float) -> None:
        added = self._added.get(key, 0)
        if total > added:
            counter.inc(total - added)
            self._added[key] = total

    def record(self, result: CycleResult, clients: list[Side]) -> None:
        self.cycles.labels(result.mode, result.outcome).inc()
        for name in _OPERATIONS:
            if result.counts.get(name):
                self.operations.labels(name).inc(result.counts[name])
        self.cycle_seconds.set(result.seconds)
        self.add_requests(clients)
        if result.outcome in COMPLETED:
            self.last_success.set(time.time())

    def record_tracked(self, counts: dict[str, int]) -> None:
        """Objects replicated (with a destination counterpart in the state), by kind."""
        for kind, count in counts.items():
            self.tracked.labels(kind).set(count)

    def observe_latency(self, side: str, seconds: float) -> None:
        self.latency.labels(side).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.exposed)


def backoff_delay(interval: float, consecutive_failures: int, max_factor: int = BACKOFF_MAX_FACTOR) -> float:
    """Seconds before the next cycle (before jitter): `interval`, or after the n-th failed cycle in a
    row interval x 2^(n-1), at most interval x `max_factor`."""
    if consecutive_failures < 1:
        return interval
    return interval * min(2.0 ** min(consecutive_failures - 1, 62), max_factor)


@dataclass(frozen=True)
class Hold:
    """Removals the guards hold, from the first cycle of a run of held cycles (its end: `since`, Unix
    time) to the last, whose counts it carries."""

    since_cycle: int
    since: float
    held_cycles: int
    removals_held: int
    member_removals_held: int

    def facts(self) -> dict[str, Any]:
        """What /healthz says of it (`held`)."""
        if self.removals_held or self.member_removals_held:
            reason = (f"the guards hold {self.removals_held} removals and {self.member_removals_held} member "
                      "removals")
        else:  # a held cycle with no removal counted: a scope that matches nothing stopped it
            reason = "a scope that matches nothing stops each cycle before any write"
        return {"since_cycle": self.since_cycle,
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.since)),
                "held_cycles": self.held_cycles, "removals_held": self.removals_held,
                "member_removals_held": self.member_removals_held, "reason": reason}


def next_hold(hold: Hold | None, result: CycleResult, *, cycle: int, now: float) -> Hold | None:
    """The hold after cycle number `cycle` (ended at `now`): begun or carried on by a cycle the guards
    held (outcome `held`, or held entries beside failures: outcome `partial`), ended by the first cycle
    that ran to the end holding nothing; a cycle that failed or was interrupted leaves it as it was."""
    if result.outcome not in COMPLETED:
        return hold
    if result.outcome != Outcome.HELD and not result.held:
        return None
    return Hold(since_cycle=hold.since_cycle if hold else cycle, since=hold.since if hold else now,
                held_cycles=(hold.held_cycles if hold else 0) + 1,
                removals_held=result.counts.get("removals_held", 0),
                member_removals_held=result.counts.get("member_removals_held", 0))


async def tracked_counts(store: StateStore) -> dict[str, int]:
    """Objects of each kind that have a destination counterpart in the state."""
    return {kind: await store.count(kind) for kind in KINDS}


class Daemon:
    """Runs cycles until stopped. `run()` returns the exit code."""

    def __init__(self, config: Config, *, metrics: Metrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or Metrics(pair=pair_label(config))
        self.ready = False
        self.cycles_done = 0
        self.shutdown = Shutdown(config.grace)  # its stop event: no new cycle, the current one drains
        self.consecutive_failures = 0  # failed cycles in a row (back-off)
        self.unreachable_cycles = 0  # cycles in a row that could not reach a server or were refused credentials
        self.last_error: str | None = None  # what stopped the last failed cycle, in words
        self.last_error_class: str | None = None  # and the class of that error
        self.hold: Hold | None = None  # removals the guards hold, since the first held cycle of a run of them
        # `cycle started` and `cycle ended` of the progress watch at DEBUG: `cycle finished` says what they say
        self._bookends = EventsAtDebug("start", "end")
        self._cycle_task: asyncio.Task[CycleResult] | None = None
        self._clients: list[Side] = []
        self._runner: web.AppRunner | None = None
        self.bound: tuple[str, int] | None = None

    # -- HTTP endpoint --------------------------------------------------------------------------

    def health_facts(self) -> dict[str, Any]:
        """The JSON of /healthz and /livez."""
        return {
            "status": "alive", "cycles": self.cycles_done, "healthy": self.healthy,
            "consecutive_failures": self.consecutive_failures, "unreachable_cycles": self.unreachable_cycles,
            "unhealthy_after": self.config.unhealthy_after, "last_error": self.last_error,
            "last_error_class": self.last_error_class, "held": self.hold.facts() if self.hold else None,
        }

    def make_app(self) -> web.Application:
        async def healthz(request: web.Request) -> web.Response:  # 200 while we serve
            return web.json_response(self.health_facts())

        async def livez(request: web.Request) -> web.Response:  # liveness: 503 while not healthy
            return web.json_response(self.health_facts(), status=200 if self.healthy else 503)

        async def readyz(request: web.Request) -> web.Response:
            status = 200 if self.ready else 503
            return web.json_response({"ready": self.ready, "held": self.hold.facts() if self.hold else None},
                                     status=status)

        async def metrics(request: web.Request) -> web.Response:
            self.metrics.add_requests(self._clients)
            if self._clients:
                self.metrics.concurrency.set(self._clients[-1].limit.current)
            return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

        app = web.Application()
        app.router.add_get("/healthz", healthz)
        app.router.add_get(LIVENESS_PATH, livez)
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
        self.shutdown.request()

    @property
    def healthy(self) -> bool:
        """Not after `unhealthy_after` cycles in a row that could not reach a server or were refused
        credentials (what a restart or an operator must fix); other failures back off but stay healthy."""
        return self.unreachable_cycles < self.config.unhealthy_after

    # -- the loop -------------------------------------------------------------------------------

    async def run(self) -> int:
        self.shutdown.install()
        await self._start_http()
        last_full = time.monotonic()  # the next full reconcile is due full_interval from now...
        progress_log.addFilter(self._bookends)
        try:
            async with open_state(self.config.state) as store:
                state_empty = await store.count() == 0  # ...or at once, when nothing is replicated yet
                self.metrics.record_tracked(await tracked_counts(store))
            while not self.shutdown.stop.is_set():
                full_due = state_empty or time.monotonic() - last_full >= self.config.full_interval
                mode = FULL if full_due else INCREMENTAL
                self._clients = []
                self.metrics.new_cycle()
                started: list[CycleResult] = []
                self._cycle_task = asyncio.create_task(
                    replicate(self.config, mode=mode, dry_run=False, stop=self.shutdown.stop, clients=self._clients,
                              on_latency=self.metrics.observe_latency, started=started)
                )
                self.shutdown.watch(self._cycle_task)
                try:
                    async with watch_progress(self.config.progress_interval, started, self._clients, mode=mode,
                                              dry_run=False, live=False):
                        result = await self._cycle_task
                except asyncio.CancelledError:
                    if self.shutdown.cancelled:
                        log.warning("cycle cancelled by shutdown")
                        return EXIT_INTERRUPTED if self.shutdown.requests > 1 else EXIT_OK
                    raise
                except ReplicatorError as exc:
                    self._after_failure(mode, exc)
                else:
                    self._after_cycle(result)
                    if mode == FULL and result.outcome in COMPLETED:
                        last_full, state_empty = time.monotonic(), False
                await self._count_tracked()
                collect_between_cycles()
                await self._sleep(self._next_delay())
            return EXIT_OK if self.shutdown.requests < 2 else EXIT_INTERRUPTED
        finally:
            progress_log.removeFilter(self._bookends)
            self.shutdown.uninstall()
            if self._runner is not None:
                await self._runner.cleanup()

    def _after_cycle(self, result: CycleResult) -> None:
        self.cycles_done += 1
        if result.outcome == Outcome.FAILED:
            self._count_failure("CycleFailed", "the cycle failed (its report and the log say why)", unreachable=False)
        elif result.outcome != Outcome.INTERRUPTED:  # it completed
            self.consecutive_failures = self.unreachable_cycles = 0
            self.last_error = self.last_error_class = None
        self.metrics.record(result, self._clients)
        hold, self.hold = self.hold, next_hold(self.hold, result, cycle=self.cycles_done, now=time.time())
        if hold and not self.hold:
            log.info("removals no longer held (held since cycle %d, for %d cycles)", hold.since_cycle,
                     hold.held_cycles)
        self.ready = result.outcome in COMPLETED or (result.outcome == Outcome.INTERRUPTED and self.ready)
        self.metrics.ready.set(1 if self.ready else 0)
        summary: dict[str, Any] = result.summary()
        log.info("cycle finished: %s", cycle_line(result), extra={"fields": summary})

    def _after_failure(self, mode: str, exc: ReplicatorError) -> None:
        self.cycles_done += 1
        self.metrics.add_requests(self._clients)  # what the failed cycle sent before it failed
        self._count_failure(type(exc).__name__, str(exc), unreachable=isinstance(exc, AuthError | TransportError))
        self.metrics.cycles.labels(mode, Outcome.FAILED).inc()
        if isinstance(exc, AuthError | TransportError):
            self.ready = False
        self.metrics.ready.set(1 if self.ready else 0)
        log.error("%s cycle failed: %s", mode, exc)

    def _count_failure(self, error_class: str, message: str, *, unreachable: bool) -> None:
        self.consecutive_failures += 1
        self.unreachable_cycles = self.unreachable_cycles + 1 if unreachable else 0
        self.last_error, self.last_error_class = message, error_class
        if self.unreachable_cycles == self.config.unhealthy_after:
            log.error("unhealthy: %d cycles in a row could not reach a server or were refused credentials "
                      "(last: %s)", self.unreachable_cycles, error_class)

    async def _count_tracked(self) -> None:
        """`scimrep_resources_tracked` from the state, after each cycle; a state that cannot be read
        keeps the last counts (the next cycle reports the state's error)."""
        try:
            async with open_state(self.config.state) as store:
                self.metrics.record_tracked(await tracked_counts(store))
        except StateFileError as exc:
            log.warning("cannot count the objects in the state for the metrics: %s", exc)

    def _next_delay(self) -> float:
        delay = backoff_delay(self.config.interval, self.consecutive_failures)
        delay *= 1 + random.uniform(0, self.config.interval_jitter)
        if self.consecutive_failures and not self.shutdown.stop.is_set():
            log.warning("next cycle in %.1fs after %d consecutive failures", delay, self.consecutive_failures,
                        extra={"fields": {"next_cycle_seconds": round(delay, 3),
                                          "consecutive_failures": self.consecutive_failures}})
        return delay

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.shutdown.stop.wait(), timeout=seconds)
