"""The Keithley 2230 twin answers a plain pyvisa client as the reference drivers and the
multichannel manual say (research notes, table tests 9-14, 16): a selected channel,
an output switch per channel and a general one, plain decimal replies."""

from __future__ import annotations

import pytest

from interlock.sim.dut import Load
from interlock.sim.instrument import IdentityString
from tests.dialects.twins import play_table, served_twin, visa_client

IDENTITY = IdentityString("Keithley instruments", "2230-30-1", "9203269", "1.16-1.04")

TABLE = [
    # (line, the reply; None: no reply; a number: a measurement, to within its noise)
    ("*IDN?", "Keithley instruments, 2230-30-1, 9203269, 1.16-1.04"),
    ("SYST:REM", None),
    ("INST:SEL CH1;:VOLT 1.456", None),
    ("INST:SEL CH1;:VOLT?", "1.456"),
    ("INST:SEL?", "CH1"),
    ("INST:SEL CH3", None),
    ("CURR 5", None),  # CH3 is rated 5 A
    ("CURR?", "5.000"),
    ("VOLT 7", None),  # CH3 is rated 6 V: refused, the setting kept
    ("SYST:ERR?", '-222,"Data out of range"'),
    ("VOLT?", "0.000"),
    ("INST:SEL CH2", None),
    ("CHAN:OUTP ON", None),
    ("CHAN:OUTP?", "1"),
    ("OUTP?", "0"),  # the general switch is still off
    ("MEAS:VOLT? CH1", 0.0),  # not live: the general switch is off
    ("OUTP ON", None),
    ("INST:SEL CH1;:CHAN:OUTP ON", None),
    ("MEAS:VOLT? CH1", 1.456),  # both switches on
    ("MEAS:CURR? CH1", 0.01456),  # 100 ohm
    ("OUTP 0", None),  # every output off at once
    ("OUTP?", "0"),
    ("MEAS:VOLT? CH1", 0.0),
    ("INST:SEL CH1;:CHAN:OUTP?", "1"),  # its own switch stays on
    ("SYST:ERR?", '+0,"No error"'),
]


@pytest.fixture
def keithley():
    loads = {"OUT1": Load(resistance=100.0)}
    with (
        served_twin("keithley-2230", IDENTITY, loads) as served,
        visa_client(served.resource, "keithley-2230") as client,
    ):
        yield client


def test_the_twin_answers_as_the_reference_drivers_say(keithley):
    play_table(keithley, TABLE)
