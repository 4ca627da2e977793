"""Plain pyvisa (no interlock driver code) against the simulated instruments."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.sim.conftest import write_bench


@pytest.fixture
def ten_ohm_bench(tmp_path, sim_bench_factory):
    return sim_bench_factory(write_bench(tmp_path, {"VLOGIC": 'resistance = "10 ohm"'}))


def test_5v_into_10_ohm_is_half_an_ampere_and_the_meter_agrees(ten_ohm_bench, visa, relay_link):
    sim = ten_ohm_bench
    psu = visa(sim.resources["psu"])
    dmm = visa(sim.resources["dmm"])
    relays = relay_link(sim.resources["relays"])
    assert relays.set(1, 4).startswith("ACK")  # K1: PSU CH1 -> VLOGIC, K4: DMM -> VLOGIC

    psu.write("INST:NSEL 1")
    psu.write("VOLT 5;CURR 1")
    psu.write("OUTP ON")
    assert float(psu.query("MEAS:CURR?")) == pytest.approx(0.5, abs=2e-3)
    assert float(psu.query("MEAS:VOLT?")) == pytest.approx(5.0, abs=2e-3)
    assert float(dmm.query("MEAS:VOLT:DC?")) == pytest.approx(5.0, abs=1e-3)

    truth = sim.truth()["nets"]["VLOGIC"]
    assert truth["max_voltage"] == pytest.approx(5.0)
    assert truth["max_current"] == pytest.approx(0.5)

    # The output is off again: the net is dead and the ohmmeter sees the load.
    psu.write("OUTP OFF")
    assert abs(float(dmm.query("MEAS:VOLT:DC?"))) < 1e-3
    assert float(dmm.query("MEAS:RES?")) == pytest.approx(10.0, rel=1e-3)


def test_output_behind_an_open_relay_sees_no_load(sim_bench, visa):
    psu = visa(sim_bench.resources["psu"])
    psu.write("VOLT 5,(@1);OUTP ON,(@1)")
    volts, amps = float(psu.query("MEAS:VOLT? (@1)")), float(psu.query("MEAS:CURR? (@1)"))
    assert volts == pytest.approx(5.0, abs=2e-3)
    assert abs(amps) < 1e-3
    assert sim_bench.truth()["nets"]["VLOGIC"]["max_voltage"] == 0.0


def test_identity_and_common_commands(sim_bench, visa):
    psu = visa(sim_bench.resources["psu"])
    dmm = visa(sim_bench.resources["dmm"])
    assert psu.query("*IDN?").split(",")[:3] == ["Keysight Technologies", "E36312A", "MY59001234"]
    assert dmm.query("*IDN?").split(",")[:3] == ["Keysight Technologies", "34461A", "MY53005678"]
    assert psu.query("*OPC?") == "1"
    assert psu.query("SYST:ERR?") == '+0,"No error"'
    psu.write("BOGUS:HEADER 1")
    assert psu.query("*ESR?") == "+32"
    assert psu.query("SYSTem:ERRor:NEXT?") == '-113,"Undefined header"'
    psu.write("*CLS")
    assert psu.query("SYST:ERR:COUN?") == "+0"


def test_short_and_long_forms_any_case_and_channel_lists(sim_bench, visa):
    psu = visa(sim_bench.resources["psu"])
    psu.write(":source:VOLTage:level:immediate:amplitude 3.3,(@1)")
    psu.write("volt 12, (@2,3)")
    psu.write("CURRent 250 mA,(@1:3)")
    assert psu.query("VOLT? (@1,2,3)").split(",") == [
        "+3.30000000E+00", "+1.20000000E+01", "+1.20000000E+01"]
    assert [float(v) for v in psu.query("CURR? (@3,1)").split(",")] == [0.25, 0.25]
    psu.write("INST CH2")
    assert psu.query("INST?") == "CH2"
    assert psu.query("INST:NSEL?") == "+2"
    assert float(psu.query("VOLT?")) == 12.0
    assert float(psu.query("VOLT? MAX")) == 25.0
    # a compound line; relative headers continue from the previous one's path
    psu.write("SOUR:VOLT 1.5;CURR 0.1;:OUTP OFF")
    assert psu.query("VOLT?;CURR?") == "+1.50000000E+00;+1.00000000E-01"
    assert psu.query("SYST:ERR?") == '+0,"No error"'


def test_out_of_range_is_refused_and_the_setting_unchanged(sim_bench, visa):
    psu = visa(sim_bench.resources["psu"])
    psu.write("VOLT 5,(@1)")
    psu.write("VOLT 6.5,(@1)")  # CH1 is rated 6 V
    assert psu.query("SYST:ERR?") == '-222,"Data out of range"'
    assert float(psu.query("VOLT? (@1)")) == 5.0
    psu.write("CURR 1.5,(@2)")  # CH2 is rated 1 A
    assert psu.query("SYST:ERR?").startswith("-222,")
    psu.write("VOLT:PROT 30,(@3)")  # OVP up to 27.5 V
    assert psu.query("SYST:ERR?").startswith("-222,")
    psu.write("VOLT 5,(@4)")
    assert psu.query("SYST:ERR?").startswith("-222,")
    psu.write("VOLT")
    assert psu.query("SYST:ERR?").startswith("-109,")
    psu.write("VOLT 1,2,(@1)")
    assert psu.query("SYST:ERR?").startswith("-108,")
    psu.write("VOLT 5 A,(@1)")
    assert psu.query("SYST:ERR?").startswith("-131,")


def test_constant_current_when_the_load_wants_more(tmp_path, sim_bench_factory, visa,
                                                   relay_link):
    sim = sim_bench_factory(write_bench(tmp_path, {"MOTOR": 'resistance = "10 ohm"'}))
    psu = visa(sim.resources["psu"])
    relay_link(sim.resources["relays"]).set(3)
    psu.write("VOLT 12,(@3);CURR 0.5,(@3);OUTP ON,(@3)")  # 12 V / 10 ohm would be 1.2 A
    assert float(psu.query("MEAS:CURR? (@3)")) == pytest.approx(0.5, abs=1e-3)
    assert float(psu.query("MEAS:VOLT? (@3)")) == pytest.approx(5.0, abs=5e-3)
    assert sim.truth()["nets"]["MOTOR"]["max_voltage"] == pytest.approx(5.0)


def test_over_voltage_protection_trips_and_latches(sim_bench, visa, relay_link):
    psu = visa(sim_bench.resources["psu"])
    relay_link(sim_bench.resources["relays"]).set(2)
    # after VOLT:PROT the path is VOLT: the next headers need their leading colon
    psu.write("VOLT:PROT 12,(@2);:VOLT 10,(@2);:OUTP ON,(@2)")
    assert psu.query("SYST:ERR?") == '+0,"No error"'
    assert psu.query("VOLT:PROT:TRIP? (@2)") == "0"
    psu.write("VOLT 15,(@2)")
    assert psu.query("VOLT:PROT:TRIP? (@2)") == "1"
    assert psu.query("OUTP? (@2)") == "0"
    assert abs(float(psu.query("MEAS:VOLT? (@2)"))) < 5e-3
    psu.write("OUTP ON,(@2)")  # refused while tripped
    assert psu.query("SYST:ERR?").startswith("-221,")
    psu.write("VOLT 10,(@2);VOLT:PROT:CLE (@2);:OUTP ON,(@2)")
    assert psu.query("OUTP? (@2)") == "1"
    vbus = sim_bench.truth()["nets"]["VBUS"]
    assert vbus["max_voltage"] == pytest.approx(12.0)  # rose to the OVP level, no further
    trips = [e for e in sim_bench.truth()["events"] if e["kind"] == "protection-trip"]
    assert [t["reason"] for t in trips] == ["OVP"]


def test_meter_configure_then_read(sim_bench, visa, relay_link):
    dmm = visa(sim_bench.resources["dmm"])
    relay_link(sim_bench.resources["relays"]).set(7)  # the DUT's ID resistor
    dmm.write("CONF:RES 10e3,DEF")
    assert dmm.query("CONF?").startswith('"RES +1.00000000E+04')
    assert float(dmm.query("READ?")) == pytest.approx(10e3, rel=1e-3)
    assert float(dmm.query("MEAS:RES? 100")) == 9.9e37  # over range
    dmm.write("INIT")
    assert float(dmm.query("FETC?")) == 9.9e37
    dmm.write("CONF:VOLT:DC AUTO;:SAMP:COUN 3")
    assert len(dmm.query("READ?").split(",")) == 3
    assert abs(float(dmm.query("MEAS:CURR:DC? 1,1e-6"))) < 1e-6
    dmm.write("CONF:VOLT:DC 2000")
    assert dmm.query("SYST:ERR?").startswith("-222,")


def test_meter_sense_settings(sim_bench, visa):
    dmm = visa(sim_bench.resources["dmm"])
    assert dmm.query("VOLT:RANG:AUTO?") == "1"
    dmm.write("SENS:VOLT:DC:RANG 100;:VOLT:NPLC 1")
    assert float(dmm.query("VOLT:RANG?")) == 100.0
    assert dmm.query("VOLT:RANG:AUTO?") == "0"
    assert float(dmm.query("VOLT:NPLC?")) == 1.0
    assert dmm.query("CONF?").startswith('"VOLT +1.00000000E+02')
    dmm.write("VOLT:RANG:AUTO ON")
    assert dmm.query("VOLT:RANG:AUTO?") == "1"
    dmm.write('FUNC "RES"')
    assert dmm.query("FUNC?") == '"RES"'
    assert dmm.query("SYST:ERR?") == '+0,"No error"'


def test_many_exchanges_are_fast(sim_bench, visa):
    """With TCP_NODELAY on both sides an exchange costs about the 1 ms latency."""
    psu = visa(sim_bench.resources["psu"])
    start = time.monotonic()
    for step in range(50):
        psu.write(f"VOLT {step / 10},(@1)")
        psu.query("VOLT? (@1)")
    assert time.monotonic() - start < 1.0


DYING_CLIENT = """
import sys, time, pyvisa
psu = pyvisa.ResourceManager("@py").open_resource(sys.argv[1], read_termination="\\n",
                                                   write_termination="\\n", timeout=5000)
psu.write("VOLT 5,(@1);OUTP ON,(@1)")
print(psu.query("OUTP? (@1)"), flush=True)
psu.write_raw(b"VOLT 9,(@")  # half a line, then the process dies
time.sleep(60)
"""


def test_a_new_client_is_served_after_the_last_ones_process_was_killed(sim_bench, visa):
    """What a guardian will need: once the service is dead, open the supply and turn it off."""
    resource = sim_bench.resources["psu"]
    process = subprocess.Popen([sys.executable, "-c", DYING_CLIENT, resource],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "1"
    finally:
        process.kill()  # SIGKILL: its socket is closed by the kernel, nothing more
        process.communicate()
    psu = visa(resource)
    assert psu.query("OUTP? (@1)") == "1"  # as the dead client left it
    assert float(psu.query("VOLT? (@1)")) == 5.0  # its half line died with its connection
    psu.write("OUTP OFF,(@1)")
    assert psu.query("OUTP? (@1)") == "0"
    deadline = time.monotonic() + 10
    while "disconnected" not in (kinds := [
        e["kind"] for e in sim_bench.truth()["events"] if e.get("instrument") == "psu"
    ]):
        assert time.monotonic() < deadline, kinds
        time.sleep(0.01)
    assert kinds.count("connected") == 2 and kinds.count("disconnected") == 1
