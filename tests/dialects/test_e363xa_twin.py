"""The E3631A and E3632A/E3633A twins answer a plain pyvisa client on a pty (ASRL, 9600
baud 8N2, DTR/DSR) as the user's guides say (research notes, table tests 1-20): nothing
listened to before SYST:REM, a selected output, one output switch on the E3631A, OVP and
OCP at levels of their own on the E3632A, cleared back to the output's old state."""

from __future__ import annotations

import contextlib
import re

import pytest
import pyvisa.errors

from interlock.errors import ConfigError
from interlock.sim.dut import Load
from interlock.sim.instrument import IdentityString
from tests.controller.support import edited_bench
from tests.dialects.twins import served_twin, visa_client

E3631A = IdentityString("HEWLETT-PACKARD", "E3631A", "0", "2.1-5.0-1.0")
E3632A = IdentityString("HEWLETT-PACKARD", "E3632A", "0", "1.7-5.0-1.0")
NUMBER = re.compile(r"[-+]\d\.\d{8}E[-+]\d\d")

E3631A_TABLE = [
    # (line, the reply; None: no reply; a float: a number, to within the meter's noise)
    ("OUTP ON", None),  # in local: refused (error 550), nothing happens
    ("OUTP?", None),  # ... and a query is not answered either
    ("SYST:REM", None),
    ("SYST:ERR?", '+550,"Error"'),  # positive code's text: unconfirmed
    ("SYST:ERR?", '+550,"Error"'),  # one for each line sent in local
    ("*IDN?", "HEWLETT-PACKARD,E3631A,0,2.1-5.0-1.0"),
    ("OUTP?", "0"),
    ("INST?", "P6V"),
    ("INST:NSEL?", "1"),
    ("APPL? P6V", '"0.000000,5.000000"'),
    ("APPL P25V, 12.0, 0.5", None),
    ("INST?", "P25V"),  # APPLy selects the output
    ("APPL? P25V", '"12.000000,0.500000"'),
    ("VOLT?", 12.0),
    ("INST:NSEL 3", None),
    ("INST?", "N25V"),
    ("VOLT -12", None),  # N25V takes negative volts
    ("VOLT?", -12.0),
    ("VOLT 5", None),  # ... and not positive ones
    ("SYST:ERR?", '-222,"Data out of range"'),
    ("INST:NSEL 1;:VOLT 7", None),  # P6V programs to 6.18 V
    ("SYST:ERR?", '-222,"Data out of range"'),
    ("INST:NSEL 1;:VOLT?", 0.0),  # the setting kept
    ("OUTP ON", None),  # one switch: every output on
    ("OUTP?", "1"),
    ("MEAS:VOLT? P25V", 12.0),  # 100 ohm on P25V
    ("MEAS:CURR? P25V", 0.12),
    ("OUTP:TRAC ON", None),
    ("OUTP:TRAC?", "1"),
    ("OUTP OFF", None),
    ("MEAS:VOLT? P25V", 0.0),
    ("TRIGG:DEL 3", None),
    ("SYST:ERR?", '-113,"Undefined header"'),
    ("VOLT:PROT 10", None),  # no OVP on the E3631A
    ("SYST:ERR?", '-113,"Undefined header"'),
    ("SYST:ERR?", '+0,"No error"'),
]

E3632A_TABLE = [
    ("SYST:REM", None),
    ("*IDN?", "HEWLETT-PACKARD,E3632A,0,1.7-5.0-1.0"),
    ("CURR:PROT:STAT?", "1"),  # on after *RST
    ("VOLT:PROT:STAT?", "1"),
    ("VOLT:PROT:TRIP?", "0"),
    ("STAT:QUES:COND?", "0"),  # output off
    ("VOLT:RANG?", "P15V"),  # LOW after *RST
    ("VOLT 20", None),  # beyond the LOW range
    ("SYST:ERR?", '-222,"Data out of range"'),
    ("VOLT:RANG HIGH", None),
    ("VOLT:RANG?", "P30V"),
    ("VOLT 20", None),
    ("VOLT?", 20.0),
    ("APPL?", '"20.00000,4.12000"'),  # 7 A cut to the range's 4.12 A (a guess)
    ("APPL 5, 1", None),
    ("CURR?", 1.0),
    ("VOLT:PROT 12", None),
    ("VOLT:PROT?", 12.0),
    ("CURR:PROT 1", None),
    ("CURR:PROT?", 1.0),
    ("OUTP ON", None),
    ("STAT:QUES:COND?", "2"),  # 100 ohm: 50 mA, CV
    ("VOLT 13", None),  # above the OVP level: tripped, off
    ("VOLT:PROT:TRIP?", "1"),
    ("OUTP?", "0"),
    ("VOLT 5", None),
    ("VOLT:PROT:CLE", None),  # the output back to its state before the trip: on
    ("VOLT:PROT:TRIP?", "0"),
    ("OUTP?", "1"),
    ("OUTP OFF", None),
]


def run(client, table):
    for line, reply in table:
        if isinstance(reply, float):
            got = client.query(line)
            assert NUMBER.fullmatch(got), (line, got)
            assert float(got) == pytest.approx(reply, abs=2e-3), line
        elif reply is None:
            client.write(line)
            if not line.endswith("?"):
                continue
            with pytest.raises(pyvisa.errors.VisaIOError):  # nothing comes: a timeout
                client.read()
        else:
            assert client.query(line) == reply, line


def test_the_e3631a_twin_answers_as_its_guide_says():
    loads = {"OUT2": Load(resistance=100.0)}
    with (
        served_twin("keysight-e3631a", E3631A, loads) as served,
        visa_client(served.resource, "keysight-e3631a", timeout=0.5) as client,
    ):
        assert served.resource.startswith("ASRL/dev/")
        run(client, E3631A_TABLE)


def test_the_e3632a_twin_answers_as_its_guide_says():
    with (
        served_twin("keysight-e3632a", E3632A, {"OUT1": Load(resistance=100.0)}) as served,
        visa_client(served.resource, "keysight-e3632a", timeout=0.5) as client,
    ):
        run(client, E3632A_TABLE)


@contextlib.contextmanager
def e3632a_driver(tmp_path, ohms: float):
    """The generic supply driver speaking the E3632A dialect to its twin, a load of
    ``ohms`` on the output: (the served twin, the driver)."""
    from interlock.dialects import dialects
    from interlock.drivers.registry import DriverSpec, build
    from interlock.journal import Journal

    with (
        served_twin("keysight-e3632a", E3632A, {"OUT1": Load(resistance=ohms)}) as served,
        Journal(tmp_path / "j.sqlite", bench="b") as journal,
    ):
        spec = DriverSpec("psu", dialects()["keysight-e3632a"], served.resource, journal, 1.0)
        psu = build("supply", spec, file="bench.toml", key="instruments.psu")
        psu.open()
        try:
            yield served, psu
        finally:
            psu.close()


def test_the_driver_clears_a_trip_and_the_output_stays_off(tmp_path):
    """The E3632A brings its output back when a trip is cleared: the dialect's clear lines
    turn it off in the same line, so the interlock's clear leaves it off."""
    with e3632a_driver(tmp_path, 100.0) as (served, psu):
        assert psu.program_ovp(1, 6.0) == pytest.approx(6.0)
        psu.program_current_limit(1, 0.5)
        assert psu.enable_ocp(1)
        psu.program_voltage(1, 5.0)
        assert psu.set_output(1, True)
        psu.program_voltage(1, 7.0)  # above the OVP level: trips
        (held,) = psu.settings([1])
        assert held.tripped and not held.output
        psu.program_voltage(1, 5.0)
        psu.clear_protection(1)
        (held,) = psu.settings([1])
        assert not held.tripped and not held.output
        assert not served.twin.live_outputs()


@pytest.mark.parametrize("trip", ["ovp", "ocp"])
def test_a_cleared_trip_brings_the_output_back_at_0_v_only(tmp_path, trip):
    """The clear restores the output to its state before the trip, at the setpoint that
    tripped it (the guide: lower the voltage first). The interlock clears at a reset,
    setpoints as they were: what comes back must come back at 0 V."""
    with e3632a_driver(tmp_path, 5.0) as (served, psu):
        psu.program_ovp(1, 6.0)
        psu.program_current_limit(1, 1.5)
        assert psu.enable_ocp(1)
        psu.program_voltage(1, 5.0)
        assert psu.set_output(1, True)  # 5 ohm: 1 A
        if trip == "ovp":
            psu.program_voltage(1, 7.0)  # above the OVP level
        else:
            psu.program_current_limit(1, 0.5)  # 1 A wanted, OCP at the limit: trips
        (held,) = psu.settings([1])
        assert held.tripped and not held.output
        psu.clear_protection(1)
        (held,) = psu.settings([1])
        assert not held.tripped and not held.output
        restored = served.truth.events("output-restored")
        assert restored, "the twin restores the output on a clear, as the guide says"
        assert all(event["volts"] == 0.0 for event in restored), restored


# The E3631A feeds MOTOR from P25V (and, in the second bench, VLOGIC from P6V too).
TWO_NETS = [
    (
        "# --- relays: name -> board channel",
        '[instruments.hp]\ndriver = "supply"\nresource = "ASRL/dev/ttyS0::INSTR"\n'
        'identity = { maker = "HEWLETT-PACKARD", model = "E3631A", serial = "0" }\n\n'
        "# --- relays: name -> board channel",
    ),
    (
        'supply = { instrument = "psu", channel = 3 }',
        'supply = { instrument = "hp", channel = 2 }',
    ),
]


def test_one_net_per_shared_output_switch(tmp_path):
    from interlock.config import load_configuration

    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = edited_bench(tmp_path / "one", {"bench.toml": TWO_NETS})
    assert load_configuration(one).bench.wiring["MOTOR"].supply.instrument == "hp"
    two = edited_bench(
        tmp_path / "two",
        {
            "bench.toml": [
                *TWO_NETS,
                (
                    'supply = { instrument = "psu", channel = 1 }',
                    'supply = { instrument = "hp", channel = 1 }',
                ),
            ]
        },
    )
    with pytest.raises(ConfigError) as error:
        load_configuration(two)
    assert error.value.key.startswith("wiring.") and error.value.key.endswith(".supply")
    assert "one net per shared output switch" in error.value.problem


def test_an_e3631a_tracking_found_on_is_never_armed(tmp_path, sim_bench_factory):
    """With OUTP:TRAC on (the front panel's Track key; off after *RST, which the interlock
    never sends), every P25V setpoint drives N25V too: found before arming, refused."""
    from tests.controller.support import close_rig, make_rig
    from tests.dialects.support import assert_coupled_never_armed

    def track(hp) -> None:  # at its panel (the twin listens in remote only)
        hp.execute("SYST:REM")
        hp.execute("OUTP:TRAC ON")

    bench = edited_bench(tmp_path, {"bench.toml": TWO_NETS})
    rig = make_rig(sim_bench_factory, tmp_path, bench=bench, arm=False)
    try:
        assert_coupled_never_armed(rig, "hp", 2, track)
    finally:
        close_rig(rig)
