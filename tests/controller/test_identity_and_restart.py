"""Who is on the bench, asked again when it matters; and how the last controller stopped.

Identity was once read only at start-up: a supply swapped behind an unbroken
link (a LAN or GPIB gateway, a switch) or a DUT swapped while the bench stood
armed went unnoticed. Now every instrument, the relay board included, is asked
again at every arm, and the DUT's identity is measured again before the first
net goes live after arming or after every net was off.

A clean stop tells the relay board it is leaving (``BYE``): the next start finds
nothing latched. A controller that dies leaves the board's watchdog to latch,
and the next start says so, naming how the last one ended.
"""

from __future__ import annotations

import time

import pytest

from interlock.errors import FaultLatched, IdentityMismatch
from interlock.journal import JournalReader

from .support import (
    PAST_THE_WATCHDOG_S,
    Rig,
    assert_all_outputs_off,
    close_restarted,
    restart,
)

IMPOSTOR_PSU = "identity:psu=Keysight Technologies,E36312A,MY59009999"
IMPOSTOR_BOARD = "identity:relays=interlock,RB8,RB8-000999"


def identity_checks(rig: Rig) -> list[tuple[str, bool]]:
    reader = JournalReader(rig.journal.path)
    try:
        return [
            (e.payload["instrument"], e.payload["ok"])
            for e in reader.entries()
            if e.kind == "identity"
        ]
    finally:
        reader.close()


def psu_lines_since(rig: Rig, count: int) -> list[str]:
    return [c["line"] for c in rig.truth()["instruments"]["psu"]["commands"][count:]]


def test_arming_asks_every_instrument_who_it_is_again(rig_factory):
    rig = rig_factory(arm=False)
    at_start = identity_checks(rig)
    rig.controller.arm("operator")
    at_arm = identity_checks(rig)[len(at_start) :]
    assert {name for name, ok in at_arm if ok} >= {"psu", "dmm", "relays", "dut"}


def test_a_supply_swapped_behind_the_link_is_caught_at_arming(rig_factory):
    rig = rig_factory(arm=False)
    rig.sim.inject(IMPOSTOR_PSU)
    sent = len(rig.truth()["instruments"]["psu"]["commands"])
    with pytest.raises(IdentityMismatch) as info:
        rig.controller.arm("operator")
    assert info.value.seen == "Keysight Technologies, E36312A, serial MY59009999"
    assert rig.controller.state == "fault"
    assert rig.controller.fault_cause.startswith("identity: at arming")
    # Asked who it is, then never commanded again: not even "off".
    assert psu_lines_since(rig, sent) == ["*IDN?"]


def test_a_relay_board_swapped_behind_the_link_is_caught_at_arming(rig_factory):
    rig = rig_factory(arm=False)
    rig.sim.inject(IMPOSTOR_BOARD)
    with pytest.raises(IdentityMismatch) as info:
        rig.controller.arm("operator")
    assert info.value.instrument == "relays"
    assert "RB8-000999" in info.value.seen
    assert rig.controller.state == "fault"
    assert ("relays", False) in identity_checks(rig)


def test_a_dut_swapped_while_armed_is_caught_before_anything_goes_live(rig):
    rig.sim.inject("wrong-dut")
    rig.controller.set_current_limit("VLOGIC", 0.3)
    rig.controller.set_voltage("VLOGIC", 5.0)
    with pytest.raises(FaultLatched, match="DUT changed since arming"):
        rig.controller.output_on("VLOGIC")
    assert rig.controller.fault_cause.startswith("dut-identity")
    assert max(n["max_voltage"] for n in rig.truth()["nets"].values()) < 0.5
    assert_all_outputs_off(rig)


def test_the_dut_is_measured_again_once_every_net_was_off(rig):
    rig.power_up_logic()
    rig.controller.output_off("VLOGIC")
    rig.sim.inject("wrong-dut")
    with pytest.raises(FaultLatched, match="DUT changed since arming"):
        rig.controller.output_on("VLOGIC")
    assert rig.controller.fault_cause.startswith("dut-identity")


def test_the_dut_is_not_measured_while_a_net_is_live(rig):
    rig.power_up_logic()
    duts = [c for c in identity_checks(rig) if c[0] == "dut"]
    rig.controller.set_current_limit("VBUS", 0.3)
    rig.controller.set_voltage("VBUS", 4.0)
    rig.controller.output_on("VBUS")  # routing the meter to ID now would need care: not done
    assert [c for c in identity_checks(rig) if c[0] == "dut"] == duts
    assert rig.controller.state == "live"


# -- how the last controller stopped -------------------------------------------------


def test_a_clean_stop_leaves_nothing_latched_for_the_next_start(rig):
    rig.power_up_logic()
    rig.controller.close()
    time.sleep(PAST_THE_WATCHDOG_S)
    controller = restart(rig)
    try:
        assert controller.state == "safe", controller.fault_cause
        assert controller.fault_cause is None
    finally:
        close_restarted(controller)
    assert_all_outputs_off(rig)


def test_a_controller_that_died_is_found_out_and_named(rig):
    rig.power_up_logic()
    # Dies: no safe state, no goodbye; only the board's watchdog acts.
    rig.controller.monitor.stop()
    rig.controller.supervisor.stop()
    rig.controller.instruments.close()
    time.sleep(PAST_THE_WATCHDOG_S)
    controller = restart(rig)
    try:
        assert controller.state == "fault"
        cause = controller.fault_cause
        assert "relay board latched WDT" in cause
        assert "VLOGIC" not in cause or "output on" in cause
        assert "did not stop cleanly: its last state change was energise to live" in cause
    finally:
        close_restarted(controller)


def test_a_stop_with_a_fault_latched_keeps_it_latched_across_the_restart(rig):
    rig.power_up_logic()
    rig.controller.emergency_stop("alice")
    rig.controller.close()
    time.sleep(PAST_THE_WATCHDOG_S)
    controller = restart(rig)
    try:
        assert controller.state == "fault"
        # The board's latch alone: named a trip found, as a supply's would be.
        assert controller.fault_cause.startswith("found-tripped: relay board latched WDT")
        assert "fault latched: estop: emergency stop by alice" in controller.fault_cause
    finally:
        close_restarted(controller)


def test_the_id_nets_stray_limit_is_the_profiles(rig_factory, tmp_path):
    """[identity] max_stray_voltage, not a figure of the controller's own: 0.3 V on the
    ID net passes a 0.5 V limit and trips a 0.1 V one, before its resistor is measured."""
    from .support import edited_bench

    edit = ('max_stray_voltage = "0.5 V"         # what the ID', 'max_stray_voltage = "0.1 V" #')
    rig = rig_factory(bench=edited_bench(tmp_path, {"profiles/mdb24.toml": [edit]}), arm=False)
    rig.sim.inject("stray:ID=0.3")
    with pytest.raises(FaultLatched, match=r"ID carries (300|29\d)(\.\d+)? mV before it is"):
        rig.controller.arm("operator")
    assert rig.controller.fault_cause.startswith("dut-identity: ID carries ")
    assert rig.controller.fault_cause.endswith("(max 100 mV)")
    reader = JournalReader(rig.journal.path)
    try:
        fault = next(e.payload for e in reader.entries() if e.kind == "fault")
    finally:
        reader.close()
    assert fault["rule"] == "identity.stray_voltage"
    assert fault["where"].endswith("profiles/mdb24.toml: identity.max_stray_voltage")


def test_a_slow_start_up_keeps_the_boards_watchdog_fed(rig_factory, monkeypatch):
    # The board's watchdog arms at the first frame it hears (the identity check); what
    # start-up reads after it took longer than the watchdog on a loaded machine, and the
    # board tripped before the controller had begun to heartbeat it.
    from interlock.controller.arming import Arming

    found = Arming.found

    def slow_found(self):
        time.sleep(PAST_THE_WATCHDOG_S)
        return found(self)

    monkeypatch.setattr(Arming, "found", slow_found)
    rig = rig_factory(arm=False)
    assert (rig.controller.state, rig.controller.fault_cause) == ("safe", None)
    assert rig.controller.instruments.board.get_state().trip_cause is None
