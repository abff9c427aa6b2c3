"""The command line: `run` (one cycle with --once/--full, else a loop), `config`, `demo`, `status`; exit codes.

Exit codes:
  0  the cycle completed and every resource is replicated
  1  the cycle completed, but some resources failed or a read was incomplete (see the log / `status`)
  2  bad usage or configuration (nothing was contacted)
  3  the cycle could not run: authentication refused, server unreachable, state unusable or held by
     another run, the daemon's `listen` address unusable
  4  removals were held: users or groups by the mass-delete guard (rerun with --allow-mass-delete if
     intended), a group's members by the membership guard (--allow-member-removals)
  5  an optional feature's package is not installed (`status --plot`: pip install 'scim-replicator[plot]')
  130 interrupted by SIGTERM/SIGINT: calls in flight finished (within `grace`), the report was printed and
      the run recorded `interrupted`; a second signal stops at once (still recorded)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TextIO

import msgspec

from replicator.app import dry_run_needs_no_lock, read_status, read_timeline, run_one_cycle
from replicator.approvals_cli import approve, withdraw
from replicator.check import check_command
from replicator.cli_parser import build_parser
from replicator.collector import tune_collector
from replicator.config import Config, load_config, load_config_traced, validate
from replicator.cycle import FULL, INCREMENTAL
from replicator.daemon import Daemon
from replicator.errors import ConfigError, ReplicatorError
from replicator.exit_codes import ExitCode
from replicator.logs import setup_logging
from replicator.pipeline.outcome import Outcome
from replicator.report import counts_text, report_json, report_text, status_json, status_text
from replicator.settings_help import is_secret, iter_settings
from replicator.state.errors import StateFileError
from replicator.state.lock import hold_state_lock
from replicator.timeline import plot_problem, plot_title, series
from replicator.timeline_plot import PlottingUnavailable, draw_timeline

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_FATAL, EXIT_HELD, EXIT_INTERRUPTED = (
    ExitCode.OK, ExitCode.PARTIAL, ExitCode.USAGE, ExitCode.FATAL, ExitCode.HELD, ExitCode.INTERRUPTED)
EXIT_MISSING_EXTRA = ExitCode.MISSING_EXTRA


def _override_origins(args: argparse.Namespace) -> dict[str, str]:
    """Where the flags' settings came from, for those not set by their own flag."""
    out = {}
    if getattr(args, "insecure", False):
        out["source.verify_tls"] = out["destination.verify_tls"] = "flag --insecure"
    if getattr(args, "allow_mass_delete", False):
        out["sync.allow_mass_delete"] = "flag --allow-mass-delete"
    if getattr(args, "allow_member_removals", False):
        out["sync.allow_member_removals"] = "flag --allow-member-removals"
    if getattr(args, "assume_empty_destination", False):
        out["sync.assume_empty_destination"] = "flag --assume-empty-destination"
    return out


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out = {key.split(":", 1)[1]: value for key, value in vars(args).items() if key.startswith("setting:")}
    if getattr(args, "insecure", False):
        out["source.verify_tls"] = out["destination.verify_tls"] = False
    if getattr(args, "allow_mass_delete", False):
        out["sync.allow_mass_delete"] = True
    if getattr(args, "allow_member_removals", False):
        out["sync.allow_member_removals"] = True
    if getattr(args, "assume_empty_destination", False):
        out["sync.assume_empty_destination"] = True
    return out


class _StdoutReaderMayLeave:
    """stdout for a reader that may stop reading (`| head -1`): once its pipe is closed, the rest of
    the output is dropped instead of raising BrokenPipeError, and file descriptor 1 goes to /dev/null
    (as Python's docs advise) so that the interpreter's last flush does not fail again."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.reader_left = False

    def write(self, text: str) -> int:
        if not self.reader_left:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                self._drop_the_rest()
        return len(text)

    def flush(self) -> None:
        if not self.reader_left:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._drop_the_rest()

    def _drop_the_rest(self) -> None:
        self.reader_left = True
        with contextlib.suppress(OSError, ValueError):  # a stream without a file descriptor: nothing to redirect
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, self.stream.fileno())
            finally:
                os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit code. A reader of stdout that leaves early does not change
    it: the run's work is done and its code stands; the rest of the report is dropped."""
    stdout = _StdoutReaderMayLeave(sys.stdout)
    sys.stdout = stdout
    try:
        return _main(argv)
    finally:
        stdout.flush()
        sys.stdout = stdout.stream


# the demos, loaded when one is asked for: they bring the in-memory SCIM servers and the PingOne
# emulator (replicator.testing), which a run, the daemon or a check never needs (about a tenth of a
# second of start-up). Named here, in one place; tests/unit/test_demo_registry.py checks the names.
DEMOS = {"scim": ("replicator.demo", "run_demo"), "pingone": ("replicator.demo_pingone", "run_pingone_demo")}


def demo(name: str) -> Callable[..., Awaitable[int]]:
    """The coroutine function that plays the demo `name` (its module imported now)."""
    module, function = DEMOS[name]
    play: Callable[..., Awaitable[int]] = getattr(importlib.import_module(module), function)
    return play


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            setup_logging("warning", "text")
            if args.pingone:
                return _run_async(demo("pingone")(keep=args.keep))
            return _run_async(demo("scim")(users=args.users, groups=args.groups, keep=args.keep))
        if args.command == "healthcheck":
            return probe_health(load_config(config_file=args.config, overrides={"listen": args.listen},
                                            need_endpoints=False))
        if args.command == "check":
            return check_command(args.config, _overrides(args))
        if args.command == "status":
            config = load_config(config_file=args.config, overrides={"state": args.state}, need_endpoints=False)
            if args.run is not None and not args.plot:
                return _stopped("--run N goes with --plot FILE (the run whose timeline to draw)", EXIT_USAGE,
                                json_report=args.output == "json")
            if args.plot:
                return _run_async(plot_run(config, args.plot, args.run, args.output), json_report=args.output == "json")
            return _run_async(show_status(config, args.output, show_ids=args.show_ids, notes=args.notes),
                              json_report=args.output == "json")
        if args.command == "approve":
            config = load_config(config_file=args.config, overrides={"state": args.state}, need_endpoints=False)
            return approve_command(config, args)
        if args.command == "config":
            config, origins = load_config_traced(config_file=args.config, overrides=_overrides(args),
                                                 override_origins=_override_origins(args), need_endpoints=False)
            print(effective_json(config, origins) if args.output == "json" else effective_text(config, origins))
            try:  # what `run` would still refuse (a missing side): shown after the settings, not instead
                validate(config)
            except ConfigError as exc:
                print(f"scim-replicator: {exc}", file=sys.stderr)
                return EXIT_USAGE
            return EXIT_OK
        config = load_config(config_file=args.config, overrides=_overrides(args))
    except ConfigError as exc:
        return _stopped(exc, EXIT_USAGE, json_report=getattr(args, "output", "text") == "json")
    setup_logging(config.log_level, config.log_format)
    json_report = args.output == "json"
    try:
        lock = contextlib.nullcontext() if args.dry_run and dry_run_needs_no_lock(config.state) else hold_state_lock(config.state)
        with lock:  # one run per state file, from before any network call to the end
            if args.once or args.full or args.dry_run:
                mode = FULL if args.full else INCREMENTAL
                return _run_async(run_once(config, mode=mode, dry_run=args.dry_run, output=args.output,
                                           show_ids=args.show_ids),
                                  json_report=json_report)
            return _run_async(run_forever(config), json_report=json_report)
    except StateFileError as exc:  # another run holds the state, or its lock file cannot be made
        return _stopped(exc, EXIT_FATAL, json_report=json_report)


def approve_command(config: Config, args: argparse.Namespace) -> int:
    """`approve` (or `approve --withdraw`) on an existing state file."""
    json_report = args.output == "json"
    if (stopped := _no_state(config, args.output)) is not None:
        return stopped

    async def command() -> int:
        if args.withdraw:
            await withdraw(config, args.output)
            return EXIT_OK
        why = await approve(config, args.up_to, args.members_up_to, args.expires_in, args.output)
        return EXIT_OK if why is None else _stopped(why, EXIT_USAGE, json_report=json_report)

    return _run_async(command(), json_report=json_report)


def effective_settings(config: Config, origins: dict[str, str]) -> list[tuple[str, Any, str]]:
    """(dotted path, value, origin) of every setting, secrets as *** (or None when not set)."""
    out = []
    for path, _annotation, _toml_only in iter_settings():
        value: Any = config
        for part in path.split("."):
            value = getattr(value, part)
        if is_secret(path) and value:
            value = "***"
        out.append((path, msgspec.to_builtins(value), origins.get(path, "default")))
    return out


def effective_text(config: Config, origins: dict[str, str]) -> str:
    """`path = value  # origin`, one setting a line (TOML values; `(not set)` for none)."""
    rows = [(path, "(not set)" if value is None else json.dumps(value, ensure_ascii=False), origin)
            for path, value, origin in effective_settings(config, origins)]
    width = max(len(f"{path} = {value}") for path, value, _ in rows)
    return "\n".join(f"{f'{path} = {value}':<{width}}  # {origin}" for path, value, origin in rows)


def effective_json(config: Config, origins: dict[str, str]) -> str:
    settings = {path: {"value": value, "origin": origin} for path, value, origin in effective_settings(config, origins)}
    return json.dumps({"settings": settings}, indent=2, ensure_ascii=False)


def _run_async(coro: Any, *, json_report: bool = False) -> int:
    runner: Callable[..., Any]
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency, but not on every platform
        runner = asyncio.run
    tune_collector()
    try:
        return int(runner(coro))
    except KeyboardInterrupt:
        return _stopped("interrupted", EXIT_INTERRUPTED, json_report=json_report)
    except (ReplicatorError, StateFileError) as exc:  # StateFileError: `status`, the daemon's first look at the state
        return _stopped(exc, EXIT_FATAL, json_report=json_report)


def _stopped(reason: object, code: int, *, json_report: bool) -> int:
    """Say why the run stopped: one line on stderr and, for `--output json`, a report on stdout too,
    so that a machine reading stdout does not find it empty."""
    print(f"scim-replicator: {reason}", file=sys.stderr)
    if json_report:
        print(json.dumps({"outcome": Outcome.FAILED, "error": str(reason), "exit_code": code}, ensure_ascii=False))
    return code


async def run_once(config: Config, *, mode: str, dry_run: bool, output: str = "text", show_ids: bool = False) -> int:
    """One cycle and its report. SIGTERM/SIGINT drain it as they drain the daemon (stop reading, let the
    calls in flight finish within `grace`, record the run `interrupted`, print the report): exit 130.
    A second signal, or the end of the grace, stops at once; the run is still recorded: exit 130."""
    run = await run_one_cycle(config, mode=mode, dry_run=dry_run)
    result, shutdown = run.result, run.shutdown
    if result is None:
        recorded = "" if dry_run else "; the state records the run as interrupted"
        print(f"scim-replicator: interrupted: stopped at once, calls in flight abandoned{recorded}", file=sys.stderr)
        if output == "json":
            print(json.dumps({"outcome": Outcome.INTERRUPTED, "error": "stopped at once", "exit_code": EXIT_INTERRUPTED,
                              **({"partial": report_json(run.partial)} if run.partial else {})},
                             indent=2, ensure_ascii=False))
        elif run.partial is not None:
            print(report_text(run.partial))  # what it had done when it stopped
        return EXIT_INTERRUPTED
    if output == "json":
        print(json.dumps(report_json(result), indent=2, ensure_ascii=False))
    else:
        print(report_text(result, show_ids=show_ids))
    if shutdown.requested:
        recorded = "" if dry_run else "; the state is saved and the next run checks the destination"
        print(f"scim-replicator: interrupted by {shutdown.signal_name or 'a stop request'}: calls in flight "
              f"finished ({counts_text(result)}){recorded}", file=sys.stderr)
        return EXIT_INTERRUPTED
    by_outcome: dict[str, int] = {Outcome.OK: EXIT_OK, Outcome.HELD: EXIT_HELD}
    return by_outcome.get(result.outcome, EXIT_PARTIAL)


async def run_forever(config: Config) -> int:
    """The daemon: cycles on an interval, health and metrics endpoint, graceful shutdown."""
    return await Daemon(config).run()


def probe_health(config: Config) -> int:
    """0 when the daemon on `listen` answers /healthz and does not say it is unhealthy (`unhealthy_after`
    cycles in a row could not reach a server or were refused credentials), else 1 (stdlib only: runs
    in HEALTHCHECK). Removals held by the guards: still 0, with a one-line warning."""
    import urllib.error
    import urllib.request

    host, _, port = config.listen.rpartition(":")
    host = "127.0.0.1" if host in ("0.0.0.0", "", "*") else host.strip("[]")
    url = f"http://{host}:{port}/healthz"
    where = f"listen {config.listen}" + (f" (probed at {host}:{port})" if f"{host}:{port}" != config.listen else "")
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            if response.status != 200:
                return 1
            body = response.read()
    except urllib.error.HTTPError as exc:
        print(f"scim-replicator: healthcheck: {where}: GET /healthz answered {exc.code}; is that this "
              "daemon's address?", file=sys.stderr)
        return 1
    except OSError as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        why = ("connection refused" if isinstance(reason, ConnectionRefusedError) else
               "no answer within 4 s" if isinstance(reason, TimeoutError) else
               getattr(reason, "strerror", None) or str(reason))
        print(f"scim-replicator: healthcheck: no daemon answers on {where}: {why}; is it running, with "
              "this listen?", file=sys.stderr)
        return 1
    try:
        facts = json.loads(body)
    except ValueError:
        facts = None
    if isinstance(facts, dict) and facts.get("healthy") is False:
        print(f"scim-replicator: unhealthy: {facts.get('unreachable_cycles')} cycles in a row could not reach a "
              f"server or were refused credentials (last error: {facts.get('last_error')})", file=sys.stderr)
        return 1
    if isinstance(facts, dict) and isinstance(held := facts.get("held"), dict):
        print(f"scim-replicator: healthcheck: warning: healthy, but held since cycle {held.get('since_cycle')} "
              f"({held.get('since')}): {held.get('reason')}; a restart does not lift it: check the source and the "
              f"scope; if the removals are intended, {lifting_words(held)}", file=sys.stderr)
    return EXIT_OK


def lifting_words(held: dict[str, Any]) -> str:
    """How to lift what a daemon's `held` says is held: `approve` while it runs on, when removals are
    counted (a scope that matches nothing counts none: only the flag lifts it), or a run with the flags."""
    once = f"run once with {lifting_flags(held)} (stop the daemon first: it holds the state's lock)"
    counted = any(isinstance(held.get(key), int) and held[key] > 0 for key in ("removals_held", "member_removals_held"))
    if not counted:
        return once
    return ("approve them with `scim-replicator approve` (the daemon's next cycle carries out as many as its "
            f"last one held), or {once}")


def lifting_flags(held: dict[str, Any]) -> str:
    """The flags that lift what a daemon's `held` says is held: each guard has its own."""
    flags = [flag for flag, count in (("--allow-mass-delete", held.get("removals_held")),
                                      ("--allow-member-removals", held.get("member_removals_held")))
             if isinstance(count, int) and count > 0]
    return " ".join(flags) or "--allow-mass-delete"


def _no_state(config: Config, output: str) -> int | None:
    if os.path.exists(config.state):
        return None
    return _stopped(f"state file {config.state} does not exist (set --state)", EXIT_USAGE, json_report=output == "json")


async def show_status(config: Config, output: str, *, show_ids: bool = False, notes: bool = False) -> int:
    if (stopped := _no_state(config, output)) is not None:
        return stopped
    status = await read_status(config.state)
    if output == "json":
        print(json.dumps(status_json(status), indent=2, default=str))
        return EXIT_OK
    print(status_text(status, show_ids=show_ids, notes=notes))
    return EXIT_OK


async def plot_run(config: Config, target: str, run_id: int | None, output: str) -> int:
    """`status --plot FILE`: draw a run's timeline (the last one that ended, or `--run N`)."""
    if (stopped := _no_state(config, output)) is not None:
        return stopped
    run, rows = await read_timeline(config.state, run_id)
    problem = plot_problem(config.state, run_id, run, rows)
    if problem is not None or run is None or rows is None:
        return _stopped(problem, EXIT_USAGE, json_report=output == "json")
    try:
        draw_timeline(series(rows), target, title=plot_title(run))
    except PlottingUnavailable as exc:
        return _stopped(exc, EXIT_MISSING_EXTRA, json_report=output == "json")
    except OSError as exc:
        return _stopped(f"cannot write the plot to {target}: {exc.strerror or exc}", EXIT_USAGE,
                        json_report=output == "json")
    if output == "json":
        print(json.dumps({"plot": target, "run": run.id, "samples": len(rows)}))
    else:
        print(f"{plot_title(run)}: timeline of {len(rows)} samples written to {target}")
    return EXIT_OK
