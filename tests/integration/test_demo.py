"""The built-in demos, as a newcomer runs them: `scim-replicator demo` (two in-memory SCIM servers) and
`scim-replicator demo --pingone` (PingOne's environment-to-environment tutorial on two emulated
environments) end with their own equality check passed and a last cycle that wrote nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(("flags", "ending"), [
    ([], "destination equals source"),
    (["--users", "200"], "destination equals source: 199 users"),
    (["--pingone"], "destination equals the scope: 5 users (1 disabled, having left the group)"),
], ids=["scim", "scim-200", "pingone"])
def test_the_demo_runs_and_its_check_passes(flags: list[str], ending: str) -> None:
    """The demo exits 0, every cycle of its story is ok (no reference left naming a deleted user), and its
    last line says the copy is equal and that the last cycle wrote 0 times."""
    done = subprocess.run([sys.executable, "-m", "replicator", "demo", *flags], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    cycles = [line for line in done.stdout.splitlines() if " cycle " in line and " in " in line]
    assert len(cycles) >= 3 and all(" cycle ok in " in line for line in cycles), cycles
    assert "references" not in done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith(ending) and last.endswith("wrote 0 times"), last
