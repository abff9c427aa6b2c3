"""The command line: `run` (one cycle with --once/--full, else a loop), `config`, `demo`, `status`; exit codes.

Exit codes:
  0  the cycle completed and every resource is replicated
  1  the cycle completed, but some resources failed or a read was incomplete (see the log / `status`)
  2  bad usage or configuration (nothing was contacted)
  3  the cycle could not run: authentication refused, server unreachable, state unusable or held by
     another run, the daemon's `listen` address unusable
  4  removals were held by the mass-delete guard (rerun with --allow-mass-delete if intended)
  130 interrupted by SIGTERM/SIGINT: calls in flight finished (within `grace`), the report was printed and
      the run recorded `interrupted`; a second signal stops at once (still recorded)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import difflib
import json
import os
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import msgspec

from replicator import __version__
from replicator.app import read_status, run_one_cycle
from replicator.check import check_command
from replicator.config import Config, flag_name, iter_leaves, load_config, load_config_traced
from replicator.config_origins import choices
from replicator.cycle import FULL, INCREMENTAL
from replicator.daemon import Daemon
from replicator.demo import run_demo
from replicator.errors import ConfigError, ReplicatorError
from replicator.exit_codes import ExitCode
from replicator.logs import setup_logging
from replicator.pipeline.outcome import Outcome
from replicator.report import counts_text, report_json, report_text, status_json, status_text
from replicator.settings_help import default_of, env_names, help_text, is_secret, iter_settings, value_text
from state.errors import StateFileError
from state.lock import hold_state_lock

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_FATAL, EXIT_HELD, EXIT_INTERRUPTED = (
    ExitCode.OK, ExitCode.PARTIAL, ExitCode.USAGE, ExitCode.FATAL, ExitCode.HELD, ExitCode.INTERRUPTED)


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _number(kind: type) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    return convert


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per configuration leaf: `source.url` is --source-url."""
    group = parser.add_argument_group("settings (also from --config TOML and SCIMREP_* variables)")
    for path, annotation in iter_leaves():
        kwargs: dict[str, Any] = {"dest": "setting:" + path, "default": None, "metavar": path.rsplit(".", 1)[-1].upper()}
        base = _base_type(annotation)
        if base is bool:
            kwargs["type"] = _bool
            kwargs["metavar"] = "BOOL"
        elif base in (int, float):
            kwargs["type"] = _number(base)
        elif typing.get_origin(base) is typing.Literal:
            kwargs["choices"] = typing.get_args(base)
            kwargs.pop("metavar")
        group.add_argument(flag_name(path), help=flag_help(path, annotation), **kwargs)
    group.add_argument("--insecure", action="store_true", help="do not verify TLS certificates (both sides)")
    group.add_argument("--allow-mass-delete", action="store_true",
                       help="let this run remove more than the mass-delete guard allows")
    group.add_argument("--assume-empty-destination", action="store_true",
                       help="let this run create objects that a destination without search and without a "
                            "complete listing cannot show absent (only for an empty destination)")


def flag_help(path: str, annotation: Any) -> str:
    """A setting flag's help: what it means, its choices, its default and its variable (from the schema)."""
    listed = f"; one of {', '.join(choices(annotation))}" if choices(annotation) else ""
    variables = " or ".join(env_names(path))
    text = f"{help_text(path)}{listed} (default: {value_text(default_of(path))}; env {variables})"
    return text.replace("%", "%%")


class _OneLineErrors(argparse.ArgumentParser):
    """Usage mistakes as one line and a hint, not the whole usage: exit 2 as every bad usage."""

    def parse_known_args(  # type: ignore[override]  # (typeshed's overloads; this one only remembers argv)
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> Any:
        self.argv = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> typing.NoReturn:
        parser = self._command_parser()
        unknown = message.startswith("unrecognized arguments: ")
        if unknown:
            message = _unknown_argument(message.split(": ", 1)[1].split(), parser)
        self.exit(EXIT_USAGE, f"scim-replicator: error: {message}; see {parser.prog} --help\n")

    def _command_parser(self) -> argparse.ArgumentParser:
        """The subcommand's parser when the mistake is in its arguments (the top-level one says so)."""
        commands = next((a for a in self._actions if isinstance(a, argparse._SubParsersAction)), None)
        if commands is not None:
            for word in getattr(self, "argv", []):
                if word in commands.choices:
                    found: argparse.ArgumentParser = commands.choices[word]
                    return found
        return self


def _unknown_argument(words: list[str], parser: argparse.ArgumentParser) -> str:
    flag = next((w.split("=", 1)[0] for w in words if w.startswith("-")), None)
    if flag is None:
        return f"unexpected argument {words[0]}"
    likely = difflib.get_close_matches(flag, list(parser._option_string_actions), n=1)
    return f"unknown flag {flag}" + (f" (did you mean {likely[0]}?)" if likely else "")


def _base_type(annotation: Any) -> Any:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return annotation


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrors(
        prog="scim-replicator",
        description="Replicate users, groups and memberships from a source SCIM 2.0 server to a destination.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="replicate: one cycle (--once, --full) or continuously")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="run one incremental cycle and exit")
    mode.add_argument("--full", action="store_true",
                      help="one full cycle: also read the destination and repair drift there, then exit")
    run.add_argument("--dry-run", action="store_true", help="print the plan; write nothing")
    run.add_argument("--output", choices=("text", "json"), default="text", help="format of the report on stdout")
    run.add_argument("--config", metavar="FILE", help="TOML configuration file")
    _add_setting_flags(run)

    config = commands.add_parser("config", help="show the effective configuration and where each value came "
                                 "from (secrets hidden); contacts nothing")
    config.add_argument("--config", metavar="FILE", help="TOML configuration file")
    config.add_argument("--output", choices=("text", "json"), default="text", help="format on stdout")
    _add_setting_flags(config)

    demo = commands.add_parser("demo", help="replicate sample data between two local SCIM servers")
    demo.add_argument("--users", type=int, default=25, help="sample users to seed (default 25)")
    demo.add_argument("--groups", type=int, default=5,
                      help="sample groups to seed (default 5), plus one group nested in another")

    health = commands.add_parser("healthcheck", help="probe the running daemon's /healthz (for container HEALTHCHECK)")
    health.add_argument("--config", metavar="FILE")
    health.add_argument("--listen", metavar="HOST:PORT", help="the daemon's address (default from config)")

    status = commands.add_parser("status", help="show the last runs and failed resources from the state file")
    status.add_argument("--config", metavar="FILE")
    status.add_argument("--state", help="state file (default from config)")
    status.add_argument("--output", choices=("text", "json"), default="text")
    _add_check_command(commands)
    return parser


def _add_check_command(commands: Any) -> None:
    """`check`: the configuration, then both sides reached and read (one user, one group); writes nothing."""
    check = commands.add_parser("check", help="check the configuration and that both sides answer as SCIM and "
                                              "can be read (writes nothing)")
    check.add_argument("--config", metavar="FILE", help="TOML configuration file")
    _add_setting_flags(check)


def _override_origins(args: argparse.Namespace) -> dict[str, str]:
    """Where the flags' settings came from, for those not set by their own flag."""
    out = {}
    if getattr(args, "insecure", False):
        out["source.verify_tls"] = out["destination.verify_tls"] = "flag --insecure"
    if getattr(args, "allow_mass_delete", False):
        out["sync.allow_mass_delete"] = "flag --allow-mass-delete"
    if getattr(args, "assume_empty_destination", False):
        out["sync.assume_empty_destination"] = "flag --assume-empty-destination"
    return out


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out = {key.split(":", 1)[1]: value for key, value in vars(args).items() if key.startswith("setting:")}
    if getattr(args, "insecure", False):
        out["source.verify_tls"] = out["destination.verify_tls"] = False
    if getattr(args, "allow_mass_delete", False):
        out["sync.allow_mass_delete"] = True
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


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            setup_logging("warning", "text")
            return _run_async(run_demo(users=args.users, groups=args.groups))
        if args.command == "healthcheck":
            return probe_health(load_config(config_file=args.config, overrides={"listen": args.listen},
                                            need_endpoints=False))
        if args.command == "check":
            return check_command(args.config, _overrides(args))
        if args.command == "status":
            config = load_config(config_file=args.config, overrides={"state": args.state}, need_endpoints=False)
            return _run_async(show_status(config, args.output), json_report=args.output == "json")
        if args.command == "config":
            config, origins = load_config_traced(config_file=args.config, overrides=_overrides(args),
                                                 override_origins=_override_origins(args))
            print(effective_json(config, origins) if args.output == "json" else effective_text(config, origins))
            return EXIT_OK
        config = load_config(config_file=args.config, overrides=_overrides(args))
    except ConfigError as exc:
        return _stopped(exc, EXIT_USAGE, json_report=getattr(args, "output", "text") == "json")
    setup_logging(config.log_level, config.log_format)
    json_report = args.output == "json"
    try:
        with hold_state_lock(config.state):  # one run per state file, from before any network call to the end
            if args.once or args.full or args.dry_run:
                mode = FULL if args.full else INCREMENTAL
                return _run_async(run_once(config, mode=mode, dry_run=args.dry_run, output=args.output),
                                  json_report=json_report)
            return _run_async(run_forever(config), json_report=json_report)
    except StateFileError as exc:  # another run holds the state, or its lock file cannot be made
        return _stopped(exc, EXIT_FATAL, json_report=json_report)


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


async def run_once(config: Config, *, mode: str, dry_run: bool, output: str = "text") -> int:
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
        print(report_text(result))
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
    in HEALTHCHECK)."""
    import urllib.request

    host, _, port = config.listen.rpartition(":")
    host = "127.0.0.1" if host in ("0.0.0.0", "", "*") else host.strip("[]")
    url = f"http://{host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            if response.status != 200:
                return 1
            body = response.read()
    except OSError as exc:
        print(f"scim-replicator: health probe of {url} failed: {exc}", file=sys.stderr)
        return 1
    try:
        facts = json.loads(body)
    except ValueError:
        facts = None
    if isinstance(facts, dict) and facts.get("healthy") is False:
        print(f"scim-replicator: unhealthy: {facts.get('unreachable_cycles')} cycles in a row could not reach a "
              f"server or were refused credentials (last error: {facts.get('last_error')})", file=sys.stderr)
        return 1
    return EXIT_OK


async def show_status(config: Config, output: str) -> int:
    if not os.path.exists(config.state):
        return _stopped(f"state file {config.state} does not exist (set --state)", EXIT_USAGE,
                        json_report=output == "json")
    status = await read_status(config.state)
    if output == "json":
        print(json.dumps(status_json(status), indent=2, default=str))
        return EXIT_OK
    print(status_text(status))
    return EXIT_OK
