"""One test per simulator fault: the controller's reaction, and what the DUT really saw."""

from __future__ import annotations

import contextlib
import time

import pytest

from interlock.errors import (
    ConnectionLost,
    FaultLatched,
    IdentityMismatch,
    InstrumentError,
    ReadbackMismatch,
    StateError,
)

from .support import assert_all_outputs_off, assert_safety_invariants


def fault_causes(rig) -> list[str]:
    from interlock.journal import JournalReader

    with JournalReader(rig.journal.path) as reader:
        return [e.payload["cause"] for e in reader.entries() if e.kind == "fault"]


def wait_for(predicate, timeout=2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_short_before_going_live_is_caught_by_safe_to_mate(rig_factory):
    rig = rig_factory(faults=["short:VLOGIC"])
    with pytest.raises(FaultLatched, match=r"VLOGIC measures .* ohm"):
        rig.power_up_logic()
    assert rig.controller.fault_cause.startswith("safe-to-mate")
    assert rig.truth()["nets"]["VLOGIC"]["max_voltage"] < 0.5  # never energised
    assert_safety_invariants(rig)


def test_short_while_live_trips_the_monitor(rig):
    rig.power_up_logic()
    rig.power_up_bus(8.0)
    rig.sim.inject("short:VBUS")
    assert wait_for(lambda: rig.controller.state == "fault")
    assert rig.controller.fault_cause.startswith("monitor: VBUS")
    assert_all_outputs_off(rig)
    truth = rig.truth()["nets"]["VBUS"]
    assert truth["max_current"] <= 0.5 * 1.01  # the current limit held while it lasted
    assert_safety_invariants(rig)


def test_open_net_is_caught_by_safe_to_mate(rig_factory):
    rig = rig_factory(faults=["open:MOTOR"])
    rig.power_up_logic()
    rig.power_up_bus(4.0)
    rig.controller.set_voltage("MOTOR", 3.0)
    with pytest.raises(FaultLatched, match="MOTOR measures inf ohm"):
        rig.controller.output_on("MOTOR")
    assert rig.truth()["nets"]["MOTOR"]["max_voltage"] < 0.5
    assert_all_outputs_off(rig)


def test_open_net_while_live_trips_on_the_current_window(rig):
    rig.power_up_logic()
    rig.sim.inject("open:VLOGIC")
    assert wait_for(lambda: rig.controller.state == "fault")
    assert "below the live window" in rig.controller.fault_cause
    assert_all_outputs_off(rig)


def test_miswired_breakout_box_never_powers_the_wrong_net(rig_factory):
    """VBUS and MOTOR swapped in the break-out box: the bus's 24 V would reach the winding."""
    rig = rig_factory(faults=["swap:VBUS,MOTOR"])
    ctl = rig.controller
    rig.power_up_logic()
    with pytest.raises(FaultLatched, match="miswired"):
        rig.power_up_bus(24.0)  # the sequence that powers the motor path
    with pytest.raises(FaultLatched):
        ctl.set_voltage("MOTOR", 3.0)
    stray = rig.limits.nets["MOTOR"].safe_to_mate.max_stray_voltage
    truth = rig.truth()["nets"]
    assert truth["MOTOR"]["max_voltage"] <= stray
    assert truth["VBUS"]["max_voltage"] <= rig.limits.nets["VBUS"].safe_to_mate.max_stray_voltage
    assert ctl.fault_cause.startswith("safe-to-mate: VBUS measures 2")  # ~24 ohm: the winding
    assert_safety_invariants(rig)


def test_wrong_dut_refuses_to_arm(rig_factory):
    rig = rig_factory(faults=["wrong-dut"], arm=False)
    with pytest.raises(IdentityMismatch) as info:
        rig.controller.arm("operator")
    assert "MDB-24" in info.value.expected and "4" in info.value.seen
    assert rig.controller.state == "safe"
    assert max(n["max_voltage"] for n in rig.truth()["nets"].values()) < 0.5


def test_instrument_with_another_identity_is_never_commanded(rig_factory):
    rig = rig_factory(faults=["identity:psu=Rigol Technologies,DP832,DP8A0001"], connect=False)
    with pytest.raises(IdentityMismatch) as info:
        rig.controller.connect()
    assert info.value.expected == "Keysight Technologies, E36312A, serial MY59001234"
    assert info.value.seen == "Rigol Technologies, DP832, serial DP8A0001"
    assert rig.controller.state == "fault"
    with pytest.raises(FaultLatched):
        rig.controller.arm("operator")
    lines = [c["line"] for c in rig.truth()["instruments"]["psu"]["commands"]]
    assert lines == ["*IDN?"]  # asked who it is, then left alone


def test_instrument_ignoring_a_setpoint_is_caught_by_readback(rig):
    rig.power_up_logic()
    rig.sim.inject("ignore-setpoint:psu")
    with pytest.raises(ReadbackMismatch, match="VLOGIC voltage reads back 5"):
        rig.controller.set_voltage("VLOGIC", 4.0)
    assert rig.controller.fault_cause.startswith("readback")
    assert_all_outputs_off(rig)


def test_hung_supply_trips_and_relays_disconnect_the_dut(rig):
    rig.power_up_logic()
    rig.sim.inject("hang:psu")
    assert wait_for(lambda: rig.controller.state == "fault", timeout=5)
    assert "no reply" in rig.controller.fault_cause
    assert wait_for(lambda: rig.truth()["contacts"] == [], timeout=3)
    assert_all_outputs_off(rig)  # the relays cut the DUT off the hung supply
    assert any("psu" in u for u in rig.controller.last_safe_state.unverified)


def test_dropped_connection_trips(rig):
    rig.power_up_logic()
    rig.sim.inject("drop:psu")
    assert wait_for(lambda: rig.controller.state == "fault", timeout=5)
    assert rig.truth()["contacts"] == []
    assert_all_outputs_off(rig)
    with pytest.raises((FaultLatched, ConnectionLost)):
        rig.controller.set_voltage("VLOGIC", 1.0)


def test_welded_relay_is_reported_by_contact_sense(rig):
    rig.sim.inject("weld:K2")
    assert wait_for(lambda: rig.controller.state == "fault")
    assert "K2" in rig.controller.fault_cause
    assert any("K2" in u for u in rig.controller.last_safe_state.unverified)


def test_estop_opens_relays_and_latches_until_released_and_reset(rig):
    rig.power_up_logic()
    rig.sim.inject("estop")
    assert wait_for(lambda: rig.controller.state == "fault")
    # The board opened the relays at once, so the monitor may see VLOGIC's current
    # vanish first; either way the E-stop is journaled as a fault of its own.
    assert wait_for(lambda: "estop" in fault_causes(rig))
    assert rig.truth()["contacts"] == []
    assert_all_outputs_off(rig)
    with pytest.raises(StateError, match="E-stop"):
        rig.controller.reset("operator")
    rig.sim.clear("estop")
    rig.controller.reset("operator")
    assert rig.controller.state == "safe"
    assert_all_outputs_off(rig)


def test_noisy_readings_trip_the_monitor(rig):
    rig.power_up_logic()
    rig.sim.inject("noise:psu=0.5")
    assert wait_for(lambda: rig.controller.state == "fault")
    assert rig.controller.fault_cause.startswith("monitor: VLOGIC")
    assert_all_outputs_off(rig)


def test_noisy_meter_refuses_to_arm_rather_than_guess(rig_factory):
    rig = rig_factory(faults=["noise:dmm=50%"], arm=False)
    with pytest.raises(IdentityMismatch):
        for _ in range(5):  # a reading may land inside the window by chance; five won't
            rig.controller.arm("operator")
            rig.controller.disarm("operator")
    assert rig.controller.state == "safe"
    assert max(n["max_voltage"] for n in rig.truth()["nets"].values()) < 0.5


def test_instrument_lying_about_a_setpoint_is_caught_by_measurement(rig):
    """It ignores the setpoint but echoes it back: only measuring what it delivers tells."""
    rig.power_up_logic()
    rig.sim.inject("ignore-setpoint:psu=lie")
    with contextlib.suppress(FaultLatched):
        rig.controller.set_voltage("VLOGIC", 4.0)  # the readback says 4 V
    assert wait_for(lambda: rig.controller.state == "fault")
    assert "commanded 4 V (regulation lost" in rig.controller.fault_cause
    assert_all_outputs_off(rig)


def test_an_instrument_trusted_again_after_reset_is_driven_safe(rig_factory):
    """A supply that failed its identity check, then passed it at reset, is commanded again."""
    rig = rig_factory(faults=["identity:psu=Rigol Technologies,DP832,DP8A0001"], connect=False)
    with pytest.raises(IdentityMismatch):
        rig.controller.connect()
    rig.sim.clear()
    rig.controller.reset("operator")
    rig.controller.arm("operator")
    rig.power_up_logic()
    report = rig.controller.emergency_stop("tester")
    assert report.verified, report.unverified
    assert_all_outputs_off(rig)


def test_a_non_finite_reading_is_garbage_and_never_staged(rig):
    """An INF/NaN reply is a protocol error, and the journal refuses to stage one: a staged
    entry that cannot be written would fail every later commit, the safe state's too."""
    from interlock.errors import JournalError, ProtocolError

    psu = rig.controller.instruments.supplies["psu"]
    query = psu.dialect.queries["measure_voltage?"]
    for reply in ("INF", "nan", "9.9E37,inf"):
        with pytest.raises(ProtocolError, match="not a finite number"):
            for field in psu.fields(query, reply, len(reply.split(","))):
                psu.number(query, field)
    with pytest.raises(JournalError):
        rig.journal.measurement("VLOGIC", voltage=float("inf"), durable=False)
    assert rig.journal.staged == 0
    rig.power_up_logic()  # and the journal goes on taking writes
    assert rig.controller.state == "live"


def test_a_slow_safe_state_is_overtaken_by_the_board(rig):
    """While the safe state is driven no heartbeat goes out: if the supply hangs, the
    board's watchdog opens the relays without waiting for the controller to give up."""
    rig.power_up_logic()
    rig.sim.inject("hang:psu")
    start = time.monotonic()
    with contextlib.suppress(InstrumentError, FaultLatched):
        rig.controller.set_voltage("VLOGIC", 4.5)  # times out after io_timeout (1 s)
    opened = [c["monotonic"] for c in rig.truth()["relays"] if c["monotonic"] > start]
    assert opened, "the relays never opened"
    watchdog = rig.configuration.bench.service.relay_watchdog
    io_timeout = rig.configuration.bench.service.io_timeout
    # Open within a watchdog period of the trip (which came after the 1 s timeout),
    # long before the safe state would have given up on the hung supply.
    assert max(opened) - start < io_timeout + watchdog + 0.3
    assert_all_outputs_off(rig)


def test_a_board_watchdog_trip_says_how_late_this_host_was(rig):
    """The host's side of a watchdog trip is in its cause: when its last heartbeats went
    out. Here the host stopped beating, so the last was at least a watchdog ago."""
    import re

    rig.power_up_logic()
    rig.controller.supervisor.stop_heartbeat("a host held up, for the test")
    assert wait_for(lambda: rig.controller.state == "fault", timeout=10)
    cause = rig.controller.fault_cause
    assert "WDT" in cause
    found = re.search(
        r"this host's last heartbeats: (?:\d+ ms apart, )?the last (\d+) ms ago", cause
    )
    assert found, cause
    watchdog_ms = rig.configuration.bench.service.relay_watchdog * 1e3
    assert int(found[1]) >= watchdog_ms
    assert_all_outputs_off(rig)


def test_a_monitor_pass_while_an_output_goes_off_is_not_a_trip(rig, monkeypatch):
    # Under load the thread turning an output off can be held between the off line and
    # its record. A monitor pass then would read the output off while it is commanded on:
    # that is what was asked for, not a tripped protection nor lost regulation. Here two
    # passes are made to happen in that window.
    rig.power_up_logic()  # stays live, so the monitor keeps passing
    rig.power_up_bus()
    time.sleep(0.3)  # beyond VBUS's settle time (100 ms): a low reading is a fault again
    controller = rig.controller
    monitor = controller.monitor
    supply = rig.supply_driver("VBUS")
    set_output = supply.set_output
    passes_seen: list[int] = []

    def passes_beyond(count: int, seconds: float) -> int:
        deadline = time.monotonic() + seconds
        while monitor.passes < count and time.monotonic() < deadline:
            time.sleep(0.005)
        return monitor.passes

    def off_then_two_passes(channel, on, **context):
        state = set_output(channel, on, **context)
        if not on:  # the output is off at the supply; the call has not returned yet
            first = monitor.passes
            # A pass that finds a fault waits for this exchange (it holds the gate), so
            # without two passes after 3 s one of them found something.
            passes_seen.append(passes_beyond(first + 2, 3.0) - first)
        return state

    monkeypatch.setattr(supply, "set_output", off_then_two_passes)
    controller.output_off("VBUS")
    passes_beyond(monitor.passes + 1, 10.0)  # a pass that found a fault has tripped by now
    assert controller.fault_cause is None
    assert len(passes_seen) == 1 and passes_seen[0] >= 2  # two whole passes in the window
    assert controller.state == "live"  # VLOGIC still is
    assert rig.truth()["nets"]["VBUS"]["voltage"] < 0.5


def test_an_error_no_part_should_raise_while_turning_an_output_off_trips(rig, monkeypatch):
    # The output is recorded off before its line goes out: should the exchange end in an
    # error that is not an instrument's or the journal's (a defect), the bench goes safe
    # rather than stay live with a net nobody watches.
    rig.power_up_logic()
    rig.power_up_bus()
    controller = rig.controller
    supply = rig.supply_driver("VBUS")

    def broken(channel, on, **context):
        raise KeyError("a defect")

    monkeypatch.setattr(supply, "set_output", broken)
    with pytest.raises(KeyError):
        controller.output_off("VBUS")
    assert controller.state == "fault"
    assert controller.fault_cause.startswith("internal: KeyError")
    monkeypatch.undo()  # the safe state went through the driver's other calls
    assert_all_outputs_off(rig)


def test_a_net_settles_from_when_its_output_reads_on(rig, monkeypatch):
    # A slow link (a serial supply's gap between commands) can make turning an output on
    # take longer than the net's settle time: the monitor must still give a DUT charging
    # its capacitors the whole settle time once the output is on.
    from interlock.limits.measurements import settling

    controller = rig.controller
    limits = controller.limits
    settle = limits.nets["VLOGIC"].settle_time
    supply = rig.supply_driver("VLOGIC")
    set_output = supply.set_output
    known_on: list[float] = []

    def slow_on(channel, on, **context):
        if on:
            time.sleep(3 * settle)  # the link's wait before the line may go out
        state = set_output(channel, on, **context)
        known_on.append(controller.clock())
        return state

    monkeypatch.setattr(supply, "set_output", slow_on)
    rig.power_up_logic()
    assert controller.state == "live" and controller.fault_cause is None
    net = controller.commanded.net("VLOGIC")
    assert net.on_at == net.changed_at >= known_on[0]  # counted from the output known on
    assert settling(limits, controller.commanded, "VLOGIC", known_on[0])
