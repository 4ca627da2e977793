"""Shared fixtures of the test suite."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# A simulated bench per test: sim_bench, sim_bench_factory.
from interlock.sim.pytest_fixtures import sim_bench, sim_bench_factory  # noqa: F401

# Every process the tests start inherits this: what is left of them at the end is a leak.
SESSION = f"INTERLOCK_TEST_SESSION={uuid.uuid4().hex}"
os.environ["INTERLOCK_TEST_SESSION"] = SESSION.partition("=")[2]


def _left_behind() -> dict[int, str]:
    """Simulators and services of this test session still running (Linux /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if SESSION.encode() not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        words = [os.fsdecode(a) for a in argv]
        if state != "Z" and "interlock" in words and ("serve" in words or "sim" in words):
            found[int(entry.name)] = " ".join(words)
    return found


@pytest.fixture(scope="session", autouse=True)
def no_simulator_or_service_outlives_the_tests() -> Iterator[None]:
    yield
    leaked = _left_behind()
    for pid in leaked:
        os.kill(pid, signal.SIGKILL)
    assert not leaked, f"processes the tests started and left running (now killed): {leaked}"
