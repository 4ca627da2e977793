"""``interlock sim start|inject|clear|truth`` and the control channel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from interlock.cli import main
from interlock.errors import SimulatorError
from interlock.sim import control
from tests.sim.conftest import write_bench

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def running_sim(tmp_path):
    bench = write_bench(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "interlock", "sim", "start", "--bench", str(bench),
         "--ports", "free", "--json", "--fault", "wrong-dut"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        first = process.stdout.readline()
        assert first, process.stderr.read()
        yield bench, json.loads(first), process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def test_start_json_inject_clear_truth_and_sigint(running_sim, visa, capsys):
    bench, description, process = running_sim
    assert set(description["resources"]) == {"psu", "dmm", "relays"}
    assert description["resources"]["relays"].startswith("/dev/")
    assert description["faults"] == ["wrong-dut"]
    state = Path(description["state_file"])
    assert state == bench.parent / "run" / "sim.json"
    assert json.loads(state.read_text())["control"] == description["control"]

    psu = visa(description["resources"]["psu"])
    assert "E36312A" in psu.query("*IDN?")

    assert main(["sim", "inject", "short:VBUS", "--bench", str(bench)]) == 0
    assert "active faults: wrong-dut, short:VBUS" in capsys.readouterr().out
    assert main(["sim", "clear", "wrong-dut", "--bench", str(bench)]) == 0
    assert "active faults: short:VBUS" in capsys.readouterr().out
    assert main(["sim", "truth", "--control", description["control"], "--json"]) == 0
    truth = json.loads(capsys.readouterr().out)
    assert truth["faults"] == ["short:VBUS"]
    assert truth["instruments"]["psu"]["commands"][0]["line"] == "*IDN?"
    assert set(truth["nets"]) == {"VLOGIC", "VBUS", "MOTOR", "ID"}

    # a bad SPEC is a usage error of the CLI (exit 2), not a crash, and never sent
    with pytest.raises(SystemExit) as exited:
        main(["sim", "inject", "melt:VBUS", "--bench", str(bench)])
    assert exited.value.code == 2
    assert "unknown kind" in capsys.readouterr().err

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0
    assert not state.exists()


def test_commands_without_a_running_simulator_say_so(tmp_path, capsys):
    bench = write_bench(tmp_path)
    assert main(["sim", "truth", "--bench", str(bench)]) == 4
    assert "no running simulator" in capsys.readouterr().err


def test_control_channel_replies(sim_bench_factory):
    sim = sim_bench_factory(control=True)
    address = sim.control_address
    assert control.request(address, {"op": "inject", "spec": "hang:dmm"})["faults"] == ["hang:dmm"]
    assert control.request(address, {"op": "resources"})["resources"] == sim.resources
    with pytest.raises(SimulatorError, match="unknown op"):
        control.request(address, {"op": "explode"})
    with pytest.raises(SimulatorError, match="not active"):
        control.request(address, {"op": "clear", "spec": "drop:psu"})
    assert control.request(address, {"op": "clear"})["faults"] == []


def test_truth_reads_as_tables_and_history_as_a_timeline(sim_bench_factory, visa, relay_link,
                                                          capsys):
    sim = sim_bench_factory(control=True)
    relay_link(sim.resources["relays"]).set(2)
    visa(sim.resources["psu"]).query("VOLT 4,(@2);:CURR:PROT:STAT ON,(@2);:OUTP ON,(@2);*OPC?")
    sim.inject("short:VBUS")
    address = sim.control_address
    assert main(["sim", "truth", "--control", address]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("clock ") and out[1] == "faults    short:VBUS"
    assert any(line.split()[:4] == ["psu", "CH2", "VBUS", "off"] and line.endswith("OCP")
               for line in out)
    assert any(line.split() == ["K2", "relays", "2", "energised", "closed"] for line in out)
    assert any(line.startswith("board     relays (RB8-000117): trip -") for line in out)

    assert main(["sim", "truth", "--control", address, "--history", "VBUS", "--since", "60"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("history   VBUS, the last 60 s")
    timeline = [line.split(" s  ", 1)[1].strip() for line in out[2:]]
    wanted = ["supply: psu CH2 output off -> on", "4 V    33.33 mA", "fault-injected: short:VBUS",
              "protection-trip: psu CH2 OCP", "supply: psu CH2 output on -> off", "0 V         0 A"]
    rest = iter(timeline)
    assert all(line in rest for line in wanted), timeline  # in this order

    assert main(["sim", "truth", "--control", address, "--history", "VBUS", "--json"]) == 0
    history = json.loads(capsys.readouterr().out)
    assert history["net"] == "VBUS" and history["seconds"] == 60.0
    assert {"monotonic", "wall", "voltage", "current"} == set(history["samples"][0])


@pytest.mark.parametrize("argv, code, said", [
    (["--since", "5"], 2, "--since goes with --history NET"),
    (["--history", "VBUS", "--since", "0"], 2, "expected a positive number of seconds"),
    (["--history", "VBUS", "--since", "nan"], 2, "expected a positive number of seconds"),
    (["--history", "VCORE"], 4, 'SimulatorError: history: no net "VCORE" on this bench'),
])
def test_truth_refuses_bad_arguments(sim_bench_factory, capsys, argv, code, said):
    sim = sim_bench_factory(control=True)
    try:
        got = main(["sim", "truth", "--control", sim.control_address, *argv])
    except SystemExit as exited:  # argparse's own refusals
        got = exited.code
    assert got == code
    assert said in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--seed", "3"], ["--ports", "bench"]])
def test_background_options_a_detached_simulator_cannot_honour(tmp_path, capsys, option):
    bench = write_bench(tmp_path)
    assert main(["sim", "start", "--background", "--bench", str(bench), *option]) == 2
    assert capsys.readouterr().err.startswith("interlock sim start: ")
    assert not (tmp_path / "run" / "sim.json").exists()  # nothing was started
