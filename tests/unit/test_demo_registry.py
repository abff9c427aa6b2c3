"""The demos are loaded when one is asked for (replicator.cli.DEMOS, issue 18): a run's imports stay free
of the in-memory servers and the PingOne emulator, and the registry's edges, which the layout checks do
not see as imports, cannot close an import cycle through the command line."""

from __future__ import annotations

import inspect
import subprocess
import sys

from replicator import cli
from tests.unit.test_layout import ROOT, import_cycles, import_graph, project_modules


def test_importing_the_command_line_loads_no_demo_and_no_test_server() -> None:
    """`import replicator.cli` (every run's start) imports neither a demo nor replicator.testing."""
    probe = ("import sys, replicator.cli; "
             "print(sorted(m for m in sys.modules if m.startswith(('replicator.testing', 'replicator.demo'))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout


def test_every_demo_resolves_to_a_coroutine_function_and_closes_no_cycle() -> None:
    """Each registered demo names a coroutine function of its module; with the registry's edges added to
    the import graph (cli -> each demo module), no import cycle runs through the command line."""
    for name in cli.DEMOS:
        assert inspect.iscoroutinefunction(cli.demo(name)), name
    graph = import_graph(project_modules(ROOT))
    graph["replicator.cli"] |= {module for module, _ in cli.DEMOS.values()}
    assert not [group for group in import_cycles(graph) if "replicator.cli" in group]
