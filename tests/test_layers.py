"""The import structure: layers read top to bottom, and no module imports itself round a circle.

kernel <- twin <- controller <- adapters <- scenarios <- tunneltwin.daemon <- tunneltwin (CLI).
A module may import its own layer and the layers below it, never one above. Every import
counts, including those inside functions and under TYPE_CHECKING: a lazy import is still
an arrow in the design.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("kernel", "twin", "controller", "adapters", "scenarios", "tunneltwin.daemon", "tunneltwin")
ONLY_IN = {"simpy": ("twin",), "asyncua": ("adapters",), "paho": ("adapters",)}
NEVER = {"controller": ("twin",),  # the controller sees the plant only through telemetry
         "adapters.client": ("adapters.served", "adapters.surface"),
         "adapters.served": ("adapters.client", "adapters.surface"),
         "adapters.surface": ("adapters.client", "adapters.served")}


def _modules() -> Iterator[tuple[str, Path]]:
    for top in {layer.split(".")[0] for layer in LAYERS}:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def _imports(module: str, path: Path) -> Iterator[tuple[str, int]]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[:len(package.split(".")) - node.level + 1], base]).strip(".")
            for alias in node.names:  # ``from pkg import module`` is an arrow to the module, not to pkg
                yield (f"{base}.{alias.name}" if _is_module(f"{base}.{alias.name}") else base), node.lineno


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _layer(name: str) -> int | None:
    ranks = [i for i, layer in enumerate(LAYERS) if _within(name, layer)]
    return max(ranks, key=lambda i: len(LAYERS[i])) if ranks else None


MODULES = dict(_modules())


def _graph() -> dict[str, set[str]]:
    """Module -> our modules it imports (``from pkg import name`` counts as pkg.name if that is a module)."""
    return {m: {n for n, _ in _imports(m, p) if n in MODULES and n != m} for m, p in MODULES.items()}


def test_no_import_runs_back_up() -> None:
    upward = [f"{path.relative_to(ROOT)}:{line}: {module} ({LAYERS[a]}) imports {name} ({LAYERS[b]})"
              for module, path in MODULES.items() for name, line in _imports(module, path)
              if (a := _layer(module)) is not None and (b := _layer(name)) is not None and b > a]
    assert upward == []


def test_io_libraries_and_simpy_stay_in_their_layer() -> None:
    wrong = [f"{path.relative_to(ROOT)}:{line}: {name}" for module, path in MODULES.items()
             for name, line in _imports(module, path) for lib, homes in ONLY_IN.items()
             if _within(name, lib) and not any(_within(module, h) for h in homes)]
    assert wrong == []


def test_forbidden_neighbours() -> None:
    wrong = [f"{path.relative_to(ROOT)}:{line}: {module} imports {name}" for module, path in MODULES.items()
             for name, line in _imports(module, path) for who, banned in NEVER.items()
             if _within(module, who) and any(_within(name, b) for b in banned)]
    assert wrong == []


def test_no_import_circle() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert circles == []


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The checks are not vacuous: a kernel module importing the controller is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("from controller.mpc import MpcController\nimport simpy\n")
    names = [n for n, _ in _imports("kernel.bad", bad)]
    assert "controller.mpc" in names and "simpy" in names
    assert _layer("controller.mpc") == 2 > (_layer("kernel.bad") or 0)
    assert len(MODULES) > 60 and sum(len(v) for v in _graph().values()) > 150


def test_no_class_over_200_lines() -> None:
    """A class that grows past a page is doing more than one job: split it by its parts."""
    long = [f"{path.relative_to(ROOT)}:{node.lineno}: {node.name} ({size} lines)"
            for path in sorted({*MODULES.values(), *(ROOT / "bench").rglob("*.py")})
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ClassDef) and (size := (node.end_lineno or node.lineno) - node.lineno + 1) >= 200]
    assert long == []
