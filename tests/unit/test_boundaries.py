"""The house keeps its rooms: pure decisions stay pure, HTTP stays at its seams, state knows no replicator."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from replicator.pipeline.outcome import cycle_outcome

ROOT = Path(__file__).resolve().parents[2]
# modules that would bring I/O, concurrency or a clock into a pure decision
IMPURE = {"aiohttp", "aiosqlite", "anyio", "asyncio", "sqlite3", "socket", "time", "os", "subprocess", "uvloop",
          "replicator.state", "replicator.cycle", "replicator.scim.client", "replicator.scim.transport", "replicator.scim.auth", "replicator.daemon",
          "replicator.app", "replicator.testing"}
# where aiohttp may be imported: the SCIM transport and auth, its error translation, the daemon's endpoint,
# the in-memory server
AIOHTTP_ALLOWED = {"replicator/scim/transport.py", "replicator/scim/auth.py", "replicator/scim/status.py",
                   "replicator/daemon.py"}


def imported(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def parsed(folder: str) -> dict[str, ast.AST]:
    return {str(path.relative_to(ROOT)): ast.parse(path.read_text(), str(path))
            for path in sorted((ROOT / folder).rglob("*.py"))}


def touches(names: set[str], forbidden: set[str]) -> set[str]:
    return {name for name in names if any(name == f or name.startswith(f + ".") for f in forbidden)}


def test_pipeline_has_no_await_and_imports_no_io() -> None:
    """replicator/pipeline/ holds pure decisions: no async code, no await, no I/O or clock module."""
    trees = parsed("replicator/pipeline")
    assert len(trees) >= 10
    problems = []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Await | ast.AsyncFunctionDef | ast.AsyncFor | ast.AsyncWith):
                problems.append(f"{path}:{node.lineno}: {type(node).__name__}")
        problems += [f"{path}: imports {name}" for name in sorted(touches(imported(tree), IMPURE))]
    assert not problems, problems


def test_aiohttp_stays_at_its_seams() -> None:
    """aiohttp is imported only by the SCIM transport, auth and error translation, the daemon and testing/."""
    found = [path for folder in ("replicator",) for path, tree in parsed(folder).items()
             if touches(imported(tree), {"aiohttp"}) and path not in AIOHTTP_ALLOWED
             and not path.startswith("replicator/testing/")]
    assert not found, found


# what replicator/state/ may use beyond itself: leaves that know JSON, not replication (they import
# nothing of replicator)
STATE_MAY_USE = {"replicator.deterministic_json", "replicator.pipeline.member"}


def test_state_never_imports_replicator() -> None:
    """replicator/state/ knows rows, not replication: it imports nothing of replicator but itself (and the
    leaves of STATE_MAY_USE, which import nothing of replicator at all)."""
    found = [f"{path}: {sorted(names)}" for path, tree in parsed("replicator/state").items()
             if (names := touches(imported(tree), {"replicator"}) - touches(imported(tree), {"replicator.state"})
                 - STATE_MAY_USE)]
    assert not found, found
    leaves = {name: ast.parse((ROOT / (name.replace(".", "/") + ".py")).read_text()) for name in STATE_MAY_USE}
    assert not [name for name, tree in leaves.items() if touches(imported(tree), {"replicator"})]


def test_the_checks_see_what_they_forbid() -> None:
    """The walkers find an await, an async def and a forbidden import in code made up for the purpose."""
    tree = ast.parse("import asyncio\nfrom replicator.state.store import X\nasync def f():\n    await g()\n")
    assert touches(imported(tree), IMPURE) == {"asyncio", "replicator.state.store"}
    kinds = {type(node).__name__ for node in ast.walk(tree)}
    assert {"Await", "AsyncFunctionDef"} <= kinds


@pytest.mark.parametrize(("outcome", "flags", "expected"), [
    ("ok", {}, "ok"),
    ("ok", {"stopped": True, "held": True}, "interrupted"),
    ("partial", {"stopped": True}, "interrupted"),
    ("ok", {"held": True, "failed": True}, "held"),
    ("ok", {"failed": True}, "partial"),
    ("ok", {"backing_off": True}, "partial"),
    ("partial", {"held": True}, "partial"),
])
def test_cycle_outcome(outcome: str, flags: dict[str, bool], expected: str) -> None:
    """A stop wins, then a hold, then failures; an incomplete read's partial stays partial."""
    defaults = {"stopped": False, "held": False, "failed": False, "backing_off": False}
    assert cycle_outcome(outcome, **{**defaults, **flags}) == expected
