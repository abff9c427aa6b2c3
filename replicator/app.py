"""The composition root: what a run is made of, without the command line.

`replicate()` opens the state and the two directories and runs one cycle, translating the state's
errors (wherever the cycle met them) into one `StateError`. `run_one_cycle()` is a one-shot run's core:
that cycle under SIGTERM/SIGINT draining (`Shutdown`). `read_status()` reads what `status` shows.
A dry-run plans against an in-memory state (`dry_run_state`): nothing it does reaches the disk.
Nothing here parses arguments, prints or chooses an exit code: that is `replicator.cli`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from replicator.config import Config
from replicator.cycle import CycleResult, run_cycle
from replicator.errors import StateError
from replicator.pingone.directory import PingOneDirectory
from replicator.pipeline.approvals import held_by
from replicator.progress import watch_progress
from replicator.report import StateStatus, cycle_line
from replicator.scim.client import ScimClient, client_for
from replicator.shutdown import Shutdown
from replicator.state import StateStore, open_state
from replicator.state.approvals import Approval
from replicator.state.connection import Connection, unusable_message
from replicator.state.errors import StateFileError, StateUnusableError
from replicator.state.lock import lock_path_for
from replicator.state.records import RunRecord
from replicator.state.schema import prepare

log = logging.getLogger("replicator")

Side = ScimClient | PingOneDirectory  # the directories a side can be (each a `replicator.directory.Directory`)


def directory_for(config: Config, side: str, *, max_connections: int, min_concurrency: int | None = None) -> Side:
    """The directory a side's configuration names (not yet opened): a SCIM server, or a PingOne
    environment (whose populations travel only when the other side is PingOne too)."""
    cfg = getattr(config, side)
    if cfg.kind == "pingone":
        other = config.destination if side == "source" else config.source
        return PingOneDirectory(cfg, name=side, max_connections=max_connections, min_concurrency=min_concurrency,
                                with_populations=other.kind == "pingone")
    return client_for(cfg, side, max_connections=max_connections, min_concurrency=min_concurrency)


async def replicate(
    config: Config, *, mode: str, dry_run: bool, stop: asyncio.Event | None = None,
    clients: list[Side] | None = None, on_latency: Callable[[str, float], None] | None = None,
    started: list[CycleResult] | None = None,
) -> CycleResult:
    """Open both clients and the state, and run one cycle. `clients` receives the open clients
    (source, destination) and `on_latency(side, seconds)` each request's duration, for whoever
    watches the cycle (the daemon's metrics); `started` the cycle's result once it runs (what a
    cancelled cycle had done)."""
    connections = config.concurrency + 4
    try:
        async with AsyncExitStack() as stack:
            store = await stack.enter_async_context(dry_run_state(config.state) if dry_run else open_state(config.state))
            source = directory_for(config, "source", max_connections=connections)
            await stack.enter_async_context(source)
            destination = directory_for(config, "destination", max_connections=config.concurrency,
                                        min_concurrency=config.min_concurrency)
            await stack.enter_async_context(destination)
            if isinstance(source, PingOneDirectory) and isinstance(destination, PingOneDirectory):
                # dynamic groups' userFilters name populations by id: the destination translates them
                destination.populations.replicates_from(source.populations)
            if clients is not None:
                clients[:] = [source, destination]
            if on_latency is not None:
                for client in (source, destination):
                    client.latency.observer = functools.partial(on_latency, client.name)
            return await run_cycle(config, source, destination, store, mode=mode, dry_run=dry_run, stop=stop,
                                   started=started)
    except (StateFileError, ExceptionGroup) as exc:  # the state's errors, once, wherever the cycle met them
        failure = _state_failure(exc)
        if failure is None:
            raise
        log.debug("state failure", exc_info=exc)
        raise StateError(str(failure)) from exc


@asynccontextmanager
async def dry_run_state(path: str) -> AsyncIterator[StateStore]:
    """The state a dry-run plans against, in memory: a copy of the state file when there is one (made
    through a read-only connection, by SQLite's backup, so that a run writing it meanwhile leaves a
    consistent copy), else an empty one. Neither the file nor its folder is created or changed; the
    copy is migrated in memory."""
    if path == ":memory:" or not os.path.exists(path):
        async with open_state(":memory:") as store:
            yield store
        return
    if os.path.isdir(path):
        raise StateUnusableError(f"state file {path} is a directory")
    try:
        db = await aiosqlite.connect(":memory:")
    except sqlite3.Error as exc:
        raise StateUnusableError(unusable_message(path, exc)) from exc
    try:
        try:
            # a state closed cleanly has no WAL: read it as immutable, which makes no -wal/-shm file
            # beside it; else (a run holds it, or one crashed) read-only, through the files it left
            wal = os.path.exists(f"{path}-wal")
            source = await aiosqlite.connect(f"{Path(path).absolute().as_uri()}?{'mode=ro' if wal else 'immutable=1'}",
                                             uri=True)
            try:
                await source.backup(db)
            finally:
                await source.close()
            await prepare(db, path)  # migrated in memory, as the run that follows would migrate the file
        except (sqlite3.Error, OSError) as exc:
            raise StateUnusableError(unusable_message(path, exc)) from exc
        yield StateStore(Connection(db, batch_size=1000, path=path))
    finally:
        await db.close()


def dry_run_needs_no_lock(path: str) -> bool:
    """A dry-run without a state file (nor a run that is making one: its lock file) takes no lock, so
    that it leaves no lock file behind; with one, it is refused while another run holds it."""
    return not os.path.exists(path) and not os.path.exists(lock_path_for(path))


def _state_failure(exc: BaseException) -> StateFileError | None:
    """The state's error that `exc` is, or holds (a worker's, through the cycle's task group)."""
    if isinstance(exc, StateFileError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := _state_failure(inner)) is not None:
                return found
    return None


@dataclass(frozen=True)
class OneShotRun:
    """How a one-shot cycle ended: its result, or None when it was stopped at once (a second signal,
    or the end of the grace); `shutdown` says whether, and by which signal, a stop was requested."""

    result: CycleResult | None
    shutdown: Shutdown
    partial: CycleResult | None = None  # stopped at once: what the cycle had done (outcome interrupted)


async def run_one_cycle(config: Config, *, mode: str, dry_run: bool) -> OneShotRun:
    """One cycle that SIGTERM/SIGINT drain as they drain the daemon (stop reading, let the calls in
    flight finish within `grace`, record the run `interrupted`). A second signal, or the end of the
    grace, stops it at once (the run is still recorded): then there is no result. Its progress goes to
    stderr (`replicator.progress`): a live display on a terminal, status lines elsewhere."""
    shutdown = Shutdown(config.grace)
    shutdown.install()
    started: list[CycleResult] = []
    clients: list[Side] = []
    work = asyncio.ensure_future(replicate(config, mode=mode, dry_run=dry_run, stop=shutdown.stop, started=started,
                                           clients=clients))
    shutdown.watch(work)
    try:
        async with watch_progress(config.progress_interval, started, clients, mode=mode, dry_run=dry_run,
                                  live=sys.stderr.isatty()):
            result = await work
    except asyncio.CancelledError:
        if not shutdown.cancelled:
            raise
        return OneShotRun(None, shutdown, partial=started[0] if started else None)
    finally:
        shutdown.uninstall()
    log.info("cycle finished: %s", cycle_line(result), extra={"fields": result.summary()})
    return OneShotRun(result, shutdown)


async def read_status(state_path: str) -> StateStatus:
    """What `status` reports, read from the state file (which must exist: opening creates it)."""
    async with open_state(state_path) as store:
        runs = await store.runs.last_runs(10)
        failures = await store.failures()
        tracked = {kind: await store.count(kind) for kind in ("User", "Group")}
        keeps = await store.keeps.every()
        limits = await store.keeps.limits()
        approval = await store.approvals.standing(time.time())
    return StateStatus(state_path, tracked, runs, failures, keeps, limits, approval)


async def withdraw_approval(state_path: str) -> Approval | None:
    """Withdraw the standing approval of removals (`approve --withdraw`); returns it, or None."""
    async with open_state(state_path) as store:
        return await store.approvals.withdraw(time.time())


async def approve_removals(state_path: str, up_to: int | None, members_up_to: int | None,
                           minutes: int) -> tuple[Approval | None, RunRecord | None]:
    """Record an operator's approval of up to `up_to` removals and `members_up_to` member removals for
    the next cycle to start within `minutes`; a number not given (None) is what the last run that
    ended held (`held_by`), unless the other is given (then 0). Returns it (None when it would approve
    nothing) and that run. The state file must exist; a daemon holding it need not stop (the next cycle
    it starts reads the approval)."""
    async with open_state(state_path) as store:
        last = next((run for run in await store.runs.last_runs(10) if not run.dry_run and run.ended_at), None)
        held = held_by(last.counts.get("counts") or {}) if last is not None else (0, 0)
        if up_to is None and members_up_to is None:
            up_to, members_up_to = held
        up_to, members_up_to = up_to or 0, members_up_to or 0
        if not (up_to or members_up_to):
            return None, last
        now = time.time()
        return await store.approvals.approve(up_to, members_up_to, now=now, expires_at=now + 60.0 * minutes), last


async def read_timeline(state_path: str, run_id: int | None) -> tuple[RunRecord | None, list[list[float]] | None]:
    """A run (`run_id`, else the last one that ended) and its timeline's rows, read from the state file
    (which must exist)."""
    async with open_state(state_path) as store:
        run = await store.runs.find(run_id)
        return run, (await store.runs.timeline(run.id) if run is not None else None)
