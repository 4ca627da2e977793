"""The Rigol DP800 twin answers a plain pyvisa client as the DP800 programming guide
says (research notes, table tests 1-20): the channel in the header or as a parameter,
ON/OFF and YES/NO flags, OVP/OCP off after *RST, and a protection clear that turns the
output back on where the guide says it does."""

from __future__ import annotations

import pytest
import pyvisa

from interlock.drivers.visa import resource_manager
from tests.controller.support import edited_bench

RIGOL = [
    (
        'identity = { maker = "Keysight Technologies", model = "E36312A", serial = "MY59001234" }',
        'identity = { maker = "RIGOL TECHNOLOGIES", model = "DP832A", serial = "DP8B26AM00234" }',
    ),
    ("TCPIP::127.0.0.1::5025::SOCKET", "TCPIP::127.0.0.1::5555::SOCKET"),
]


@pytest.fixture
def rigol(tmp_path, sim_bench_factory):
    sim = sim_bench_factory(edited_bench(tmp_path, {"bench.toml": RIGOL}))
    # The process's one resource manager, left open: closing a manager of one's own
    # would close the session every driver of this process shares.
    psu = resource_manager("@py").open_resource(
        sim.resources["psu"], read_termination="\n", write_termination="\n", timeout=2000
    )
    yield psu, sim
    psu.close()


def ask(psu: pyvisa.resources.MessageBasedResource, line: str) -> str | None:
    if "?" in line:
        return psu.query(line)
    psu.write(line)
    return None


TABLE = [
    # (line, the reply; None: a command, no reply)
    ("*IDN?", "RIGOL TECHNOLOGIES,DP832A,DP8B26AM00234,00.01.17"),
    (":OUTP? CH1", "OFF"),
    (":OUTP:OVP? CH1", "OFF"),  # off after *RST
    (":OUTP:OVP:VAL? CH1", "33.000"),
    (":APPL CH1,5,1", None),
    (":APPL? CH1", "CH1:30V/3A,5.000,1.0000"),
    (":APPL? CH1,VOLT", "5.000"),
    (":INST:NSEL 3", None),
    (":INST:NSEL?", "3"),
    (":INST?", "CH3:5V/3A"),
    (":SOUR2:VOLT 7.5", None),
    (":SOUR2:VOLT?", "7.500"),
    (":SOUR2:CURR 1.5", None),
    (":SOUR2:CURR?", "1.5000"),
    (":SOUR:VOLT?", "0.000"),  # no suffix: the chosen channel (CH3)
    (":OUTP CH1,ON", None),
    (":OUTP? CH1", "ON"),
    (":OUTP:OVP:VAL CH1,8.8", None),
    (":OUTP:OVP:VAL? CH1", "8.800"),
    (":OUTP:OCP:VAL CH1,2", None),
    (":OUTP:OCP:VAL? CH1", "2.000"),
    (":OUTP:OVP CH1,ON", None),
    (":OUTP:OVP? CH1", "ON"),
    (":OUTP:OVP:QUES? CH1", "NO"),
    (":STAT:QUES:INST:ISUM2:COND?", "0"),  # CH2 off: neither CC nor CV
    (":STAT:QUES:INST:ISUM1:COND?", "2"),  # CH1 on, no load: CV
    (":OUTP:MODE? CH2", "CV"),  # says CV for an output that is off
    (":SYST:ERR?", '+0,"No error"'),
    (":FOO:BAR", None),
    (":SYST:ERR?", '-113,"Undefined header;keyword cannot be found"'),
    (":SOUR4:VOLT 1", None),  # no fourth channel
    (":SYST:ERR?", '-114,"Header suffix out of range"'),
    (":SOUR1:VOLT 40", None),  # beyond the channel: refused, the setting kept
    (":SYST:ERR?", '-222,"Data out of range"'),
    (":SOUR1:VOLT?", "5.000"),
    (":SYST:RWL ON", None),
    (":SYST:RWL?", "ON"),
    (":SYST:RWL OFF", None),
    (":SYST:KLOC:STAT?", "OFF"),
    ("*OPC?", "1"),
    (":OUTP:TRAC? CH1", "OFF"),  # tracking: CH1 and CH2 of a DP832A, off after *RST
    (":OUTP:TRAC? CH3", "NONE"),  # a channel without it
    (":OUTP:TRAC CH2,ON", None),
    (":OUTP:TRAC? CH2", "ON"),
    ("*RST", None),
    (":OUTP? CH1", "OFF"),
    (":OUTP:OVP? CH1", "OFF"),
    (":OUTP:TRAC? CH2", "OFF"),
    (":SYST:ERR?", '+0,"No error"'),
]


def test_the_twin_answers_as_the_programming_guide_says(rigol):
    psu, _ = rigol
    for line, expected in TABLE:
        assert ask(psu, line) == expected, line


def test_measure_all_is_volts_amps_and_watts(rigol):
    psu, _ = rigol
    psu.write(":APPL CH1,5,1")
    psu.write(":OUTP CH1,ON")
    volts, amps, watts = (float(x) for x in psu.query(":MEAS:ALL? CH1").split(","))
    assert volts == pytest.approx(5.0, abs=0.01)
    assert abs(amps) < 1e-3 and abs(watts) < 0.01  # K1 open: no load


def test_an_ovp_trip_is_cleared_as_a_label_or_with_the_output_back_on(rigol):
    psu, _ = rigol
    for line in (":OUTP:OVP:VAL CH1,8", ":OUTP:OVP CH1,ON", ":APPL CH1,9,1", ":OUTP CH1,ON"):
        psu.write(line)  # 9 V against an OVP level of 8 V: it trips at once
    assert psu.query(":OUTP:OVP:QUES? CH1") == "YES"
    assert psu.query(":OUTP? CH1") == "OFF"
    psu.write(":OUTP CH1,ON")  # a tripped output stays off
    assert psu.query(":OUTP? CH1") == "OFF"
    assert psu.query(":SYST:ERR?").startswith("-221,")
    psu.write(":APPL CH1,5")  # the cause removed
    psu.write(":OUTP:OVP:CLEAR CH1")  # the label only: the output stays off
    assert (psu.query(":OUTP:OVP:QUES? CH1"), psu.query(":OUTP? CH1")) == ("NO", "OFF")
    psu.write(":APPL CH1,9")
    psu.write(":OUTP CH1,ON")
    assert psu.query(":SOUR1:VOLT:PROT:TRIP?") == "YES"
    psu.write(":APPL CH1,5")
    psu.write(":SOUR1:VOLT:PROT:CLE")  # the guide's warning: this one turns it back on
    assert psu.query(":OUTP? CH1") == "ON"


@pytest.mark.parametrize("when", ["before connecting", "before arming"])
def test_a_channel_tracking_another_is_never_armed(tmp_path, sim_bench_factory, when):
    """Tracking, set at the front panel, makes a setpoint for CH1 change CH2's: no
    readback of CH1 shows it. Found at connecting, it is a fault; found at arming, the
    arm is refused; either way nothing is programmed or energised."""
    from tests.controller.support import close_rig, make_rig
    from tests.dialects.support import assert_coupled_never_armed, motor_bench

    bench = motor_bench(tmp_path, "rigol-dp800")  # a DP832's CH1 feeds the motor
    rig = make_rig(sim_bench_factory, tmp_path, bench=bench, connect=False)
    try:
        psu = rig.sim.instruments["motor_psu"]
        if when == "before connecting":
            psu.execute(":OUTP:TRAC CH1,ON")
            rig.controller.connect()
            cause = rig.controller.fault_cause or ""
            assert cause.startswith("found-coupled: motor_psu CH1 tracks another"), cause
        else:
            rig.controller.connect()
            assert_coupled_never_armed(
                rig, "motor_psu", 1, lambda twin: twin.execute(":OUTP:TRAC CH1,ON")
            )
        lines = [c["line"] for c in rig.truth()["instruments"]["motor_psu"]["commands"]]
        settings = [line for line in lines if "?" not in line and not line.endswith(",OFF")]
        assert not any(line.startswith((":SOUR", ":APPL", ":OUTP")) for line in settings)
        assert not psu.live_outputs()
    finally:
        close_rig(rig)
