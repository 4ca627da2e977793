"""Every firmware file is valid MicroPython: mpy-cross compiles it to bytecode."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from interlock.sim.relay_board import FIRMWARE_DIR

FIRMWARE_FILES = sorted(FIRMWARE_DIR.glob("*.py"))
SELFTEST = Path(__file__).with_name("firmware_selftest.py")


def test_the_firmware_files_are_there() -> None:
    names = {path.name for path in FIRMWARE_FILES}
    assert {"main.py", "rb_core.py", "rb_protocol.py", "rb_loop.py", "rb_hal.py"} <= names


@pytest.mark.parametrize("path", [*FIRMWARE_FILES, SELFTEST], ids=lambda p: p.name)
def test_mpy_cross_compiles(path: Path, tmp_path: Path) -> None:
    output = tmp_path / (path.stem + ".mpy")
    result = subprocess.run(
        [sys.executable, "-m", "mpy_cross", "-o", str(output), str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    # .mpy files start with "M" and the bytecode version.
    assert output.read_bytes()[:1] == b"M"
