"""Logging set-up: JSON lines when stderr is not a terminal, readable text when it is.

`log_level` is the level of the replicator's own loggers (`replicator.*`, `state.*`). The libraries'
loggers (aiosqlite, asyncio, aiohttp, ...) stay at WARNING (ERROR when `log_level` is `error`), so
`debug` shows what the replicator does rather than every SQLite call, unless the environment
variable `SCIM_REPLICATOR_LIBRARY_LOG_LEVEL` names another level for them (`debug` opens everything).
`EventsAtDebug` moves chosen INFO records (by their `event` field) down to DEBUG, for the daemon.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping

OWN_LOGGERS = ("replicator", "state")
LIBRARY_LEVEL_VARIABLE = "SCIM_REPLICATOR_LIBRARY_LOG_LEVEL"
LEVELS = ("debug", "info", "warning", "error")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class EventsAtDebug(logging.Filter):
    """A logger filter that writes the INFO records whose `fields` name one of `events` (`event`) at
    DEBUG: kept, relabelled, when the logger is open at DEBUG, else dropped (the logger's level check
    has already let them through as INFO)."""

    def __init__(self, *events: str) -> None:
        super().__init__()
        self.events = frozenset(events)

    def filter(self, record: logging.LogRecord) -> bool:
        fields = getattr(record, "fields", None)
        if record.levelno != logging.INFO or not isinstance(fields, dict) or fields.get("event") not in self.events:
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def logger_levels(level: str, library_level: str | None = None) -> dict[str, int]:
    """The level of each logger the set-up touches: the replicator's own at `level`, the root ("":
    every library's logger inherits it) at `library_level`, by default at `level` but never below
    WARNING. Both are names from LEVELS."""
    names = logging.getLevelNamesMapping()
    own = names[level.upper()]
    libraries = max(own, logging.WARNING) if library_level is None else names[library_level.upper()]
    return {"": libraries, **dict.fromkeys(OWN_LOGGERS, own)}


def setup_logging(level: str = "info", fmt: str = "auto", environ: Mapping[str, str] = os.environ) -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    logging.getLogger().handlers[:] = [handler]
    library_level = environ.get(LIBRARY_LEVEL_VARIABLE, "").strip().lower() or None
    unknown = library_level is not None and library_level not in LEVELS
    for name, value in logger_levels(level, None if unknown else library_level).items():
        logging.getLogger(name).setLevel(value)
    if unknown:
        logging.getLogger("replicator").warning("%s=%r is not one of %s: the libraries' loggers keep their default level",
                                                LIBRARY_LEVEL_VARIABLE, library_level, ", ".join(LEVELS))
