"""The house rules a newcomer relies on, checked: wings by stage with arrows pointing down
(import-linter's contracts in pyproject.toml), no import cycles, small modules and short
functions, and a map in every wing's ``__init__`` that names each of its modules."""

from __future__ import annotations

import ast
import graphlib
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "watchdog"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
# The few longer functions, each with the reason it stays one piece.
LONG_FUNCTIONS: dict[str, str] = {
    "watchdog/metrics.py:Metrics.__init__": "one declaration per metric; splitting it would "
    "scatter the catalogue of what the watchdog exports",
}


def product_modules() -> list[Path]:
    """Every module of the package but the demo's stand-ins (a test double may be long)."""
    return [p for p in sorted(PACKAGE.rglob("*.py")) if "fakes" not in p.parts]


def test_import_contracts_hold() -> None:
    """lint-imports passes: each wing imports only wings below it, core stays pure."""
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe is not None, "import-linter is a dev dependency"
    done = subprocess.run(
        [exe, "--no-cache"], cwd=PACKAGE.parent, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _cycle(graph: grimp.ImportGraph) -> list[str]:
    """One import cycle, as the modules around it, or [] when there is none."""
    sorter = graphlib.TopologicalSorter(
        {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    )
    try:
        sorter.prepare()
    except graphlib.CycleError as cycle:
        return list(cycle.args[1])
    return []


def test_no_import_cycles() -> None:
    """No two modules import each other, directly or around a loop (lazy imports count)."""
    graph = grimp.build_graph("watchdog")
    assert _cycle(graph) == []


def test_cycle_finder_finds_a_cycle() -> None:
    """The cycle check can fail: a two-module loop is reported."""
    graph = grimp.ImportGraph()
    for name in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(name)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    graph.add_import(importer="a.z", imported="a.x")
    assert set(_cycle(graph)) == {"a.x", "a.y"}


@pytest.mark.parametrize("path", product_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_is_small(path: Path) -> None:
    """A module has one job and at most 400 lines (the demo's stand-ins excepted)."""
    assert len(path.read_text().splitlines()) <= MAX_MODULE_LINES


def _functions(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text())
    out: list[tuple[str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (child.end_lineno or child.lineno) - child.lineno + 1
                out.append((f"{prefix}{child.name}", length))
                visit(child, f"{prefix}{child.name}.")

    visit(tree, "")
    return out


def test_functions_are_short() -> None:
    """No function over 60 lines unless LONG_FUNCTIONS names it with a reason."""
    too_long = []
    seen_exceptions = set()
    for path in product_modules():
        rel = path.relative_to(PACKAGE.parent).as_posix()
        for name, length in _functions(path):
            key = f"{rel}:{name}"
            if length <= MAX_FUNCTION_LINES:
                continue
            if key in LONG_FUNCTIONS:
                seen_exceptions.add(key)
                continue
            too_long.append(f"{key} ({length} lines)")
    assert too_long == []
    assert seen_exceptions == set(LONG_FUNCTIONS), "an exception that no longer applies"


def _wings() -> list[Path]:
    return [p for p in sorted(PACKAGE.iterdir()) if (p / "__init__.py").is_file()]


@pytest.mark.parametrize("wing", _wings(), ids=lambda p: p.name)
def test_wing_map_names_every_module(wing: Path) -> None:
    """Each wing's docstring says what it does and lists each of its modules."""
    doc = ast.get_docstring(ast.parse((wing / "__init__.py").read_text())) or ""
    assert doc, f"{wing.name}/__init__.py has no map"
    members = [
        p.stem if p.suffix == ".py" else f"{p.name}/"
        for p in sorted(wing.iterdir())
        if p.name not in {"__init__.py", "__pycache__"} and (p.suffix == ".py" or p.is_dir())
    ]
    missing = [m for m in members if f"``{m}``" not in doc]
    assert missing == []


def test_nothing_but_the_cli_imports_the_demo() -> None:
    """The product never depends on its demo or its test stand-ins."""
    graph = grimp.build_graph("watchdog")
    importers = {
        m
        for m in graph.find_modules_that_directly_import("watchdog.demo.main")
        | graph.find_modules_that_directly_import("watchdog.demo.fakes")
        if not m.startswith("watchdog.demo")
    }
    for module in sorted(graph.modules):
        if module.startswith("watchdog.demo"):
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            if imported.startswith("watchdog.demo"):
                importers.add(module)
    assert importers <= {"watchdog.cli.main"}
