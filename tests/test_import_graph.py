"""Arrows point one way: no import cycle in the ``interlock`` package.

The graph is read from the source (AST), not from what happens to be
imported at run time: every ``import`` counts wherever it is written (at
module level, inside a function, under ``TYPE_CHECKING``), and so does a
module named to ``importlib.import_module``. A package's ``__init__`` run
because one of its modules is imported is not an arrow (it would make one of
every package that re-exports its modules). Two graphs are checked: the
modules, and the packages (``interlock.config``, ``interlock.limits``, ... and
each top-level module), where an arrow from any module of one to any module
of another counts.

The limit engine also imports nothing that does I/O.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "interlock"

# Package-level arrows known to close a cycle, each with why it is tolerated: none
# (the commands take their exit codes from interlock.exits, not from the CLI).
KNOWN_BACK_ARROWS: set[tuple[str, str]] = set()

# What the pure limit engine may import: the standard library's pure parts and itself.
ENGINE_MAY_IMPORT = {
    "__future__",
    "collections",
    "dataclasses",
    "itertools",
    "math",
    "re",
    "typing",
    "interlock.catalog",
    "interlock.engineering",  # numbers with their units, as text: no I/O
    "interlock.errors",
    "interlock.limits",
}


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent.name == "firmware":  # MicroPython, shipped as data: not the package's
            continue
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        found[".".join(parts)] = (path, is_package)
    return found


MODULES = _modules()


def _known(name: str) -> str | None:
    """The module of ours ``name`` is, or is inside (``pkg.mod.attr`` -> ``pkg.mod``)."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name if name in MODULES else None


def _imported(module: str, is_package: bool, tree: ast.Module) -> set[str]:
    """Every name ``module`` imports, absolute."""
    names: set[str] = set()
    dynamic = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # ``from pkg import mod`` imports the module; ``from pkg import name``, the package.
            for alias in node.names:
                submodule = f"{prefix}.{alias.name}"
                names.add(submodule if submodule in MODULES else prefix)
        elif isinstance(node, ast.Attribute) and node.attr == "import_module":
            dynamic = True
    if dynamic:  # importlib.import_module(name): any of our modules named in the file
        names.update(
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in MODULES
        )
    return names


def module_graph() -> dict[str, set[str]]:
    graph = {}
    for module, (path, is_package) in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        targets = {_known(name) for name in _imported(module, is_package, tree)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        arrows = packages.setdefault(package_of(module), set())
        arrows.update(package_of(t) for t in targets if package_of(t) != package_of(module))
    return packages


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def without_known(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """``graph`` less the known back arrows (between modules of those packages too)."""
    return {
        a: {b for b in targets if (package_of(a), package_of(b)) not in KNOWN_BACK_ARROWS}
        for a, targets in graph.items()
    }


def test_the_graph_sees_the_imports():
    graph = module_graph()
    assert "interlock.limits.model" in graph["interlock.config.profile"]
    assert "interlock.commands.run" in graph["interlock.cli"]  # importlib.import_module
    assert "interlock.controller.actuation" in graph["interlock.controller.controller"]


def test_no_module_imports_itself_back():
    assert cycles(without_known(module_graph())) == []


def test_no_package_imports_itself_back():
    assert cycles(without_known(package_graph(module_graph()))) == []


def test_every_known_back_arrow_is_still_there():
    """An exception that is no longer needed goes: remove it from KNOWN_BACK_ARROWS."""
    packages = package_graph(module_graph())
    for source, target in KNOWN_BACK_ARROWS:
        assert target in packages.get(source, set()), (source, target)


def test_the_configuration_imports_the_engine_and_never_the_reverse():
    packages = package_graph(module_graph())
    assert "interlock.limits" in packages["interlock.config"]
    assert "interlock.config" not in packages["interlock.limits"]


def test_the_limit_engine_imports_nothing_that_does_io():
    for module, (path, is_package) in MODULES.items():
        if package_of(module) != "interlock.limits":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for name in _imported(module, is_package, tree):
            top = name.split(".")[0]
            allowed = top in ENGINE_MAY_IMPORT or any(
                name == a or name.startswith(f"{a}.") for a in ENGINE_MAY_IMPORT
            )
            assert allowed, f"{module} imports {name}"
