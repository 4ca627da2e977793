"""Shared fixtures of the test suite."""

from __future__ import annotations

import gc
import os
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from interlock.service.server import SWITCH_INTERVAL_S

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


@pytest.fixture(autouse=True)
def a_process_that_serves_its_watchdogs() -> Iterator[None]:
    """Each test runs its services, heartbeats and simulators in a process set up as
    ``interlock serve`` sets up its own: what earlier tests left on the heap is out of
    the collector's sight, and GIL turns are short.

    The test process's heap grows with every test; a full collection of it held the GIL
    for up to 1.9 s on a loaded machine (measured beside 4 CPU-bound processes), during
    which no thread of this process could heartbeat the relay board (watchdog 500 ms)
    or a lease (timeout 1 s). ``gc.freeze()`` and ``gc.unfreeze()`` cost nothing: what
    is frozen is collected again after the test.
    """
    interval = sys.getswitchinterval()
    gc.freeze()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
        gc.unfreeze()
