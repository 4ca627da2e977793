"""The systemd unit a bench host runs its service with (deploy/systemd/), and what it relies on.

There is no systemd here: the unit is read for the settings that matter, and
the service is driven as systemd would drive it, from the unit's own
``ExecStart``: ``systemctl stop`` with ``KillMode=mixed`` is a SIGTERM to the
service alone (a clean stop, nothing latched), and ``Restart=on-failure``
after a crash is the same command again (it comes up safe, with the crash
latched).
"""

from __future__ import annotations

import configparser
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import interlock
from interlock.config import load_bench
from interlock.errors import InterlockError
from interlock.service.background import answers
from interlock.sim.client import SimulatorClient
from interlock.units import DURATION, parse_quantity
from tests.service.conftest import OFF_VOLTS, bring_up, short_dir, write_bench  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "deploy" / "systemd" / "interlock@.service"
BIN = Path(sys.executable).parent


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def test_the_unit_stops_the_service_alone_restarts_a_crash_and_waits_for_the_safe_state():
    service = unit()["Service"]
    assert service["KillMode"] == "mixed"  # SIGTERM to the service, not to its guardian
    assert service["KillSignal"] == "SIGTERM"
    assert service["Restart"] == "on-failure"
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/interlock") and argv[1] == "serve"
    assert argv[argv.index("--bench") + 1] == "/etc/interlock/benches/%i/bench.toml"
    assert "--background" not in argv  # systemd follows the process it started
    # A clean stop takes about a second on the simulated bench (tests/labgrid measures it);
    # the room left is for slow instruments, never a SIGKILL in the middle of the safe state.
    assert parse_quantity(service["TimeoutStopSec"].removesuffix("s") + " s", DURATION) >= 30


def serve(bench: Path) -> subprocess.Popen:
    """The unit's ExecStart for a test bench: its own options, on loopback."""
    argv = shlex.split(unit()["Service"]["ExecStart"])
    argv[0] = str(BIN / "interlock")
    argv[argv.index("--bench") + 1] = str(bench)
    argv[argv.index("--tcp") + 1] = "127.0.0.1:0"
    log = bench.parent / "service.log"
    log.unlink(missing_ok=True)
    with open(log, "wb") as out:
        popen = subprocess.Popen(
            argv, cwd=bench.parent, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 60
    socket = load_bench(bench).service.socket
    while not answers(socket):
        assert popen.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.02)
    return popen


@contextlib.contextmanager
def live_until_the_service_goes(bench: Path) -> Iterator[None]:
    """VLOGIC live, its lease held by this process until the service is gone."""
    client = interlock.connect(bench, role="operator", start=False)
    client.arm()
    client.lease().acquire()
    bring_up(client, "VLOGIC", 5.0, 0.3)
    try:
        yield
    finally:
        with contextlib.suppress(InterlockError):  # nobody left to give the lease back to
            client.close()


def live_volts(bench: Path) -> float:
    truth = SimulatorClient.of_bench(load_bench(bench)).truth()
    return truth["nets"]["VLOGIC"]["voltage"]


@pytest.fixture
def bench(short_dir: Path):  # noqa: F811 (the imported fixture)
    path = write_bench(short_dir, lease_timeout=30.0)
    yield path
    subprocess.run(
        [str(BIN / "interlock"), "sim", "stop", "--bench", str(path)], capture_output=True
    )


# httpcore 1.0.9 leaves the socket of a refused Unix-socket connect open (its sync
# connect_unix_socket closes nothing on failure): the client's lease release, after the
# service is gone, meets it.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_systemctl_stop_and_a_restart_after_a_crash_leave_the_bench_safe(bench):
    # systemctl stop: SIGTERM to the main process only; it drives the bench safe and exits 0.
    popen = serve(bench)
    with live_until_the_service_goes(bench):
        assert live_volts(bench) > 4.5
        os.kill(popen.pid, signal.SIGTERM)
        assert popen.wait(60) == 0
    assert live_volts(bench) < OFF_VOLTS
    popen = serve(bench)
    with interlock.connect(bench, role="viewer", start=False) as client:
        status = client.status()
    assert (status["state"], status["fault"]) == ("safe", None)  # a clean stop latches nothing

    # A crash: the guardian turns the supplies off; Restart=on-failure starts it again.
    with live_until_the_service_goes(bench):
        os.kill(popen.pid, signal.SIGKILL)
        popen.wait(10)
    popen = serve(bench)
    try:
        assert live_volts(bench) < OFF_VOLTS
        with interlock.connect(bench, role="viewer", start=False) as client:
            status = client.status()
        assert status["state"] == "fault"
        assert "did not stop cleanly" in status["fault"]
    finally:
        os.kill(popen.pid, signal.SIGTERM)
        popen.wait(60)
