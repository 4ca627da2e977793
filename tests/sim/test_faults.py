"""Each fault changes what an instrument reports, and the ground truth records it."""

from __future__ import annotations

import socket
import statistics

import pytest
import pyvisa

from interlock.errors import SimulatorError
from interlock.sim.faults import Fault, parse_fault


def events(sim, kind):
    return [e for e in sim.truth()["events"] if e["kind"] == kind]


def test_fault_injection_and_clearing_is_recorded(sim_bench):
    sim_bench.inject("short:VBUS")
    sim_bench.inject("noise:dmm=1%")
    assert sim_bench.faults() == ["short:VBUS", "noise:dmm=1%"]
    sim_bench.clear("noise:dmm")
    sim_bench.clear()
    assert sim_bench.faults() == []
    assert [e["detail"] for e in events(sim_bench, "fault-injected")] == ["short:VBUS",
                                                                          "noise:dmm=1%"]
    assert [e["detail"] for e in events(sim_bench, "fault-cleared")] == ["noise:dmm=1%",
                                                                         "short:VBUS"]
    with pytest.raises(SimulatorError, match="not active"):
        sim_bench.clear("open:VBUS")


def test_short_puts_the_supply_into_current_limit(sim_bench, visa, relay_link):
    psu, dmm = visa(sim_bench.resources["psu"]), visa(sim_bench.resources["dmm"])
    relays = relay_link(sim_bench.resources["relays"])
    relays.set(5)
    assert float(dmm.query("MEAS:RES?")) == pytest.approx(120.0, rel=1e-3)
    sim_bench.inject("short:VBUS")
    assert float(dmm.query("MEAS:RES?")) < 0.1  # safe-to-mate would catch it here
    relays.set(2)
    psu.write("VOLT 24,(@2);CURR 0.3,(@2);OUTP ON,(@2)")
    assert float(psu.query("MEAS:CURR? (@2)")) == pytest.approx(0.3, abs=1e-3)
    assert float(psu.query("MEAS:VOLT? (@2)")) < 0.01
    assert sim_bench.truth()["nets"]["VBUS"]["max_current"] == pytest.approx(0.3)


def test_open_net_draws_nothing(sim_bench, visa, relay_link):
    psu, dmm = visa(sim_bench.resources["psu"]), visa(sim_bench.resources["dmm"])
    sim_bench.inject("open:MOTOR")
    relay_link(sim_bench.resources["relays"]).set(3, 6)
    psu.write("VOLT 12,(@3);OUTP ON,(@3)")
    assert abs(float(psu.query("MEAS:CURR? (@3)"))) < 1e-3
    assert float(dmm.query("MEAS:VOLT:DC?")) == pytest.approx(12.0, abs=1e-3)
    psu.write("OUTP OFF,(@3)")
    assert float(dmm.query("MEAS:RES?")) == 9.9e37
    motor = sim_bench.truth()["nets"]["MOTOR"]
    assert motor["max_voltage"] == pytest.approx(12.0) and motor["max_current"] == 0.0


def test_swapped_breakout_box_sends_power_to_the_other_net(sim_bench, visa, relay_link):
    psu, dmm = visa(sim_bench.resources["psu"]), visa(sim_bench.resources["dmm"])
    relays = relay_link(sim_bench.resources["relays"])
    sim_bench.inject("swap:VBUS,MOTOR")
    relays.set(5)  # "DMM to VBUS" now measures the motor winding
    assert float(dmm.query("MEAS:RES?")) == pytest.approx(24.0, rel=1e-3)
    relays.set(2)  # "PSU CH2 to VBUS"
    psu.write("VOLT 20,(@2);CURR 1,(@2);OUTP ON,(@2)")
    assert float(psu.query("MEAS:CURR? (@2)")) == pytest.approx(20 / 24, abs=1e-3)
    nets = sim_bench.truth()["nets"]
    assert nets["MOTOR"]["max_voltage"] == pytest.approx(20.0)
    assert nets["VBUS"]["max_voltage"] == 0.0


def test_two_sense_relays_tie_their_nets_together(sim_bench, visa, relay_link):
    psu = visa(sim_bench.resources["psu"])
    relays = relay_link(sim_bench.resources["relays"])
    relays.set(2, 5, 6)  # power on VBUS, the meter across VBUS and MOTOR
    psu.write("VOLT 10,(@2);OUTP ON,(@2)")
    assert float(psu.query("MEAS:CURR? (@2)")) == pytest.approx(10 / 120 + 10 / 24, abs=1e-3)
    assert sim_bench.truth()["nets"]["MOTOR"]["max_voltage"] == pytest.approx(10.0)
    assert [e["nets"] for e in events(sim_bench, "meter-ties-nets")] == [["MOTOR", "VBUS"]]


def test_stray_voltage_shows_on_the_meter_before_anything_is_powered(sim_bench, visa,
                                                                     relay_link):
    dmm = visa(sim_bench.resources["dmm"])
    relay_link(sim_bench.resources["relays"]).set(5)
    assert abs(float(dmm.query("MEAS:VOLT:DC?"))) < 1e-3
    sim_bench.inject("stray:VBUS=3.3")
    assert float(dmm.query("MEAS:VOLT:DC?")) == pytest.approx(3.3, abs=1e-3)
    assert sim_bench.truth()["nets"]["VBUS"]["max_voltage"] == pytest.approx(3.3)
    sim_bench.clear("stray:VBUS")
    assert abs(float(dmm.query("MEAS:VOLT:DC?"))) < 1e-3


@pytest.mark.parametrize("spec, ohms", [("wrong-dut", 4700.0), ("wrong-dut:22k", 22e3)])
def test_wrong_dut_has_another_id_resistor(sim_bench, visa, relay_link, spec, ohms):
    dmm = visa(sim_bench.resources["dmm"])
    relay_link(sim_bench.resources["relays"]).set(7)
    assert float(dmm.query("MEAS:RES?")) == pytest.approx(10e3, rel=1e-3)
    sim_bench.inject(spec)
    assert float(dmm.query("MEAS:RES?")) == pytest.approx(ohms, rel=1e-3)
    sim_bench.clear("wrong-dut")
    assert float(dmm.query("MEAS:RES?")) == pytest.approx(10e3, rel=1e-3)


def test_instrument_with_another_identity(sim_bench_factory, visa):
    sim = sim_bench_factory(faults=["identity:psu=Rigol,DP832,XYZ"])
    psu = visa(sim.resources["psu"])
    assert psu.query("*IDN?").startswith("Rigol,DP832,XYZ,")
    sim.clear("identity:psu")
    assert psu.query("*IDN?").startswith("Keysight Technologies,E36312A,MY59001234,")
    assert events(sim, "fault-injected")[0]["detail"] == "identity:psu=Rigol,DP832,XYZ"


def test_ignored_setpoint_shows_only_on_readback(sim_bench, visa, relay_link):
    psu = visa(sim_bench.resources["psu"])
    psu.write("VOLT 5,(@1);CURR 0.2,(@1)")
    assert psu.query("*OPC?") == "1"  # done before the fault arrives
    sim_bench.inject("ignore-setpoint:psu")
    psu.write("VOLT 3.3,(@1);CURR 0.1,(@1)")
    assert psu.query("SYST:ERR?") == '+0,"No error"'  # no complaint...
    assert float(psu.query("VOLT? (@1)")) == 5.0  # ...but the read-back tells
    assert float(psu.query("CURR? (@1)")) == 0.2
    relay_link(sim_bench.resources["relays"]).set(1)
    psu.write("OUTP ON,(@1)")
    assert float(psu.query("MEAS:VOLT? (@1)")) == pytest.approx(5.0, abs=2e-3)
    assert sim_bench.truth()["nets"]["VLOGIC"]["max_voltage"] == pytest.approx(5.0)
    ignored = [e["detail"] for e in events(sim_bench, "setpoint-ignored")]
    assert ignored == ["psu: VOLTage 3.3 CH1", "psu: CURRent 0.1 CH1"]


def test_lying_setpoint_shows_only_in_a_measurement(sim_bench, visa, relay_link):
    psu = visa(sim_bench.resources["psu"])
    psu.write("VOLT 12,(@3);CURR 0.6,(@3)")
    assert psu.query("*OPC?") == "1"
    sim_bench.inject("ignore-setpoint:psu=lie")
    psu.write("VOLT 6,(@3)")
    assert float(psu.query("VOLT? (@3)")) == 6.0  # the read-back agrees...
    relay_link(sim_bench.resources["relays"]).set(3)
    psu.write("OUTP ON,(@3)")
    assert float(psu.query("MEAS:VOLT? (@3)")) == pytest.approx(12.0, abs=5e-3)  # ...it is not
    assert sim_bench.truth()["nets"]["MOTOR"]["max_voltage"] == pytest.approx(12.0)
    sim_bench.clear("ignore-setpoint:psu")
    assert float(psu.query("VOLT? (@3)")) == 12.0


def test_hung_instrument_times_out_and_recovers(sim_bench, visa):
    dmm = visa(sim_bench.resources["dmm"], timeout_ms=200)
    sim_bench.inject("hang:dmm")
    with pytest.raises(pyvisa.errors.VisaIOError) as info:
        dmm.query("*IDN?")
    assert info.value.error_code == pyvisa.constants.StatusCode.error_timeout
    sim_bench.clear("hang:dmm")
    assert dmm.query("*IDN?").startswith("Keysight Technologies,34461A")
    commands = sim_bench.truth()["instruments"]["dmm"]["commands"]
    assert [(c["line"], c.get("note")) for c in commands] == [
        ("*IDN?", "ignored: hang"), ("*IDN?", None)]


def test_dropped_instrument_loses_its_connection_and_refuses_new_ones(sim_bench, visa):
    psu = visa(sim_bench.resources["psu"], timeout_ms=500)
    assert psu.query("*OPC?") == "1"
    resource = sim_bench.resources["psu"]
    sim_bench.inject("drop:psu")
    with pytest.raises(pyvisa.errors.VisaIOError):
        psu.query("*IDN?")
    port = int(resource.split("::")[2])
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 1):
        pass
    sim_bench.clear("drop:psu")
    assert sim_bench.resources["psu"] == resource  # back on the same port
    assert visa(resource).query("*OPC?") == "1"
    assert len(events(sim_bench, "connection-dropped")) == 1


def test_welded_relay_stays_closed_when_commanded_open(sim_bench, visa, relay_link):
    psu = visa(sim_bench.resources["psu"])
    relays = relay_link(sim_bench.resources["relays"])
    psu.write("VOLT 6,(@3);OUTP ON,(@3)")
    sim_bench.inject("weld:K3")
    relays.set()  # everything open, as far as the firmware commands
    assert float(psu.query("MEAS:CURR? (@3)")) == pytest.approx(6 / 24, abs=1e-3)
    assert "C=4" in relays.command("GET")  # the board senses the contact closed
    truth = sim_bench.truth()
    assert truth["contacts"] == ["K3"]
    assert truth["nets"]["MOTOR"]["max_voltage"] == pytest.approx(6.0)
    sim_bench.clear("weld:K3")
    relays.command("GET")
    assert sim_bench.truth()["contacts"] == []


def test_estop_opens_every_relay_and_refuses_closing(sim_bench, visa, relay_link):
    psu = visa(sim_bench.resources["psu"])
    relays = relay_link(sim_bench.resources["relays"])
    relays.set(2)
    psu.write("VOLT 10,(@2);OUTP ON,(@2)")
    sim_bench.inject("estop")
    relays.command("GET")  # the board has polled its E-stop input by the time it answers
    assert abs(float(psu.query("MEAS:CURR? (@2)"))) < 1e-3
    assert "ESTOP_ACTIVE" in relays.command("SET 0002")
    truth = sim_bench.truth()
    assert truth["contacts"] == []
    assert [(r["relay"], r["closed"]) for r in truth["relays"]] == [("K2", True), ("K2", False)]
    sim_bench.clear("estop")


def test_noisy_readings(sim_bench, visa, relay_link):
    dmm = visa(sim_bench.resources["dmm"])
    relay_link(sim_bench.resources["relays"]).set(7)
    quiet = [float(dmm.query("MEAS:RES?")) for _ in range(10)]
    sim_bench.inject("noise:dmm=50")  # 50 ohm standard deviation
    noisy = [float(dmm.query("MEAS:RES?")) for _ in range(20)]
    assert statistics.stdev(quiet) < 1.0
    assert statistics.stdev(noisy) > 10.0


@pytest.mark.parametrize("spec, fault", [
    ("short:VBUS", Fault("short", "VBUS")),
    ("swap:VBUS,MOTOR", Fault("swap", "MOTOR,VBUS")),
    ("wrong-dut", Fault("wrong-dut")),
    ("wrong-dut:4.7 kohm", Fault("wrong-dut", "", "4.7 kohm")),
    ("identity:psu=Rigol,DP832,XYZ", Fault("identity", "psu", "Rigol,DP832,XYZ")),
    ("noise:dmm=2%", Fault("noise", "dmm", "2%")),
    ("stray:VBUS=0.4 V", Fault("stray", "VBUS", "0.4 V")),
    ("ignore-setpoint:psu", Fault("ignore-setpoint", "psu")),
    ("ignore-setpoint:psu=LIE", Fault("ignore-setpoint", "psu", "lie")),
    ("estop", Fault("estop")),
    (" HANG:dmm ", Fault("hang", "dmm")),
])
def test_fault_specs(spec, fault):
    assert parse_fault(spec) == fault
    assert parse_fault(fault.spec) == fault


@pytest.mark.parametrize("spec", [
    "", "melt:VBUS", "short", "short:A,B", "swap:VBUS", "swap:VBUS,VBUS", "estop:now",
    "identity:psu", "identity:psu=Rigol", "noise:dmm=loud", "noise:dmm=-1", "wrong-dut:zero",
    "stray:VBUS", "stray:VBUS=-3", "stray:VBUS=high", "ignore-setpoint:psu=maybe",
])
def test_bad_fault_specs_are_refused(spec):
    with pytest.raises(SimulatorError):
        parse_fault(spec)


def test_faults_on_unknown_targets_are_refused(sim_bench):
    for spec in ("short:NOPE", "hang:scope", "weld:K99", "identity:scope=a,b,c"):
        with pytest.raises(SimulatorError):
            sim_bench.inject(spec)
    assert sim_bench.faults() == []
