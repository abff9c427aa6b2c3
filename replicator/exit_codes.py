"""The process's exit codes (`ExitCode`): the numbers README and `replicator.cli` document, shared by the
command line and the daemon. Plain values; imports nothing of the project."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What the process exits with; the value is the number a shell sees (and `--output json` prints as
    `exit_code`)."""

    OK = 0  # the cycle completed and every resource is replicated
    PARTIAL = 1  # completed, but some resources failed or a read was incomplete
    USAGE = 2  # bad usage or configuration: nothing was contacted
    FATAL = 3  # the cycle could not run (credentials, unreachable, state, listen address)
    HELD = 4  # removals were held by a guard
    MISSING_EXTRA = 5  # an optional feature's package is not installed (`status --plot`: the plot extra)
    INTERRUPTED = 130  # stopped by SIGTERM/SIGINT
