"""The DMM6500 twin answers a plain pyvisa client over TCP as its SCPI command set
does (research notes, table tests 1-13): *LANG? first, MODEL in the identity, quoted
function names, 9.9E+37 for an overflow, no reply at all to a query it cannot answer,
and a *LANG change that waits for the next power-up."""

from __future__ import annotations

import threading

import pytest
import pyvisa

from interlock.sim.dut import Load
from interlock.sim.electrical import ElectricalBench, Route
from interlock.sim.instrument import IdentityString
from interlock.sim.loopthread import EventLoopThread
from interlock.sim.server import InstrumentServer
from interlock.sim.truth import GroundTruth
from interlock.sim.twins.dmm6500 import Dmm6500Meter

IDN = "KEITHLEY INSTRUMENTS,MODEL DMM6500,04493036,1.7.3c"
NO_REPLY_WAIT = 300  # ms: long enough for a reply the twin should not send


@pytest.fixture
def dmm():
    truth = GroundTruth(["IN"])
    electrical = ElectricalBench(
        [Route("IN", None, None, "K1")], {"IN": Load(resistance=1e4)}, truth, threading.RLock()
    )
    electrical.set_relay("K1", True)
    electrical.set_stray("IN", 5.0)  # 5 V on the input
    identity = IdentityString("KEITHLEY INSTRUMENTS", "DMM6500", "04493036", "1.7.3c")
    twin = Dmm6500Meter("dmm", identity, electrical, truth)
    loop = EventLoopThread("dmm6500-twin")
    loop.start()
    server = InstrumentServer(twin, truth, 0.0, "127.0.0.1", 0)
    loop.run(server.start())
    rm = pyvisa.ResourceManager("@py")  # shared with the drivers: never closed here
    inst = rm.open_resource(server.resource, read_termination="\n", write_termination="\n")
    inst.timeout = 2000
    yield inst, twin
    inst.close()
    loop.run(server.close())
    loop.stop()


def no_reply(inst, line: str) -> bool:
    """Nothing comes back to ``line`` (and the session stays usable)."""
    inst.write(line)
    inst.timeout = NO_REPLY_WAIT
    try:
        inst.read()
    except pyvisa.errors.VisaIOError:
        return True
    finally:
        inst.timeout = 2000
    return False


def reading(text: str) -> float:
    assert text == f"{float(text):.6E}", text  # 5.000000E+00
    return float(text)


TABLE = [
    # (line, the reply; None: a command, answered by nothing)
    ("*LANG?", "SCPI"),
    ("*IDN?", IDN),
    (':SENS:FUNC "VOLT:DC"', None),
    (":SENS:FUNC?", '"VOLT:DC"'),
    (":SENS:VOLT:RANG 10", None),
    (":SENS:VOLT:RANG:AUTO?", "0"),
    (":SENS:VOLT:RANG:AUTO 1", None),
    (":SENS:VOLT:RANG:AUTO?", "1"),
    (":SENS:VOLT:RANG 1", None),
    (":READ?", "9.900000E+37"),  # 5 V on the 1 V range: overflow
    (":SENS:VOLT:NPLC 1", None),
    (":SENS:VOLT:NPLC?", "1.000000E+00"),
    (":SENS:VOLT:NPLC 20", None),  # beyond 15 NPLC
    (":SYST:ERR?", '-222,"Data out of range"'),
    (":SENS:VOLT:NPLC?", "1.000000E+00"),
    (":ROUT:TERM?", "FRON"),
    (":SENS:VOLT:RANG:AUTO 0;:SENS:VOLT:RANG 10", None),  # compound, as PyMeasure sends
    (":SENS:VOLT:RANG:AUTO?", "0"),
    ("*RST", None),
    (":SENS:VOLT:NPLC?", "1.000000E+00"),
    (":SYST:ERR?", '+0,"No error"'),
]


def test_the_twin_answers_as_its_command_set_says(dmm):
    inst, _ = dmm
    for line, expected in TABLE:
        if expected is None:
            inst.write(line)
        else:
            assert inst.query(line) == expected, line


def test_readings_and_a_measure_that_changes_the_function(dmm):
    inst, _ = dmm
    assert reading(inst.query(":READ?")) == pytest.approx(5.0, abs=1e-3)
    reading(inst.query(":MEAS:CURR:DC?"))
    assert inst.query(":SENS:FUNC?") == '"CURR:DC"'  # :MEAS switched it, and it stays


def test_a_query_it_cannot_answer_gets_no_reply_and_an_error(dmm):
    inst, _ = dmm
    assert no_reply(inst, "FOO?")
    assert inst.query(":SYST:ERR?") == '-113,"Undefined header"'


def test_a_language_change_waits_for_the_power_up_and_then_answers_no_scpi(dmm):
    inst, twin = dmm
    inst.write("*LANG TSP")
    assert inst.query("*LANG?") == "SCPI"  # until the next power-up
    twin.power_cycle()
    assert inst.query("*LANG?") == "TSP"
    assert no_reply(inst, ":READ?")
    assert inst.query("*IDN?") == IDN
