"""The default bench's service on a simulator of its own: it survives the service, crash included.

Real processes: ``interlock serve`` and ``interlock run`` as the user starts
them, the simulator they start (detached, as a daemon), ``interlock sim
inject`` from a third. Every process is stopped at teardown (``short_dir``
stops the simulators; the services are stopped here).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import interlock
from interlock.cli import main
from interlock.config import load_bench
from interlock.errors import InterlockError
from interlock.journal import JournalReader
from interlock.service.background import answers, stop_service
from interlock.service.runtime import Service
from interlock.service.server import ServiceThread
from interlock.sim.client import SimulatorClient
from tests.service.conftest import ROOT, assert_bench_safe, bring_up, write_bench

# The board's host watchdog on the default bench (bench.toml [service] relay_watchdog).
WATCHDOG = 0.5
# Room on a loaded machine between the service's death and the test seeing it: generous.
MARGIN = 5.0


def wait_for(condition, timeout: float, what: str, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if process is not None and process.poll() is not None:
            pytest.fail(f"{what}: the process ended first: {process.communicate()}")
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.fixture
def serve_process(short_dir) -> Iterator[subprocess.Popen]:
    """``interlock serve`` of a copy of the default bench, in a process group of its own."""
    bench = write_bench(short_dir)
    with open(short_dir / "serve.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "interlock", "serve", "--bench", str(bench)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(lambda: answers(short_dir / "interlock.sock"), 60, "the service answers", process)
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_a_killed_service_leaves_the_simulator_whose_truth_shows_the_watchdog(
    serve_process, short_dir
):
    bench_path = short_dir / "bench.toml"
    sim = SimulatorClient.of_bench(load_bench(bench_path))
    assert sim.pid != serve_process.pid and alive(sim.pid)  # a process of its own
    client = interlock.connect(bench_path, role="operator", start=False)
    try:
        client.lease().acquire()
        client.arm()
        bring_up(client, "VLOGIC", 5.0, 0.3)
        bring_up(client, "VBUS", 4.0, 0.3)
        live = sim.truth()
        assert {"K1", "K2"} <= set(live["contacts"])
        assert live["nets"]["VBUS"]["voltage"] == pytest.approx(4.0, abs=0.05)

        killed = time.monotonic()
        os.killpg(serve_process.pid, signal.SIGKILL)  # kill -9: no safe state, no goodbye
        serve_process.wait()
        dead = time.monotonic()  # the service is gone by now (same clock as the simulator's)

        board = wait_for(
            lambda: (b := sim.truth()["boards"]["relays"])["trip"] and b,
            MARGIN,
            "the board's watchdog trips",
        )
    finally:
        with contextlib.suppress(InterlockError):
            client.close()
    truth = sim.truth()
    assert alive(sim.pid)
    assert board["trip"] == "WDT"
    # What the crash left: the supply outputs turned off by the service's guardian, the
    # relays opened by the board's own watchdog, so no DUT net carries anything.
    assert not any(ch["output"] for ch in truth["supplies"]["psu"].values())
    assert truth["contacts"] == []
    assert truth["relay_states"]["K2"] == {
        "board": "relays",
        "channel": 2,
        "coil": False,
        "contact": False,
    }
    assert all(rec["voltage"] == 0.0 for rec in truth["nets"].values())
    # And when: the host's last frame, the trip, every relay open; the watchdog waited
    # its whole period after the last frame, and not much longer after the service died.
    heard = board["host_last_heard"]["monotonic"]
    assert heard <= dead
    history = sim.history("VBUS")
    trip = [c for c in history.changes if c.kind == "board" and c.data["event"] == "TRIP"]
    assert [c.data["cause"] for c in trip] == ["WDT"]
    opened = {
        c.data["relay"]: c.monotonic
        for c in history.changes
        if c.kind == "relay-contact" and not c.data["closed"] and c.monotonic > heard
    }
    assert set(opened) == {"K1", "K2"}
    assert all(at <= trip[0].monotonic for at in opened.values())  # opened, then announced
    for at in [trip[0].monotonic, *opened.values()]:
        assert heard + WATCHDOG - 0.002 <= at <= dead + WATCHDOG + MARGIN
    # VBUS was at 4 V when the service died (its guardian turns the supply off at once,
    # before the board's watchdog opens the relay), and at 0 V once its relay opened.
    before = [s.voltage for s in history.samples if s.monotonic < killed]
    after = [s.voltage for s in history.samples if s.monotonic >= killed]
    assert before[-1] == pytest.approx(4.0, abs=0.05) and after and after[-1] == 0.0

    # The instruments take a new host, as real ones would (the dead service's connections
    # are gone): a new service finds the same simulator, finds the outputs on and
    # drives the bench safe, and the fault stays latched for an operator.
    with ServiceThread(Service(bench_path)) as restarted:
        status = restarted.service.status()
        assert restarted.service.simulator.pid == sim.pid
    assert status["state"] == "fault"
    truth = sim.truth()
    assert not truth["supplies"]["psu"]["1"]["output"]
    assert not truth["supplies"]["psu"]["2"]["output"]
    assert_bench_safe(truth)


SOAK = ROOT / "sequences" / "mdb24_soak.toml"  # README: "Try a fault"


def test_a_short_injected_while_a_sequence_runs_ends_the_run_in_a_fault(short_dir):
    bench_path = write_bench(short_dir)
    run = subprocess.Popen(
        [sys.executable, "-m", "interlock", "run", str(SOAK), "--bench", str(bench_path),
         "--yes"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        # The run started a service, which started the simulator: wait until VBUS soaks.
        def bus_soaking() -> bool:
            try:
                truth = SimulatorClient.of_bench(load_bench(bench_path)).truth()
            except InterlockError:
                return False
            return truth["nets"]["VBUS"]["voltage"] > 23.9

        wait_for(bus_soaking, 90, "VBUS at 24 V", run)
        injected = subprocess.run(
            [sys.executable, "-m", "interlock", "sim", "inject", "short:VBUS", "--bench",
             str(bench_path)],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert injected.returncode == 0, injected.stderr
        assert injected.stdout.strip() == "injected short:VBUS; active faults: short:VBUS"
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate()
        said = stop_service(short_dir / "interlock.sock")
    assert run.returncode == 4, out + err
    assert "summary   FAULT: MDB-24 bus soak" in out
    assert "the bench faulted during the wait" in out
    assert said.startswith("service stopped")
    truth = SimulatorClient.of_bench(load_bench(bench_path)).truth()
    assert truth["supplies"]["psu"]["2"]["ocp_tripped"]
    assert_bench_safe(truth)
    with JournalReader(short_dir / "journal.sqlite") as reader:
        faults = [e.payload for e in reader.entries() if e.kind == "fault"]
    assert faults and "VBUS" in str(faults[0])


def test_stop_leaves_the_simulator_and_stop_sim_ends_it(short_dir, capsys):
    bench = str(write_bench(short_dir))
    assert main(["serve", "--bench", bench, "--background"]) == 0
    sim = SimulatorClient.of_bench(load_bench(bench))
    first = sim.pid
    assert main(["stop", "--bench", bench]) == 0
    assert alive(first) and sim.faults() == []  # the instruments stay
    assert main(["serve", "--bench", bench, "--background"]) == 0  # and are found again
    assert SimulatorClient.of_bench(load_bench(bench)).pid == first
    capsys.readouterr()
    assert main(["stop", "--sim", "--bench", bench]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("service stopped (pid ")
    assert out[2] == f"simulator stopped (pid {first}); its instruments are gone"
    assert not alive(first)


def test_stopping_the_simulator_under_a_service_trips_it(short_dir, capsys):
    bench = str(write_bench(short_dir))
    with ServiceThread(Service(bench)) as served:
        client = interlock.connect(bench, role="operator", start=False)
        with client:
            client.arm()
            assert main(["sim", "stop", "--bench", bench]) == 0
            out = capsys.readouterr().out
            assert "it has lost its instruments and trips" in out
            # The trip tries its safe state on instruments that are gone (each exchange
            # timing out) before the state changes: wait for the state, not the cause.
            status = wait_for(
                lambda: (s := client.status())["state"] == "fault" and s, 60, "the service trips"
            )
        assert served.service.controller.state == "fault"
    assert "relays" in status["fault"] or "psu" in status["fault"]


def test_a_killed_service_leaves_every_supply_off_through_its_guardian(serve_process, short_dir):
    """kill -9 with three nets live and a relay welded: the board's watchdog cannot
    disconnect the welded net, the guardian turns every supply off within 1 s."""
    bench_path = short_dir / "bench.toml"
    sim = SimulatorClient.of_bench(load_bench(bench_path))
    client = interlock.connect(bench_path, role="operator", start=False)
    try:
        guardian = client.status()["service"]["guardian"]
        assert guardian and alive(guardian)
        client.lease().acquire()
        client.arm()
        bring_up(client, "VLOGIC", 5.0, 0.3)
        bring_up(client, "VBUS", 4.0, 0.3)
        bring_up(client, "MOTOR", 3.0, 0.3)
        sim.inject("weld:K1")
        assert all(ch["output"] for ch in sim.truth()["supplies"]["psu"].values())

        killed = time.monotonic()  # the simulator's clock too
        os.killpg(serve_process.pid, signal.SIGKILL)
        serve_process.wait()
        wait_for(
            lambda: not any(ch["output"] for ch in sim.truth()["supplies"]["psu"].values()),
            MARGIN,
            "every supply output off",
        )
    finally:
        with contextlib.suppress(InterlockError):
            client.close()
    offs = [
        change.monotonic
        for change in sim.history("VLOGIC").changes
        if change.kind == "supply" and change.data["field"] == "output" and not change.data["new"]
    ]
    assert len(offs) == 3
    assert max(offs) - killed < 1.0, f"outputs off {max(offs) - killed:.3f} s after the kill"
    # VLOGIC, behind its welded relay, went to 0 V with its supply.
    assert sim.truth()["nets"]["VLOGIC"]["voltage"] == pytest.approx(0.0, abs=0.05)
    wait_for(lambda: not alive(guardian), MARGIN, "the guardian ends once it has acted")
    reader = JournalReader(short_dir / "journal.sqlite")
    try:
        [record] = [e for e in reader.entries() if e.kind == "fault" and e.actor == "guardian"]
    finally:
        reader.close()
    assert record.payload["cause"] == "service-died" and record.payload["verified"]
    assert "MOTOR" in record.payload["detail"] and "VLOGIC" in record.payload["detail"]
