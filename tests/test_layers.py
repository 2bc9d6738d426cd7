"""The architecture, read from the source: layers only point down, no import circles, no lazy
import that hides a dependency.

Layers (README "Architecture"):

* ``jaxagg.kernels`` (folder ``kernels/``): pure JAX; imports jax, numpy, optax and other kernels;
* ``jaxagg.solvers`` (folder ``solvers/``): numpy, scipy, highspy over arrays; imports kernels,
  other solvers and ``jaxagg.errors``;
* ``jaxagg.errors``: the typed errors, importing nothing of jaxagg;
* everything else in ``jaxagg/``: the model, samples, rules, report and CLI, on top.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"jaxagg": ROOT / "jaxagg", "jaxagg.kernels": ROOT / "kernels", "jaxagg.solvers": ROOT / "solvers"}
STDLIB = set(sys.stdlib_module_names)
THIRD_PARTY = {
    "kernels": {"jax", "jaxlib", "numpy", "optax"},
    "solvers": {"numpy", "scipy", "highspy"},
    "errors": set(),
}
ALLOWED_JAXAGG = {
    "kernels": {"kernels"},
    "solvers": {"kernels", "solvers", "errors"},
    "errors": set(),
}


def modules() -> dict[str, Path]:
    """Every module of the installed package by dotted name -> its source file."""
    found = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            relative = path.relative_to(folder).with_suffix("")
            parts = [p for p in relative.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if package == "jaxagg" and parts and parts[0] in ("kernels", "solvers"):
                continue
            found[name] = path
    return found


MODULES = modules()


def layer(name: str) -> str:
    if name == "jaxagg.errors":
        return "errors"
    for prefix in ("kernels", "solvers"):
        if name == f"jaxagg.{prefix}" or name.startswith(f"jaxagg.{prefix}."):
            return prefix
    return "package"


def imports(path: Path) -> list[tuple[str, bool]]:
    """``(imported module, at module level)`` for every import statement in the file;
    ``from jaxagg import x`` counts as importing ``jaxagg.x`` when that is a module."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import"
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.append((candidate if candidate in MODULES else node.module, id(node) in top))
    return found


def test_every_module_is_found():
    assert {"jaxagg.momdp", "jaxagg.kernels.ascent", "jaxagg.solvers.highs", "jaxagg.rules.registry"} <= set(MODULES)
    assert "jaxagg.solvers.tuner" not in MODULES  # the pure-JAX ascent lives in kernels


@pytest.mark.parametrize("name", sorted(n for n in MODULES if layer(n) != "package"))
def test_lower_layers_import_only_what_lies_below(name):
    own = layer(name)
    for imported, _ in imports(MODULES[name]):
        root = imported.split(".")[0]
        if root == "jaxagg":
            assert layer(imported) in ALLOWED_JAXAGG[own], f"{name} ({own}) imports {imported} ({layer(imported)})"
        else:
            assert root in STDLIB or root in THIRD_PARTY[own] or root == "__future__", f"{name} imports {imported}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_lazy_imports_of_jaxagg(name):
    lazy = [imported for imported, at_top in imports(MODULES[name]) if not at_top and imported.startswith("jaxagg")]
    assert not lazy, f"{name} imports {lazy} inside a function or block: a hidden dependency"


def test_no_import_circles():
    graph = {name: {imported for imported, _ in imports(path) if imported in MODULES and imported != name}
             for name, path in MODULES.items()}
    packages = {name for name, path in MODULES.items() if path.name == "__init__.py"}
    # A package's __init__ re-exports its modules; edges into it are how Python loads a submodule, not a dependency.
    graph = {name: targets - packages for name, targets in graph.items() if name not in packages}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycle = stack[stack.index(target):] + [target]
                pytest.fail(f"import circle: {' -> '.join(cycle)}")
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_checker_sees_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import numpy\n\ndef f():\n    from jaxagg.momdp import MOMDP\n    return MOMDP\n")
    assert imports(bad) == [("numpy", True), ("jaxagg.momdp", False)]
    assert layer("jaxagg.momdp") == "package" and "package" not in ALLOWED_JAXAGG["solvers"]
