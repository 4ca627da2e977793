"""The E3632A/E3633A output range, chosen at arming from the net's limits.

The motor net of the default bench is moved to an E3632A or E3633A twin over its pty
(VISA serial, as a real unit on RS-232), its power relay to a Numato module (10 A
contacts, where the RB8's are 2 A), and its limits edited: a net above the LOW range's
voltage arms in the HIGH range, one above the HIGH range's current in the LOW range,
one that needs both is refused at load, and a twin that does not take the range (or
says the old one) faults the bench at arming.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock.cli import main
from interlock.config import load_configuration
from interlock.dialects import dialects
from interlock.dialects.loader import load_dialect
from interlock.errors import ConfigError, InterlockError
from interlock.journal import JournalReader
from interlock.sim.twins import TWINS
from interlock.sim.twins.e363xa import E3632aSupply
from tests.controller.support import (
    assert_all_outputs_off,
    assert_intents_before_commands,
    close_rig,
    edited_bench,
    make_rig,
)
from tests.dialects.test_switch_units import NUMATO

ROOT = Path(__file__).resolve().parents[2]
DIALECT = "keysight-e3632a"
MARKER = "# --- relays: name -> board channel"
MOTOR_LIMITS = 'max_voltage = "12 V"\nmax_current = "600 mA"'


def bench(directory: Path, model: str, volts: str = "12 V", amps: str = "600 mA") -> Path:
    """The default bench with MOTOR on a ``model`` (channel 1) and its relay on a Numato
    module, the profile's MOTOR limits at ``volts`` and ``amps``."""
    stanza = (
        '[instruments.motor_psu]\ndriver = "supply"\nresource = "ASRL/dev/ttyS0::INSTR"\n'
        f'identity = {{ maker = "HEWLETT-PACKARD", model = "{model}", serial = "0" }}'
    )
    edits = {
        "bench.toml": [
            *NUMATO,
            (MARKER, f"{stanza}\n\n{MARKER}"),
            (
                'supply = { instrument = "psu", channel = 3 }',
                'supply = { instrument = "motor_psu", channel = 1 }',
            ),
        ],
        "profiles/mdb24.toml": [
            (MOTOR_LIMITS, f'max_voltage = "{volts}"\nmax_current = "{amps}"'),
        ],
    }
    return edited_bench(directory, edits)


def twin(rig) -> E3632aSupply:
    return rig.sim.instruments["motor_psu"]


def lines(rig) -> list[str]:
    return [c["line"] for c in rig.truth()["instruments"]["motor_psu"]["commands"]]


# -- the choice, pinned at load ------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "volts", "amps", "chosen"),
    [
        ("E3632A", "12 V", "600 mA", "P15V"),
        ("E3632A", "15 V", "7 A", "P15V"),  # the LOW range's own rating, both at once
        ("E3632A", "15.01 V", "600 mA", "P30V"),
        ("E3632A", "30 V", "4 A", "P30V"),
        ("E3633A", "8 V", "10 A", "P8V"),  # the Numato's contacts carry 10 A at most
        ("E3633A", "12 V", "10 A", "P20V"),
    ],
)
def test_the_first_range_that_covers_the_net_is_pinned(tmp_path, model, volts, amps, chosen):
    limits = load_configuration(bench(tmp_path, model, volts, amps)).limits
    assert limits.supply_ranges == {"MOTOR": chosen}


def test_a_supply_without_ranges_pins_none():
    assert load_configuration(ROOT / "bench.toml").limits.supply_ranges == {}


@pytest.mark.parametrize(
    ("model", "volts", "amps"),
    [("E3632A", "20 V", "5 A"), ("E3632A", "15.5 V", "4.01 A"), ("E3632A", "30 V", "7 A")],
)
def test_a_net_no_range_covers_is_refused_naming_file_and_key(tmp_path, model, volts, amps):
    with pytest.raises(ConfigError) as error:
        load_configuration(bench(tmp_path, model, volts, amps))
    assert error.value.file == str(tmp_path / "profiles" / "mdb24.toml")
    assert error.value.key == "nets.MOTOR"
    assert "no output range" in error.value.problem and "delivers both" in error.value.problem


def test_check_refuses_it_with_exit_2_and_no_traceback(tmp_path, monkeypatch, capsys):
    bench(tmp_path, "E3632A", "20 V", "5 A")
    monkeypatch.chdir(tmp_path)
    assert main(["check"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "ConfigError: profiles/mdb24.toml: nets.MOTOR: max_voltage 20 V with max_current 5 A: "
        "no output range of the E3632A CH1 delivers both (P15V 15 V / 7 A, P30V 30 V / 4 A); "
        "a profile may only tighten"
    ]


CHANNELS = [
    dialects()[DIALECT].models[m].channels[1]  # type: ignore[union-attr]
    for m in ("E3632A", "E3633A")
]
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 5e-324, -5e-324, 1e308, -1e308, 15.0, 15.000000000000002, 4.0, 7.0, 30.0]
)


@given(st.sampled_from(CHANNELS), ANY_FLOAT, ANY_FLOAT)
def test_the_range_chosen_covers_both_and_is_the_first_that_does(channel, volts, amps):
    """Over every float, NaN and infinities included: the range chosen delivers both (so no
    setting the net may be given is refused by the unit), none before it does, and when
    none is chosen none does."""
    chosen = channel.range_for(volts, amps)
    covering = [r for r in channel.ranges if volts <= r.max_voltage and amps <= r.max_current]
    if chosen is None:
        assert not covering
        return
    assert chosen is covering[0]
    assert volts <= chosen.max_voltage and amps <= chosen.max_current
    assert not (math.isnan(volts) or math.isnan(amps))


# -- arming, against the twin over its pty ----------------------------------------------------


@pytest.mark.parametrize(
    ("model", "volts", "setpoint", "chosen"),
    [("E3632A", "20 V", 18.0, "P30V"), ("E3633A", "12 V", 11.0, "P20V")],
)
def test_a_net_above_the_low_range_arms_in_the_high_range(
    sim_bench_factory, tmp_path, model, volts, setpoint, chosen
):
    rig = make_rig(sim_bench_factory, tmp_path, bench=bench(tmp_path, model, volts))
    try:
        assert rig.controller.state == "armed"
        rig.controller.set_voltage("MOTOR", setpoint)  # refused by a unit in its LOW range
        assert rig.controller.state == "armed"
        assert twin(rig).high is True
        assert twin(rig).channels[1].voltage == pytest.approx(setpoint)
        assert rig.controller.measure("MOTOR")["voltage"] < 0.5  # still off
        sent = lines(rig)
        settings = [s for s in sent if s.startswith(("VOLT", "CURR")) and "?" not in s]
        assert settings[0] == f"VOLT:RANG {chosen}"  # before anything else on the output
        assert sent[sent.index(settings[0]) + 1] == "VOLT:RANG?"  # read back at once
    finally:
        close_rig(rig)


def test_a_net_above_the_high_range_current_arms_in_the_low_range(sim_bench_factory, tmp_path):
    """A unit left in its HIGH range (P30V, 4 A) by someone: a net of 12 V and 5 A is
    armed in P15V, and its 5 A current limit is held."""
    rig = make_rig(
        sim_bench_factory, tmp_path, bench=bench(tmp_path, "E3632A", amps="5 A"), arm=False
    )
    try:
        with twin(rig).lock:
            twin(rig).high = True
        rig.controller.arm("operator")
        assert rig.controller.state == "armed"
        assert twin(rig).high is False
        assert twin(rig).channels[1].current == pytest.approx(5.0)
        assert "VOLT:RANG P15V" in lines(rig)
    finally:
        close_rig(rig)


def test_the_range_is_journaled_durably_before_it_goes_out_and_read_back(
    sim_bench_factory, tmp_path
):
    rig = make_rig(sim_bench_factory, tmp_path, bench=bench(tmp_path, "E3632A", "20 V"))
    try:
        assert_intents_before_commands(rig)  # every line on disk before it arrived
        with JournalReader(rig.journal.path) as reader:
            entries = list(reader.entries())
        (command,) = [e for e in entries if e.payload.get("quantity") == "range"]
        assert command.kind == "command"
        assert command.payload["instrument"] == "motor_psu"
        assert command.payload["net"] == "MOTOR" and command.payload["value"] == "P30V"
        after = [e for e in entries if e.seq > command.seq and e.kind == "readback"]
        assert after[0].payload["query"] == "VOLT:RANG?"  # the next exchange reads it back
        assert after[0].payload["reply"] == "P30V"
    finally:
        close_rig(rig)


def test_a_range_switched_since_arming_is_caught_before_the_net_goes_live(
    sim_bench_factory, tmp_path
):
    """Armed in P30V; someone switches the unit to P15V at its panel (a setpoint it holds
    fits both). Going live reads the range back with the output still off, and trips."""
    rig = make_rig(sim_bench_factory, tmp_path, bench=bench(tmp_path, "E3632A", "20 V"))
    try:
        rig.power_up_logic()
        rig.power_up_bus()
        rig.controller.set_voltage("MOTOR", 2.0)
        with twin(rig).lock:
            twin(rig).high = False
        with pytest.raises(InterlockError, match="output range reads back 'P15V', selected P30V"):
            rig.controller.output_on("MOTOR")
        assert rig.controller.state == "fault"
        assert "readback" in rig.controller.fault_cause
        assert not twin(rig).channels[1].output  # never turned on
        assert "OUTP ON" not in lines(rig)
        assert_all_outputs_off(rig)
    finally:
        close_rig(rig)


class IgnoresTheRange(E3632aSupply):
    """A mutant twin: takes VOLT:RANG and does nothing (stays in P15V)."""

    def _set_range(self, params) -> None:  # type: ignore[no-untyped-def]
        return None


class SaysTheOldRange(E3632aSupply):
    """A mutant twin: switches, but VOLT:RANG? answers the range it was in before."""

    def _set_range(self, params) -> None:  # type: ignore[no-untyped-def]
        self.said = self.high
        super()._set_range(params)

    def _register(self) -> None:
        names = ("P15V", "P30V") if self.model.model == "E3632A" else ("P8V", "P20V")
        self.commands.query(  # ahead of the twin's own: the first that matches answers
            "[SOURce:]VOLTage:RANGe", lambda p: names[getattr(self, "said", self.high)]
        )
        super()._register()


@pytest.mark.parametrize("mutant", [IgnoresTheRange, SaysTheOldRange])
def test_a_twin_that_does_not_take_the_range_faults_the_bench_at_arming(
    sim_bench_factory, tmp_path, monkeypatch, mutant
):
    monkeypatch.setitem(TWINS, DIALECT, mutant)
    rig = make_rig(sim_bench_factory, tmp_path, bench=bench(tmp_path, "E3632A", "20 V"), arm=False)
    try:
        assert isinstance(twin(rig), mutant)
        with pytest.raises(InterlockError, match="output range reads back 'P15V', selected P30V"):
            rig.controller.arm("operator")
        assert rig.controller.state == "fault"
        assert twin(rig).high is (mutant is SaysTheOldRange)  # each mutant as it says
        assert_all_outputs_off(rig)
        sent = lines(rig)
        assert not any(s.startswith(("VOLT ", "CURR ")) for s in sent), sent
    finally:
        close_rig(rig)


# -- the dialect's ranges table ------------------------------------------------------------

P15V = '{ name = "P15V", max_voltage = "15 V", max_current = "7 A" }'
P30V = '{ name = "P30V", max_voltage = "30 V", max_current = "4 A" }'


@pytest.mark.parametrize(
    ("old", "new", "key", "words"),
    [
        (
            f"    {P15V},\n    {P30V},",
            f"    {P30V},\n    {P15V},",
            "models.E3632A.channels.1.ranges[1]",
            "smallest first",
        ),
        (
            P15V,
            P15V.replace('"7 A"', '"7"'),
            "models.E3632A.channels.1.ranges[0].max_current",
            "add its unit",
        ),
        (
            P15V,
            P15V.replace(" }", ", wobble = 1 }"),
            "models.E3632A.channels.1.ranges[0].wobble",
            "unknown key",
        ),
        (P15V, P15V.replace("P15V", "P 15V"), "models.E3632A.channels.1.ranges[0].name", "letters"),
        (
            P30V,
            P30V.replace("P30V", "p15v"),
            "models.E3632A.channels.1.ranges[1].name",
            "named twice",
        ),
        (
            'max_voltage = "30 V", max_current = "7 A"',
            'max_voltage = "30 V", max_current = "4 A"',
            "models.E3632A.channels.1.max_current",
            "ranges reach at most (7)",
        ),
        (f"    {P15V},\n", "", "models.E3632A.channels.1.ranges", "two or more"),
        (f"    {P15V},\n", "    15,\n", "models.E3632A.channels.1.ranges[0]", "expected"),
        ('set_range = "VOLT:RANG {range}"\n', "", "models.E3632A", '"set_range"'),
        ('"VOLT:RANG {range}"', '"VOLT:RANG HIGH"', "commands.set_range", "takes {range}"),
        ('lock = "SYST:RWL"', 'lock = "SYST:RWL {range}"', "commands.lock", "only set_range"),
        (
            '"range?" = { send = "VOLT:RANG?", reply = "text" }',
            '"range?" = "VOLT:RANG?"',
            "queries.range?",
            'reply = "text"',
        ),
        # A model with several ranged outputs: the line must say which output.
        (
            '    { name = "P20V", max_voltage = "20 V", max_current = "10 A" },\n] }\n',
            '    { name = "P20V", max_voltage = "20 V", max_current = "10 A" },\n] }\n'
            '2 = { max_voltage = "20 V", max_current = "20 A", max_ovp = "22 V", ranges = [\n'
            '    { name = "P8V", max_voltage = "8 V", max_current = "20 A" },\n'
            '    { name = "P20V", max_voltage = "20 V", max_current = "10 A" },\n] }\n',
            "commands.set_range",
            "names its channel",
        ),
    ],
)
def test_a_mistake_in_the_ranges_names_the_file_and_key(tmp_path, old, new, key, words):
    source = ROOT / "interlock" / "dialects" / "keysight_e3632a.toml"
    text = source.read_text(encoding="utf-8")
    assert old in text
    broken = tmp_path / "keysight_e3632a.toml"
    broken.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_dialect(broken)
    assert error.value.file == f"{tmp_path.name}/keysight_e3632a.toml"
    assert error.value.key == key
    assert words in error.value.problem
