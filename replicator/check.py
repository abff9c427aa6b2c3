"""`scim-replicator check`: the configuration, then each side reached and read, without writing anything.

One line per check, `ok` or `FAILED` and the reason: the configuration; each side's base URL
(ServiceProviderConfig, as every run checks it: `replicator.scim.probe`); each replicated kind read
with count=1 (Users, and Groups when groups replicate or the scope needs them). Nothing is written to
either server, and the state file is neither opened nor locked. The exit code is 0 when every check
passed, else the code of the first failure (2 for the configuration, 3 for a side).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import msgspec
from yarl import URL

from replicator.config import Config, load_config
from replicator.errors import ConfigError, ReplicatorError
from replicator.exit_codes import ExitCode
from replicator.logs import setup_logging
from replicator.pipeline.urls import shown_url
from replicator.scim.client import ENDPOINTS, client_for
from replicator.scim.probe import probe_base, probe_endpoint
from replicator.scim.wire import decode_list

OK, FAILED = "ok", "FAILED"


def check_command(config_file: str | None, overrides: Mapping[str, Any], out: TextIO = sys.stdout) -> int:
    """Load the configuration and run every check; the exit code."""
    try:
        config = load_config(config_file=config_file, overrides=overrides)
    except ConfigError as exc:
        _line(out, FAILED, f"config: {exc}")
        return ExitCode.USAGE
    setup_logging(config.log_level, config.log_format)
    return asyncio.run(run_checks(config, out))


def kinds_read(config: Config, side: str) -> tuple[str, ...]:
    """The kinds a run reads (source) or writes (destination) on `side`."""
    groups = config.sync.groups or (side == "source" and bool(config.scope.user_groups))
    return ("User", "Group") if groups else ("User",)


async def run_checks(config: Config, out: TextIO) -> int:
    """The checks of a valid configuration, printed to `out`; 0, or the code of the first failure."""
    _line(out, OK, f"config: source {shown_url_of(config.source.url)}, destination "
                   f"{shown_url_of(config.destination.url)}")
    failures: list[int] = []
    for side in ("source", "destination"):
        if not await _check_side(config, side, out):
            failures.append(ExitCode.FATAL)
    return failures[0] if failures else ExitCode.OK


async def _check_side(config: Config, side: str, out: TextIO) -> bool:
    """The base URL and each kind of one side; False at the first failure (the rest of it is skipped)."""
    async with client_for(getattr(config, side), side, max_connections=2) as client:
        try:
            finding, _ = await probe_base(client.transport, client.credentials)
            if not finding.ok:
                _line(out, FAILED, finding.message)
                return False
            _line(out, OK, finding.message)
            for kind in kinds_read(config, side):
                finding, body = await probe_endpoint(client.transport, client.credentials, kind, ENDPOINTS[kind])
                if not finding.ok:
                    _line(out, FAILED, finding.message)
                    return False
                _line(out, OK, f"{finding.message}{_how_many(body)} (read only: check writes nothing)")
        except ReplicatorError as exc:
            _line(out, FAILED, str(exc))
            return False
    return True


def _how_many(body: bytes | bytearray) -> str:
    try:
        page = decode_list(body)
    except msgspec.DecodeError:
        return ""
    total = page.total_results
    return f": {len(page.Resources)} read" + (f" of {total}" if total is not None else "")


def shown_url_of(url: str) -> str:
    return shown_url(URL(url))


def _line(out: TextIO, verdict: str, text: str) -> None:
    print(f"{verdict:<7} {text}", file=out, flush=True)
