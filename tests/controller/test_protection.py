"""The supplies' own protection: over-current protection armed and read back at arming.

With OCP armed a supply turns its output off itself the moment the load pulls
it into current limiting, before the monitor's next pass; the interlock then
finds the protection tripped and drives the bench safe.
"""

from __future__ import annotations

import time

import pytest

from interlock.errors import FaultLatched, ReadbackMismatch
from interlock.journal import JournalReader
from interlock.sim.psu import SimulatedSupply

from .support import assert_all_outputs_off, assert_safety_invariants
from .test_faults import wait_for


def _output(rig, net):
    """The simulated supply output wired to ``net`` (from the bench file: before connecting too)."""
    supply = rig.configuration.bench.wiring[net].supply
    return rig.sim.instruments[supply.instrument].channels[supply.channel]


def test_arming_arms_over_current_protection_on_every_net_and_journals_it(rig_factory):
    rig = rig_factory(arm=False)
    nets = sorted(rig.limits.nets)
    assert not any(_output(rig, net).ocp_enabled for net in nets)  # the supply's default
    rig.controller.arm("operator")
    assert all(_output(rig, net).ocp_enabled for net in nets)
    rig.journal.flush()
    with JournalReader(rig.journal.path) as reader:
        commands = [e.payload for e in reader.entries() if e.kind == "command"]
    armed = {c["net"] for c in commands if c.get("quantity") == "ocp" and c.get("value") is True}
    assert armed == set(nets)


def test_a_short_while_live_is_cut_off_by_the_supply_itself(rig):
    rig.power_up_logic()
    rig.power_up_bus(8.0)
    rig.sim.inject("short:VBUS")
    port = rig.controller.ports["VBUS"]
    trips = rig.truth()["events"]
    assert [e["reason"] for e in trips if e["kind"] == "protection-trip"] == ["OCP"]
    assert [e["channel"] for e in trips if e["kind"] == "protection-trip"] == [port.channel]
    assert not _output(rig, "VBUS").output  # off at once, whatever the monitor does
    assert wait_for(lambda: rig.controller.state == "fault")
    assert rig.controller.fault_cause.startswith("monitor: VBUS")
    assert "protection tripped" in rig.controller.fault_cause
    assert_all_outputs_off(rig)
    assert_safety_invariants(rig)


def test_reset_clears_an_over_current_trip_and_the_net_can_go_live_again(rig):
    rig.power_up_logic()
    rig.power_up_bus(8.0)
    rig.sim.inject("short:VBUS")
    assert wait_for(lambda: rig.controller.state == "fault")
    assert _output(rig, "VBUS").ocp_tripped
    rig.sim.clear("short:VBUS")
    rig.controller.reset("operator")
    assert not _output(rig, "VBUS").ocp_tripped
    rig.controller.arm("operator")
    rig.power_up_logic()
    rig.power_up_bus(8.0)
    assert _output(rig, "VBUS").output and _output(rig, "VBUS").ocp_enabled
    assert_safety_invariants(rig)


def test_a_supply_that_will_not_arm_its_protection_is_never_armed(rig_factory, monkeypatch):
    # A deliberately broken supply: it accepts CURR:PROT:STAT ON and keeps OCP off.
    set_flag = SimulatedSupply._set_flag

    def ignoring_ocp(self, params, attribute):
        if attribute != "ocp_enabled":
            set_flag(self, params, attribute)

    monkeypatch.setattr(SimulatedSupply, "_set_flag", ignoring_ocp)
    rig = rig_factory(arm=False)
    with pytest.raises(ReadbackMismatch, match="over-current protection reads back off"):
        rig.controller.arm("operator")
    assert rig.controller.fault_cause.startswith("readback")
    assert max(net["max_voltage"] for net in rig.truth()["nets"].values()) < 0.5
    assert_all_outputs_off(rig)


def test_protection_turned_off_behind_the_interlocks_back_stops_a_net_going_live(rig):
    rig.controller.set_voltage("VLOGIC", 5.0)
    _output(rig, "VLOGIC").ocp_enabled = False  # someone at the front panel
    with pytest.raises(ReadbackMismatch, match="over-current protection is off"):
        rig.controller.output_on("VLOGIC")
    assert rig.controller.fault_cause.startswith("readback")
    assert rig.truth()["nets"]["VLOGIC"]["max_voltage"] < 0.5  # never energised
    assert rig.truth()["contacts"] == []
    assert_all_outputs_off(rig)


def test_a_live_current_limit_below_the_draw_trips_at_once_with_its_cause(rig):
    rig.power_up_logic()
    rig.power_up_bus(24.0)  # about 200 mA into the DUT
    with pytest.raises(FaultLatched, match=r"VBUS: the supply's protection tripped at the new"):
        rig.controller.set_current_limit("VBUS", 0.1)
    assert rig.controller.fault_cause.startswith("protection: VBUS")
    assert_all_outputs_off(rig)
    assert_safety_invariants(rig)


def test_turning_on_into_an_overload_says_the_protection_tripped(rig):
    rig.controller.set_current_limit("VLOGIC", 0.02)  # the logic draws about 150 mA
    rig.controller.set_voltage("VLOGIC", 5.0)
    with pytest.raises(ReadbackMismatch, match="the supply's protection tripped"):
        rig.controller.output_on("VLOGIC")
    assert "does the DUT draw more than the 20 mA" in rig.controller.fault_cause
    assert_all_outputs_off(rig)


def test_protection_turned_off_while_live_trips_the_monitor(rig):
    rig.power_up_logic()
    _output(rig, "VLOGIC").ocp_enabled = False  # someone at the front panel
    assert wait_for(lambda: rig.controller.state == "fault")
    assert rig.controller.fault_cause.startswith("monitor: VLOGIC")
    assert "over-current protection is off" in rig.controller.fault_cause
    assert_all_outputs_off(rig)


def test_a_protection_trip_latched_before_start_up_is_found_and_reset_clears_it(rig_factory):
    rig = rig_factory(connect=False)
    _output(rig, "VBUS").ocp_tripped = True  # latched before we came
    rig.controller.connect()
    assert rig.controller.state == "fault"
    assert rig.controller.fault_cause.startswith("found-tripped")
    assert "protection tripped before we connected" in rig.controller.fault_cause
    rig.controller.reset("operator")
    assert not _output(rig, "VBUS").ocp_tripped
    rig.controller.arm("operator")
    rig.power_up_logic()
    rig.power_up_bus(8.0)
    assert_safety_invariants(rig)


def test_each_channel_reads_its_own_protection_state(rig):
    psu = rig.controller.instruments.supplies["psu"]
    outputs = rig.sim.instruments["psu"].channels
    outputs[1].ocp_tripped = True
    outputs[3].ocp_enabled = False
    readings = psu.poll([1, 2, 3])
    settings = psu.settings([1, 2, 3])
    assert [r.tripped for r in readings] == [True, False, False]
    assert [r.protected for r in readings] == [True, True, False]
    assert [s.tripped for s in settings] == [True, False, False]
    assert [s.ocp for s in settings] == [True, True, False]


def test_the_current_limit_trip_keeps_its_cause_when_the_monitor_sees_it_first(rig):
    # The monitor polls while the change is still in hand (slowed here): it sees the
    # trip too, but its trip waits for the gate, so the call's own cause stands.
    rig.power_up_logic()
    rig.power_up_bus(24.0)
    psu = rig.controller.instruments.supplies["psu"]
    program = psu.program_current_limit

    def slow(*args, **kwargs):
        readback = program(*args, **kwargs)
        time.sleep(0.15)  # three monitor periods
        return readback

    psu.program_current_limit = slow
    with pytest.raises(FaultLatched, match=r"VBUS: the supply's protection tripped at the new"):
        rig.controller.set_current_limit("VBUS", 0.1)
    assert rig.controller.fault_cause.startswith("protection: VBUS"), rig.controller.fault_cause
    assert_all_outputs_off(rig)


def test_start_up_names_a_latched_trip_beside_an_energised_output(rig_factory):
    rig = rig_factory(connect=False)
    _output(rig, "VBUS").ocp_tripped = True
    logic = _output(rig, "VLOGIC")
    logic.voltage, logic.output = 1.0, True  # left on by someone
    rig.controller.connect()
    cause = rig.controller.fault_cause
    assert cause.startswith("found-energised")
    assert "output on" in cause and "protection tripped" in cause
    assert_all_outputs_off(rig)
