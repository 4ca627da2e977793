"""It installs as a package: a wheel, a fresh venv in an empty directory, the example run there.

The wheel is built from a copy of the sources (never from a build/ directory
an earlier build left), installed into a new venv (its dependencies from the
index, through pip's cache), and used from an empty directory far from any
checkout: ``interlock init`` writes the bundled example bench, ``interlock
run`` runs its example sequence on it (the simulator runs the packaged relay
board firmware), and the console starts headless with its packaged
stylesheet. Slow (a minute or so, most of it pip): ``pytest -m slow -k
wheel``, which CI runs as a step of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CONSOLE_SMOKE = """
import asyncio
from interlock.console import ConsoleApp, ServiceSource
from interlock.config import load_bench

async def main():
    bench = load_bench("bench.toml")
    app = ConsoleApp(ServiceSource(bench, "operator"))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.5)
        print("console up:", type(app.screen).__name__, bool(app.stylesheet.rules))

asyncio.run(main())
"""


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{argv}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow
@pytest.mark.timeout(600)  # pip on a loaded machine: most of it
def test_the_wheel_installs_and_runs_the_example_outside_any_checkout(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(
        ROOT / "interlock",
        source / "interlock",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    env = {k: v for k, v in os.environ.items() if k not in ("INTERLOCK_BENCH", "PYTHONPATH")}
    dist = tmp_path / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)],
        tmp_path,
        env,
    )
    (wheel,) = dist.glob("interlock-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, env)
    python, interlock = venv / "bin" / "python", venv / "bin" / "interlock"
    _run([str(python), "-m", "pip", "install", "-q", str(wheel)], tmp_path, env)

    empty = tmp_path / "empty"
    empty.mkdir()
    version = _run([str(interlock), "--version"], empty, env)
    assert version.stdout.startswith("interlock ")
    init = _run([str(interlock), "init"], empty, env)
    assert "wrote the example simulated bench" in init.stdout
    assert (empty / "bench.toml").is_file() and (empty / "sequences").is_dir()
    run = _run(
        [str(interlock), "run", "--yes", "--in-process", "sequences/mdb24_power_up.toml"],
        empty,
        env,
    )
    assert "summary   PASS: MDB-24 power-up" in run.stdout and run.stdout.endswith("exit 0\n")
    console = _run([str(python), "-c", CONSOLE_SMOKE], empty, env)
    assert "console up: " in console.stdout and console.stdout.strip().endswith("True")
