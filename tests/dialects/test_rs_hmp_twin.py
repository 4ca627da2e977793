"""The R&S HMP twin answers a plain pyvisa client as the reference drivers say (research
notes, table tests 1-14): a selected channel, an arming switch per channel and a
general output, OVP always armed, the electronic fuse as over-current protection."""

from __future__ import annotations

import pytest

from interlock.sim.dut import Load
from interlock.sim.instrument import IdentityString
from tests.dialects.twins import play_table, served_twin, visa_client

IDENTITY = IdentityString("ROHDE&SCHWARZ", "HMP4040", "109401", "HW50020003/SW2.70")

TABLE = [
    # (line, the reply; None: no reply; a number: a measurement, to within its noise)
    ("*IDN?", "ROHDE&SCHWARZ,HMP4040,109401,HW50020003/SW2.70"),
    ("INST:NSEL 2", None),
    ("INST:NSEL?", "2"),
    ("INST OUT3", None),
    ("INST:NSEL?", "3"),
    ("INST:NSEL 1", None),
    ("VOLT 5", None),
    ("VOLT?", "5.000"),
    ("CURR 0.5", None),
    ("CURR?", "0.500"),
    ("VOLT? MAX", "32.000"),  # the rated range (the unit itself allows 32.05 V)
    ("OUTP:GEN?", "0"),
    ("OUTP:SEL 1", None),
    ("OUTP:SEL?", "1"),
    ("MEAS:VOLT?", 0.0),  # armed, but the general output is off
    ("OUTP:GEN 1", None),
    ("OUTP:GEN?", "1"),
    ("MEAS:VOLT?", 5.0),  # 100 ohm: 50 mA
    ("MEAS:CURR?", 0.05),
    ("VOLT:PROT 6", None),
    ("VOLT:PROT?", "6.000"),
    ("VOLT:PROT:TRIP?", "0"),
    ("FUSE ON", None),
    ("FUSE?", "1"),
    ("FUSE:TRIP?", "0"),
    ("CURR 0.01", None),  # below the load's 50 mA: current limit, and the fuse trips
    ("FUSE:TRIP?", "1"),
    ("OUTP:SEL?", "0"),
    ("MEAS:VOLT?", 0.0),
    ("OUTP:GEN 0", None),
    ("OUTP:GEN?", "0"),
    ("VOLT 40", None),  # beyond the range: refused, the setting kept
    ("SYST:ERR?", '-222,"Data out of range"'),
    ("VOLT?", "5.000"),
]


@pytest.fixture
def hmp():
    loads = {"OUT1": Load(resistance=100.0)}
    with (
        served_twin("rs-hmp", IDENTITY, loads) as served,
        visa_client(served.resource, "rs-hmp") as client,
    ):
        yield client


def test_the_twin_answers_as_the_reference_drivers_say(hmp):
    play_table(hmp, TABLE)


@pytest.mark.parametrize(
    ("volts", "amps", "refused"),
    [("30 V", "6 A", True), ("16 V", "10 A", False), ("30 V", "5.3 A", False)],
)
def test_a_net_beyond_the_channels_power_is_refused_though_volts_and_amps_fit(
    tmp_path, volts, amps, refused
):
    """An HMP4040 output delivers 32 V or 10 A, and at most 160 W (the datasheet): a net
    whose highest voltage at its highest current is more is refused at load."""
    from interlock.config import load_configuration
    from interlock.errors import ConfigError
    from tests.controller.support import edited_bench
    from tests.dialects.support import motor_edits
    from tests.dialects.test_switch_units import NUMATO  # contacts of 30 V / 10 A

    profile = [('max_voltage = "12 V"', f'max_voltage = "{volts}"'),
               ('max_current = "600 mA"', f'max_current = "{amps}"')]  # fmt: skip
    edits = {"bench.toml": [*motor_edits("rs-hmp"), *NUMATO], "profiles/mdb24.toml": profile}
    bench = edited_bench(tmp_path, edits)
    if not refused:
        assert load_configuration(bench).limits.nets["MOTOR"].max_voltage > 12
        return
    with pytest.raises(ConfigError) as error:
        load_configuration(bench)
    assert error.value.key == "nets.MOTOR.max_current"
    assert "is 180 W" in error.value.problem and "HMP4040 CH1" in error.value.problem
    assert "(160 W)" in error.value.problem
