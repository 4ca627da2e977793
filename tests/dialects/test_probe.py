"""``interlock probe`` on a simulator with one of each family finds and names them all,
asking each only who it is, and prints a stanza that bench.toml accepts for each."""

from __future__ import annotations

import os
import re
import time

import pytest

from interlock.cli import main
from interlock.commands.probe import questions
from interlock.config import load_bench
from interlock.dialects import dialects
from interlock.sim.bench import SimulatedBench
from interlock.sim.client import SimulatorState, state_path, write_state
from tests.controller.support import edited_bench
from tests.dialects.support import where_line

MARKER = "# --- relays: name -> board channel"
# The default bench's own instruments are its psu, dmm and relays.
DEFAULT = {"keysight-e36300": "psu", "keysight-truevolt": "dmm", "interlock-rb8": "relays"}
ONE_OF_EACH = {d: DEFAULT.get(d, d.replace("-", "_")) for d in sorted(dialects())}
SERIAL = {d for d in dialects() if dialects()[d].link.kind != "visa-socket"}

# Every line a probe question sends on a serial port (the RB8's framed ID aside); on a
# pty every family hears every question, so each twin may have heard any of them.
PROBE_LINES = {"*IDN?", "SYST:REM", "SYST:LOC", "", "ver", "id get", "relay readall"}
RB8_ID_FRAME = re.compile(r"[0-9A-F]{4}\|ID\*[0-9A-F]{4}")


def _stanza(dialect: str) -> str:
    d = dialects()[dialect]
    model = next(iter(d.models.values()))
    # The RS-232 families' *IDN? says serial 0, always.
    serial = "0" if d.identity and "(?P<serial>0)" in d.identity.pattern.pattern else "20240001"
    return (
        f'[instruments.{ONE_OF_EACH[dialect]}]\ndriver = "{d.driver}"\n{where_line(dialect)}\n'
        f'identity = {{ maker = "{model.maker}", model = "{model.model}", serial = "{serial}" }}'
    )


@pytest.fixture(scope="module")
def one_of_each(tmp_path_factory):
    """One simulator for the module: every family's twin (its first model), running, with
    the state file by which probe finds it."""
    directory = tmp_path_factory.mktemp("one-of-each")
    added = "\n\n".join(_stanza(d) for d in ONE_OF_EACH if d not in DEFAULT)
    bench_file = edited_bench(directory, {"bench.toml": [(MARKER, f"{added}\n\n{MARKER}")]})
    sim = SimulatedBench(bench_file, ports="free")
    sim.start()
    try:
        bench = load_bench(bench_file)
        state_path(bench).parent.mkdir(parents=True, exist_ok=True)
        state = SimulatorState(
            os.getpid(), bench.name, str(bench_file), bench.sha256, "", sim.resources, 60.0,
            started=time.time(),
        )  # fmt: skip
        write_state(state_path(bench), state)
        yield bench_file, sim
    finally:
        sim.stop()


def _received(sim: SimulatedBench) -> dict[str, list[str]]:
    return {
        name: [c["line"] for c in sim.truth()["instruments"].get(name, {}).get("commands", [])]
        for name in ONE_OF_EACH.values()
    }


def test_probe_names_every_twin_of_a_running_simulator(one_of_each, capsys):
    bench_file, sim = one_of_each
    before = _received(sim)
    assert main(["probe", "--bench", str(bench_file)]) == 0
    out = capsys.readouterr().out
    for dialect, name in ONE_OF_EACH.items():
        model = next(iter(dialects()[dialect].models))
        assert f"[instruments.{name}]" in out, out
        assert f"dialect {dialect} " in out and f" {model} " in out, (dialect, out)
        assert sim.resources[name] in out
    after = _received(sim)
    for dialect, name in ONE_OF_EACH.items():
        sent = after[name][len(before[name]) :]
        if dialect == "interlock-rb8":
            continue  # the board's frames are checked below, by its state
        if dialect not in SERIAL:  # a socket is one instrument's: one question, its own
            assert sent == ["*IDN?"], (name, sent)
            continue
        # On a serial port each twin hears the questions asked before its own: nothing
        # but those, and nothing that sets anything.
        pieces = [p for line in sent for p in re.split(r"[\r\n]", line)]
        assert all(p in PROBE_LINES or RB8_ID_FRAME.fullmatch(p) for p in pieces), (name, sent)
    # The RS-232 SCPI families: remote for the one question, then their panel back.
    for dialect in ("keysight-e3631a", "keysight-e3632a", "hp-34401a"):
        name = ONE_OF_EACH[dialect]
        assert after[name][len(before[name]) :] == ["SYST:REM", "*IDN?", "SYST:LOC"]
        assert sim.instruments[name].remote is False
    for name, twin in sim.instruments.items():
        for channel in getattr(twin, "channels", {}).values():
            assert channel.output is False, name
    assert not sim.switch_units[ONE_OF_EACH["numato-relay"]].relays.closed
    assert not any(sim.relay_boards["relays"].contacts())


def test_every_printed_stanza_is_one_bench_toml_accepts(one_of_each, capsys):
    bench_file, sim = one_of_each
    assert main(["probe", *sim.resources.values()]) == 0
    out = capsys.readouterr().out
    stanzas, lines = [], iter(out.splitlines())
    for line in lines:  # each stanza: from its header to the blank line after it
        if line.startswith("  [instruments."):
            stanzas.append([line[2:], *(more[2:] for more in iter(lines.__next__, ""))])
    # Probed without the simulator's names (supply1, meter1, switch1, ...): renamed apart;
    # the relay board's takes the place of the bench's own (one board per bench).
    probed = "\n\n".join(
        "\n".join([s[0].replace("[instruments.", "[instruments.probed_"), *s[1:]]) for s in stanzas
    )
    text = re.sub(r"\[instruments\.relays\]\n(?:.+\n)+", "", bench_file.read_text())
    probed = re.sub(r"probed_\w+(?=\]\ndriver = \"relay-board\")", "relays", probed)
    text = text.replace(MARKER, f"{probed}\n\n{MARKER}", 1)
    (bench_file.parent / "probed.toml").write_text(text)
    bench = load_bench(bench_file.parent / "probed.toml")
    found = {i.dialect: i for n, i in bench.instruments.items() if n.startswith("probed_")}
    found["interlock-rb8"] = bench.instruments["relays"]
    assert sorted(found) == sorted(ONE_OF_EACH)
    for dialect, instrument in found.items():
        assert instrument.where == sim.resources[ONE_OF_EACH[dialect]] or (
            instrument.where == f"ASRL{sim.resources[ONE_OF_EACH[dialect]]}::INSTR"
        )


def test_a_port_named_twice_is_asked_once(one_of_each, capsys):
    _, sim = one_of_each
    resource = sim.resources[ONE_OF_EACH["keysight-e3632a"]]  # ASRL/dev/pts/N::INSTR
    port = resource[len("ASRL") : -len("::INSTR")]
    before = len(_received(sim)[ONE_OF_EACH["keysight-e3632a"]])
    assert main(["probe", port, resource]) == 0
    assert capsys.readouterr().out.count("[instruments.") == 1
    assert _received(sim)[ONE_OF_EACH["keysight-e3632a"]][before:].count("*IDN?") == 1


def test_serial_questions_only_ask_newline_ended_lines_before_unended_ones():
    asked = questions(serial=True)
    ends = [q.asked.link.write_termination for q in asked]
    assert ends == sorted(ends, key=lambda e: (not e.endswith("\n"), not e))
    covered = {d.name for q in asked for d in q.family}
    assert covered == {d for d in SERIAL if dialects()[d].identity is not None}
    for question in asked:  # a query, and at most the remote and local lines around it
        family = question.asked
        assert family.identity is not None and family.identity.query.template.endswith("?")
        assert {c.template for k, c in family.commands.items() if k in ("remote", "local")} <= {
            "SYST:REM",
            "SYST:LOC",
        }


def test_a_resource_nobody_answers_on_is_said_so_and_fails(capsys, free_tcp_port):
    assert main(["probe", "--timeout", "0.2", f"TCPIP::127.0.0.1::{free_tcp_port}::SOCKET"]) == 1
    assert "no known instrument answered" in capsys.readouterr().out
