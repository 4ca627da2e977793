"""SimulatedBench as an API: public surface, ports, life cycle, the pytest fixture."""

from __future__ import annotations

import socket
import time

import pytest

import interlock.sim
from interlock.config import load_bench
from interlock.errors import SimulatorError
from interlock.sim import SimulatedBench
from tests.sim.conftest import ROOT_BENCH, write_bench


def test_public_api_is_exported():
    for name in interlock.sim.__all__:
        assert hasattr(interlock.sim, name), name


def test_two_benches_at_once_on_free_ports(sim_bench, sim_bench_factory, visa):
    other = sim_bench_factory()
    assert set(sim_bench.resources.values()).isdisjoint(other.resources.values())
    visa(sim_bench.resources["psu"]).write("VOLT 5,(@1)")
    assert float(visa(other.resources["psu"]).query("VOLT? (@1)")) == 0.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_bench_ports_are_those_of_the_resource_strings(tmp_path, visa):
    path = write_bench(tmp_path)
    ports = _free_port(), _free_port()
    text = path.read_text().replace("::5025::", f"::{ports[0]}::").replace("::5026::",
                                                                              f"::{ports[1]}::")
    path.write_text(text)
    with SimulatedBench(load_bench(path), ports="bench") as sim:
        assert sim.resources["psu"] == f"TCPIP::127.0.0.1::{ports[0]}::SOCKET"
        assert "34461A" in visa(sim.resources["dmm"]).query("*IDN?")
    assert not sim.running


def test_a_taken_port_is_a_simulator_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write_bench(tmp_path)
        path.write_text(path.read_text().replace("::5025::", f"::{port}::"))
        with pytest.raises(SimulatorError, match="cannot listen"):
            SimulatedBench(path, ports="bench").start()


def test_only_simulation_benches_can_be_simulated(tmp_path):
    bench = load_bench(ROOT_BENCH)
    engineering = type(bench)(**{**bench.__dict__, "environment": "engineering",
                                 "simulation": None})
    with pytest.raises(SimulatorError, match="only a simulation bench"):
        SimulatedBench(engineering)


def test_faults_at_start_and_operations_need_a_running_bench(sim_bench_factory):
    sim = sim_bench_factory(faults=["short:VBUS", "hang:dmm"])
    assert sim.faults() == ["short:VBUS", "hang:dmm"]
    assert sim.truth()["faults"] == ["short:VBUS", "hang:dmm"]
    sim.stop()
    with pytest.raises(SimulatorError, match="not running"):
        sim.inject("estop")
    with pytest.raises(SimulatorError):
        SimulatedBench(ROOT_BENCH, faults=["melt:VBUS"])


def test_commands_are_recorded_with_monotonic_stamps(sim_bench, visa):
    before = time.monotonic()
    psu = visa(sim_bench.resources["psu"])
    psu.write("VOLT 1,(@1)")
    psu.query("*OPC?")
    after = time.monotonic()
    commands = sim_bench.truth()["instruments"]["psu"]["commands"]
    assert [c["line"] for c in commands] == ["VOLT 1,(@1)", "*OPC?"]
    assert before <= commands[0]["monotonic"] <= commands[1]["monotonic"] <= after
