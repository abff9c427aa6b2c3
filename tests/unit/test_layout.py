"""The package's layout: no import cycle through replicator's top-level modules, and the modules that
compose a run import the project at their top, where a cycle cannot hide inside a function."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("replicator",)
COMPOSITION = ("replicator.cli", "replicator.daemon", "replicator.demo", "replicator.app", "replicator.report",
               "replicator.shutdown")


@dataclass(frozen=True)
class Import:
    """One import statement of a module: the project modules it loads, and whether it runs in a function."""

    line: int
    loads: tuple[str, ...]
    in_function: bool


def project_modules(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every module of `packages` under `root`."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imports_of(name: str, modules: dict[str, Path]) -> list[Import]:
    """The imports that run when `name` is imported or its functions are called (not those under
    `if TYPE_CHECKING:`), each with the project modules it loads."""
    found: list[Import] = []
    is_package = modules[name].name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.orelse:
                visit(statement, in_function)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            targets = _targets(node, package, modules)
            loads = {loaded for target in targets for loaded in _loaded(target, name, modules)}
            if loads:
                found.append(Import(node.lineno, tuple(sorted(loads)), in_function))
            return
        inside = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(ast.parse(modules[name].read_text(), str(modules[name])), False)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _targets(node: ast.Import | ast.ImportFrom, package: str, modules: dict[str, Path]) -> list[str]:
    """The dotted names an import statement names: `from a import b` is `a.b` when that is a module."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]


def _loaded(target: str, importer: str, modules: dict[str, Path]) -> Iterator[str]:
    """The project modules importing `target` runs: it and its packages, except the packages the
    importer is itself inside (those are already running)."""
    parts = target.split(".")
    for end in range(1, len(parts) + 1):
        candidate = ".".join(parts[:end])
        if candidate in modules and candidate != importer and not importer.startswith(candidate + "."):
            yield candidate


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    return {name: {loaded for found in imports_of(name, modules) for loaded in found.loads} for name in modules}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return groups


def _top_level(name: str, modules: dict[str, Path]) -> bool:
    """A module file directly in replicator/ (cli, daemon, app, ...), not a package."""
    return name.count(".") == 1 and name.startswith("replicator.") and modules[name].name != "__init__.py"


def test_no_import_cycle_runs_through_a_top_level_module() -> None:
    """No chain of imports (at module level or inside functions) leads from a top-level module back to it."""
    modules = project_modules(ROOT)
    assert "replicator.cli" in modules and "replicator.app" in modules
    through_top_level = [group for group in import_cycles(import_graph(modules))
                         if any(_top_level(name, modules) for name in group)]
    assert through_top_level == [], f"import cycles: {through_top_level}"


def test_the_modules_that_compose_a_run_import_the_project_at_their_top() -> None:
    """cli, daemon, demo, app, report and shutdown import no replicator or state module inside a function."""
    modules = project_modules(ROOT)
    hidden = [f"{modules[name].relative_to(ROOT)}:{found.line} imports {', '.join(found.loads)}"
              for name in COMPOSITION for found in imports_of(name, modules) if found.in_function]
    assert hidden == [], "imports inside functions: " + "; ".join(hidden)


def test_the_checks_see_a_cycle_hidden_in_a_function_and_ignore_type_checking_imports(tmp_path: Path) -> None:
    """A cycle closed by an import inside a function is found; an `if TYPE_CHECKING:` import is no edge."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import thing\n")
    (package / "b.py").write_text("thing = 1\n\ndef late():\n    from pkg import a\n    return a\n")
    (package / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n")
    (package / "d.py").write_text("from . import c\n")
    modules = project_modules(tmp_path, ("pkg",))

    assert import_cycles(import_graph(modules)) == [["pkg.a", "pkg.b"]]
    assert imports_of("pkg.b", modules) == [Import(4, ("pkg.a",), in_function=True)]
    assert imports_of("pkg.c", modules) == []
    assert imports_of("pkg.d", modules) == [Import(1, ("pkg.c",), in_function=False)]


# the house's size limits (issue 14): about 400 lines a module, about 15 methods a class
MAX_MODULE_LINES = 400
MAX_CLASS_METHODS = 15
LARGER = {
    "replicator/pipeline/filter_eval.py": "the SCIM filter language: a tokenizer, a parser and an evaluator kept together",
}
MORE_METHODS = {
    "MemoryScimServer": "three of its methods are setters (users, groups, faults) that the tests use to stage data",
}


def sizes(root: Path = ROOT) -> tuple[dict[str, int], dict[str, int]]:
    """Lines per module and methods per class, over replicator/ (replicator/state/ included)."""
    lines: dict[str, int] = {}
    methods: dict[str, int] = {}
    for name, path in project_modules(root).items():
        source = path.read_text()
        lines[str(path.relative_to(root))] = source.count("\n")
        for node in ast.walk(ast.parse(source, str(path))):
            if isinstance(node, ast.ClassDef):
                methods[f"{name}.{node.name}"] = sum(
                    isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) for item in node.body)
    return lines, methods


def test_no_module_or_class_outgrows_the_house() -> None:
    """No module over MAX_MODULE_LINES lines and no class over MAX_CLASS_METHODS methods, but the
    exceptions named (each with its reason); an exception that no longer needs it is removed too."""
    lines, methods = sizes()
    assert lines["replicator/cycle/runner.py"] > 50 and methods["replicator.cycle.runner.Cycle"] >= 3
    too_long = {path: count for path, count in lines.items() if count > MAX_MODULE_LINES and path not in LARGER}
    too_many = {name: count for name, count in methods.items()
                if count > MAX_CLASS_METHODS and name.rpartition(".")[2] not in MORE_METHODS}
    assert too_long == {} and too_many == {}, (too_long, too_many)
    stale = [path for path in LARGER if lines[path] <= MAX_MODULE_LINES]
    stale += [cls for cls in MORE_METHODS
              if all(count <= MAX_CLASS_METHODS for name, count in methods.items() if name.endswith("." + cls))]
    assert stale == [], f"exceptions no longer needed: {stale}"


def test_the_cycle_knows_directories_not_clients() -> None:
    """replicator/cycle/ talks to the Directory protocol: it imports no SCIM client, transport or HTTP library."""
    modules = project_modules(ROOT)
    cycle = [name for name in modules if name.startswith("replicator.cycle")]
    assert "replicator.cycle.writer" in cycle
    forbidden = ("replicator.scim.client", "replicator.scim.transport", "replicator.scim.auth", "aiohttp")
    found = []
    for name in cycle:
        tree = ast.parse(modules[name].read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                found += [f"{name}: {n}" for n in names if any(n == f or n.startswith(f + ".") for f in forbidden)]
    assert found == [], found
