"""``interlock probe`` on a simulator with one of each make finds and names them all,
asking each only who it is, and prints a stanza that bench.toml accepts."""

from __future__ import annotations

import os
import time

import pytest

from interlock.cli import main
from interlock.config import load_bench
from interlock.sim.client import SimulatorState, state_path, write_state
from tests.controller.support import edited_bench

ONE_OF_EACH = [
    (
        "# --- relays: name -> board channel",
        '[instruments.korad]\ndriver = "supply"\nport = "/dev/ttyUSB0"\n'
        'identity = { maker = "KORAD", model = "KA3005P" }\n\n'
        '[instruments.rigol]\ndriver = "supply"\nresource = "TCPIP::127.0.0.1::5555::SOCKET"\n'
        'identity = { maker = "RIGOL TECHNOLOGIES", model = "DP832A", serial = "DP8B0001" }\n\n'
        "# --- relays: name -> board channel",
    ),
]
EXPECTED = {
    "psu": ("keysight-e36300", "E36312A"),
    "dmm": ("keysight-truevolt", "34461A"),
    "relays": ("interlock-rb8", "RB8"),
    "korad": ("korad-ka", "KA3005P"),
    "rigol": ("rigol-dp800", "DP832A"),
}


@pytest.fixture
def one_of_each(tmp_path, sim_bench_factory):
    bench_file = edited_bench(tmp_path, {"bench.toml": ONE_OF_EACH})
    sim = sim_bench_factory(bench_file)
    return bench_file, sim


def test_probe_names_every_twin_of_a_running_simulator(one_of_each, capsys):
    bench_file, sim = one_of_each
    bench = load_bench(bench_file)
    state_path(bench).parent.mkdir(parents=True, exist_ok=True)
    write_state(
        state_path(bench),
        SimulatorState(
            os.getpid(),
            bench.name,
            str(bench_file),
            bench.sha256,
            "",
            sim.resources,
            60.0,
            started=time.time(),
        ),
    )
    lines = {
        name: list(sim.truth()["instruments"].get(name, {}).get("commands", []))
        for name in EXPECTED
    }
    assert main(["probe", "--bench", str(bench_file), *[]]) == 0
    out = capsys.readouterr().out
    for name, (dialect, model) in EXPECTED.items():
        assert f"[instruments.{name}]" in out, out
        assert f"dialect {dialect} " in out and f" {model} " in out
        assert sim.resources[name] in out
    # Nothing but identity queries reached the supplies and the meter.
    for name in ("psu", "dmm", "korad", "rigol"):
        sent = sim.truth()["instruments"][name]["commands"][len(lines[name]) :]
        assert sent and {c["line"] for c in sent} <= {"*IDN?"}, sent
    assert sim.instruments["psu"].channels[1].output is False


def test_the_printed_stanza_is_one_bench_toml_accepts(one_of_each, capsys, tmp_path):
    _, sim = one_of_each
    assert main(["probe", sim.resources["rigol"]]) == 0
    out = capsys.readouterr().out
    stanza = "\n".join(
        line[2:]
        for line in out.splitlines()
        if line.startswith("  ") and not line.startswith("   ")
    )
    stanza = stanza[stanza.index("[instruments.") :]
    assert 'driver = "supply"' in stanza and 'serial = "DP8B0001"' in stanza
    text = (
        (tmp_path / "bench.toml")
        .read_text()
        .replace(
            "# --- relays: name -> board channel",
            stanza.replace("supply1", "probed") + "\n\n# --- relays: name -> board channel",
            1,
        )
    )
    (tmp_path / "bench.toml").write_text(text)
    assert load_bench(tmp_path / "bench.toml").instruments["probed"].dialect == "rigol-dp800"


def test_a_resource_nobody_answers_on_is_said_so_and_fails(capsys, free_tcp_port):
    assert main(["probe", "--timeout", "0.2", f"TCPIP::127.0.0.1::{free_tcp_port}::SOCKET"]) == 1
    assert "no known instrument answered" in capsys.readouterr().out
