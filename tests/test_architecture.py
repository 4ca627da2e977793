"""The layers' arrows: which module may import which, and no module waits on itself."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "interlock"


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# The relay board firmware (MicroPython, package data) is not a module of the package.
MODULES = {
    _name(path): path for path in PACKAGE.rglob("*.py") if "firmware" not in path.parent.parts
}


def _imports(name: str, *, lazy: bool) -> set[str]:
    """The package's modules ``name`` imports: at module level, or anywhere if ``lazy``.

    Imports under ``if TYPE_CHECKING:`` are never run, and are left out.
    """
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    nodes: list[ast.AST] = []
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        nodes += list(ast.walk(node)) if lazy else [node]
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {module for module in found if module in MODULES} - {name}


def test_only_the_entry_point_imports_the_cli():
    """cli.py imports the command modules, never the reverse: exit codes live in exits.py."""
    importers = sorted(n for n in MODULES if "interlock.cli" in _imports(n, lazy=True))
    assert importers == ["interlock.__main__"]


def test_the_exit_codes_import_only_the_errors():
    assert _imports("interlock.exits", lazy=True) == {"interlock.errors"}


def test_the_client_library_needs_no_server():
    """The client's side of the service: its schema, wire format, tokens and starter only."""
    client = {name for name in MODULES if name.startswith("interlock.client")}
    reached = set().union(*(_imports(name, lazy=True) for name in client)) - client
    service = {name for name in reached if name.startswith("interlock.service")}
    assert service == {
        "interlock.service.schema",
        "interlock.service.wire",
        "interlock.service.tokens",
        "interlock.service.background",
    }
    assert not {
        name
        for name in reached
        if name.startswith(("interlock.controller", "interlock.console", "interlock.commands"))
    }


def _cycles(rooms: tuple[str, ...]) -> list[list[str]]:
    """Strongly connected groups of module-level imports among modules of ``rooms``."""
    graph = {
        name: {m for m in _imports(name, lazy=False) if m.startswith(rooms)}
        for name in MODULES
        if name.startswith(rooms)
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while (popped := stack.pop()) != node:
                group.append(popped)
            if group:
                cycles.append(sorted([node, *group]))

    for node in graph:
        if node not in index:
            visit(node)
    return cycles


def test_the_service_its_clients_and_the_commands_import_in_one_direction():
    rooms = (
        "interlock.cli",
        "interlock.client",
        "interlock.commands",
        "interlock.console",
        "interlock.errors",
        "interlock.exits",
        "interlock.pytest_plugin",
        "interlock.sequence",
        "interlock.service",
        "interlock.units",
    )
    assert _cycles(rooms) == []
