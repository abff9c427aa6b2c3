"""The command line's grammar: `build_parser` (the subcommands and their flags, one flag per setting
with its help from the schema) and usage mistakes as one line and a hint (exit 2). Parsing only: what
each command does is `replicator.cli`'s."""

from __future__ import annotations

import argparse
import difflib
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

from replicator import __version__
from replicator.config import flag_name, iter_leaves
from replicator.config_origins import choices
from replicator.exit_codes import ExitCode
from replicator.pipeline.approvals import DEFAULT_STANDS_MINUTES
from replicator.settings_help import default_of, env_names, help_text, value_text

# the smallest directory the demo's story fits (replicator.demo; here, so that parsing a command line does
# not import the demo's servers): it edits the 2nd to 6th users and keeps untouched ones beside them,
# and its nested group nests the second group
MIN_USERS, MIN_GROUPS = 8, 2


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


def _at_least(minimum: int) -> Callable[[str], int]:
    """An integer flag that refuses values below `minimum` (argparse names the flag in the error)."""
    def convert(text: str) -> int:
        value = int(_number(int)(text))
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected at least {minimum}, got {value}")
        return value
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
                       help="let this run remove more users and groups than the mass-delete guard allows")
    group.add_argument("--allow-member-removals", action="store_true",
                       help="let this run remove more group members than the membership guard allows")
    group.add_argument("--assume-empty-destination", action="store_true",
                       help="let this run create objects that a destination without search and without a "
                            "complete listing cannot show absent (only for an empty destination)")


def flag_help(path: str, annotation: Any) -> str:
    """A setting flag's help: what it means, its choices, its default and its variable (from the schema)."""
    listed = f"; one of {', '.join(choices(annotation))}" if choices(annotation) else ""
    variables = " or ".join(env_names(path))
    text = f"{help_text(path)}{listed} (default: {value_text(default_of(path))}; env {variables})"
    return text.replace("%", "%%")


class _DemoSize(argparse.Action):
    """--users / --groups of `demo`: the value, and the flag noted as given (`demo_flags_problem`)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        namespace.demo_sizes_given = [*getattr(namespace, "demo_sizes_given", []), option_string]


def demo_flags_problem(namespace: argparse.Namespace) -> str | None:
    """`demo --pingone` with --users or --groups: its story is PingOne's tutorial on its own six users and
    one group, which sizes do not fit; refused rather than ignored."""
    given = list(dict.fromkeys(getattr(namespace, "demo_sizes_given", [])))  # as given, once each
    if not given or not getattr(namespace, "pingone", False):
        return None
    return (f"demo --pingone takes no {' or '.join(given)}: it plays PingOne's tutorial on its own six users and "
            "one group (--users and --groups size the SCIM demo)")


class _OneLineErrors(argparse.ArgumentParser):
    """Usage mistakes as one line and a hint, not the whole usage: exit 2 as every bad usage."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # a flag is taken whole: `run --allow` must not lift the mass-delete guard as --allow-mass-delete
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_known_args(  # type: ignore[override]  # (typeshed's overloads; this one only remembers argv)
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> Any:
        self.argv = list(sys.argv[1:] if args is None else args)
        parsed = super().parse_known_args(args, namespace)
        if problem := demo_flags_problem(parsed[0]):
            self.error(problem)
        return parsed

    def error(self, message: str) -> typing.NoReturn:
        parser = self._command_parser()
        unknown = message.startswith("unrecognized arguments: ")
        if unknown:
            message = _unknown_argument(message.split(": ", 1)[1].split(), parser)
        elif message.startswith("argument command: invalid choice: "):
            message = _unknown_command(message, parser)
        self.exit(ExitCode.USAGE, f"scim-replicator: error: {message}; see {parser.prog} --help\n")

    def _command_parser(self) -> argparse.ArgumentParser:
        """The subcommand's parser when the mistake is in its arguments (the top-level one says so)."""
        commands = next((a for a in self._actions if isinstance(a, argparse._SubParsersAction)), None)
        if commands is not None:
            for word in getattr(self, "argv", []):
                if word in commands.choices:
                    found: argparse.ArgumentParser = commands.choices[word]
                    return found
        return self


def _unknown_command(message: str, parser: argparse.ArgumentParser) -> str:
    commands = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    word = message.split("invalid choice: ", 1)[1].split(" ", 1)[0].strip("'\"")
    likely = difflib.get_close_matches(word, list(commands.choices) if commands else [], n=1)
    return message + (f" (did you mean {likely[0]}?)" if likely else "")


def _unknown_argument(words: list[str], parser: argparse.ArgumentParser) -> str:
    flag = next((w.split("=", 1)[0] for w in words if w.startswith("-")), None)
    if flag is None:
        return f"unexpected argument {words[0]}"
    options = list(parser._option_string_actions)
    likely = sorted(o for o in options if o.startswith(flag))[:1] or difflib.get_close_matches(flag, options, n=1)
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
    run.add_argument("--show-ids", action="store_true",
                     help="in the text report, show each object's id beside its name (destination id, else source id)")
    run.add_argument("--output", choices=("text", "json"), default="text", help="format of the report on stdout")
    run.add_argument("--config", metavar="FILE", help="TOML configuration file")
    _add_setting_flags(run)

    config = commands.add_parser("config", help="show the effective configuration and where each value came "
                                 "from (secrets hidden); contacts nothing")
    config.add_argument("--config", metavar="FILE", help="TOML configuration file")
    config.add_argument("--output", choices=("text", "json"), default="text", help="format on stdout")
    _add_setting_flags(config)

    demo = commands.add_parser("demo", help="replicate sample data between two local SCIM servers")
    demo.add_argument("--users", type=_at_least(MIN_USERS), default=25, action=_DemoSize,
                      help=f"sample users to seed (default 25, at least {MIN_USERS}; not with --pingone)")
    demo.add_argument("--groups", type=_at_least(MIN_GROUPS), default=5, action=_DemoSize,
                      help=f"sample groups to seed (default 5, at least {MIN_GROUPS}), plus one group nested in "
                           "another (not with --pingone)")
    demo.add_argument("--pingone", action="store_true",
                      help="play PingOne's environment-to-environment tutorial on two emulated PingOne environments")
    demo.add_argument("--keep", action="store_true",
                      help="after the story, keep both servers running (their URLs and bearer tokens, or with "
                           "--pingone a configuration file, printed) until Ctrl-C or SIGTERM")

    health = commands.add_parser("healthcheck", help="probe the running daemon's /healthz (for container HEALTHCHECK)")
    health.add_argument("--config", metavar="FILE")
    health.add_argument("--listen", metavar="HOST:PORT", help="the daemon's address (default from config)")

    status = commands.add_parser("status", help="show the last runs and failed resources from the state file")
    status.add_argument("--config", metavar="FILE")
    status.add_argument("--state", help="state file (default from config)")
    status.add_argument("--output", choices=("text", "json"), default="text")
    status.add_argument("--show-ids", action="store_true", help="show each failed object's source id beside its name")
    status.add_argument("--notes", action="store_true",
                        help="show each run's notes in full, a line each (else a run's line sums them up)")
    status.add_argument("--plot", metavar="FILE.png",
                        help="draw a run's timeline (writes/s, calls in flight, 429 answers, pauses) to this file "
                             "(needs the plot extra: pip install 'scim-replicator[plot]')")
    status.add_argument("--run", type=_at_least(1), metavar="N",
                        help="with --plot: the run to draw (default: the last one that ended)")
    _add_check_command(commands)
    _add_approve_command(commands)
    return parser


def _add_approve_command(commands: Any) -> None:
    """`approve`: removals the guards held let through by the next cycle (a daemon's, or a run's)."""
    approve = commands.add_parser(
        "approve", help="let the next cycle carry out removals the guards hold, up to a number (one cycle; for "
                        "a daemon that runs on, instead of --allow-mass-delete / --allow-member-removals)")
    approve.add_argument("--config", metavar="FILE")
    approve.add_argument("--state", help="state file (default from config)")
    approve.add_argument("--up-to", type=_at_least(1), metavar="N",
                         help="removals approved: up to N users and up to N groups (default: as many as the last "
                              "run held, unless --members-up-to is given)")
    approve.add_argument("--members-up-to", type=_at_least(1), metavar="M",
                         help="member removals approved, of each group (default: as many as the last run held, "
                              "unless --up-to is given)")
    approve.add_argument("--expires-in", type=_at_least(1), metavar="MINUTES", default=DEFAULT_STANDS_MINUTES,
                         help=f"minutes the approval waits for a cycle to start (default {DEFAULT_STANDS_MINUTES})")
    approve.add_argument("--withdraw", action="store_true", help="withdraw the approval standing (if any) instead")
    approve.add_argument("--output", choices=("text", "json"), default="text")


def _add_check_command(commands: Any) -> None:
    """`check`: the configuration, then both sides reached and read (one user, one group); writes nothing."""
    check = commands.add_parser("check", help="check the configuration and that both sides answer as SCIM and "
                                              "can be read (writes nothing)")
    check.add_argument("--config", metavar="FILE", help="TOML configuration file")
    _add_setting_flags(check)
