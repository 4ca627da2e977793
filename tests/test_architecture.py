"""The layers' arrows: which module may import which."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "interlock"


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (lazy imports inside functions too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _modules() -> dict[str, Path]:
    return {
        ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts): path
        for path in PACKAGE.rglob("*.py")
    }


def test_only_the_entry_point_imports_the_cli():
    """cli.py imports the command modules, never the reverse: exit codes live in exits.py."""
    importers = sorted(
        name
        for name, path in _modules().items()
        if name != "interlock.cli" and "interlock.cli" in _imports(path)
    )
    assert importers == ["interlock.__main__"]


def test_the_exit_codes_import_nothing_of_the_commands():
    imported = _imports(PACKAGE / "exits.py")
    assert not {name for name in imported if name.startswith(("interlock.c", "interlock.seq"))}
