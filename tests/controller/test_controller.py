"""The controller on the simulated bench: normal operation, refusals, states."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from interlock.controller import mermaid_diagram
from interlock.errors import FaultLatched, LimitViolation, StateError

from .support import (
    ROOT,
    assert_all_outputs_off,
    assert_safety_invariants,
    edited_bench,
    setting_commands,
)


def test_power_up_ramp_and_power_down(rig):
    ctl = rig.controller
    rig.power_up_logic()
    assert ctl.state == "live"
    rig.power_up_bus(24.0)
    reading = ctl.measure("VBUS")
    assert reading["voltage"] == pytest.approx(24.0, abs=0.05)
    assert reading["current"] == pytest.approx(0.2, rel=0.05)  # 24 V into 120 ohm
    truth = rig.truth()["nets"]
    assert truth["VBUS"]["max_voltage"] == pytest.approx(24.0, abs=0.05)
    # The ramp went in steps of at most max_step: the bus never jumped.
    lines = [c["line"] for c in rig.truth()["instruments"]["psu"]["commands"]]
    steps = [
        float(line.split()[1].split(",")[0])
        for line in lines
        if line.startswith("VOLT ") and "(@2)" in line
    ]
    assert steps[-6:] == pytest.approx([4.0, 8.0, 12.0, 16.0, 20.0, 24.0])
    ctl.output_off("VBUS")
    ctl.output_off("VLOGIC")
    assert ctl.state == "armed"
    assert_all_outputs_off(rig)
    assert_safety_invariants(rig)


def test_refusal_names_rule_and_sends_nothing(rig):
    ctl = rig.controller
    before = len(rig.truth()["instruments"]["psu"]["commands"])
    with pytest.raises(LimitViolation) as info:
        ctl.set_voltage("VBUS", 26.0)
    assert info.value.rule == "nets.VBUS.max_voltage"
    assert info.value.where == "profiles/mdb24.toml: nets.VBUS.max_voltage"
    assert len(rig.truth()["instruments"]["psu"]["commands"]) == before  # nothing live: no polls
    assert ctl.state == "armed" and ctl.fault_cause is None


def test_a_setpoint_is_decided_again_if_the_state_moved_before_it_is_sent(rig, monkeypatch):
    """Allowed when planned, but a relay that must be open was closed before the send
    (here behind the controller's back): the engine decides again, on the record."""
    from interlock.journal import JournalReader

    ctl = rig.controller
    rule = next(r for r in rig.limits.open_before_change if r.net == "VBUS")
    relay = sorted(rule.relays)[0]
    wait = ctl._wait

    def state_moves(seconds):
        closed = ctl.commanded.closed_relays | {relay}
        ctl.commanded = replace(ctl.commanded, closed_relays=closed)
        wait(seconds)

    monkeypatch.setattr(ctl, "_wait", state_moves)
    before = setting_commands(rig)
    with pytest.raises(LimitViolation) as info:
        ctl.set_voltage("VBUS", 4.0)
    assert info.value.rule == rule.rule
    assert setting_commands(rig) == before  # nothing went out
    with JournalReader(rig.journal.path) as reader:
        verdicts = [e.payload for e in reader.entries() if e.kind == "verdict"]
    assert [v["allowed"] for v in verdicts[-2:]] == [True, False]  # the plan's, then the send's
    assert verdicts[-1]["rule"] == rule.rule


def test_a_ramp_whose_target_breaks_a_rule_is_refused_before_its_first_step(rig_factory, tmp_path):
    bench = edited_bench(
        tmp_path,
        {"profiles/mdb24.toml": [('max_total_power = "18 W"', 'max_total_power = "10 W"')]},
    )
    rig = rig_factory(bench=bench)
    ctl = rig.controller
    rig.power_up_logic()  # 5 V x 400 mA = 2 W
    rig.power_up_bus(4.0)  # 4 V x 500 mA = 2 W
    before = setting_commands(rig)
    # 4 -> 24 V in 4 V steps: the target itself makes 2 W + 12 W, checked before any step.
    with pytest.raises(LimitViolation) as info:
        ctl.set_voltage("VBUS", 24.0)
    assert info.value.rule == "rules.max_total_power"
    assert "could draw 14 W, above 10 W" in info.value.reason
    assert setting_commands(rig) == before  # not even the first step went out
    assert ctl.state == "live" and ctl.fault_cause is None
    assert_safety_invariants(rig)


def test_hot_switching_refused(rig):
    rig.power_up_logic()
    with pytest.raises(LimitViolation) as info:
        rig.controller.set_relay("K1", False)
    assert info.value.rule == "hot-switch"
    assert rig.truth()["contacts"] == ["K1"]


def test_illegal_triggers_are_errors(rig_factory):
    rig = rig_factory(arm=False)
    ctl = rig.controller
    with pytest.raises(StateError):
        ctl.set_voltage("VBUS", 1.0)  # not armed
    with pytest.raises(StateError):
        ctl.disarm("operator")
    with pytest.raises(StateError):
        ctl.reset("operator")  # nothing to reset
    ctl.arm("operator")
    with pytest.raises(StateError):
        ctl.arm("operator")


def test_emergency_stop_latches_and_reset_never_energises(rig):
    ctl = rig.controller
    rig.power_up_logic()
    rig.power_up_bus(8.0)
    report = ctl.emergency_stop("bob")
    assert report.verified, report.unverified
    assert ctl.state == "fault" and ctl.fault_cause.startswith("estop")
    assert_all_outputs_off(rig)
    assert rig.truth()["contacts"] == []
    with pytest.raises(FaultLatched, match=r"estop.*clears it with `interlock reset`"):
        ctl.set_voltage("VLOGIC", 1.0)  # the refusal says what the latch is and the way out
    ctl.reset("operator")
    assert ctl.state == "safe"
    time.sleep(0.2)
    assert_all_outputs_off(rig)
    assert rig.truth()["contacts"] == []
    with pytest.raises(StateError):
        ctl.output_on("VLOGIC")  # must arm again
    assert_safety_invariants(rig)


def test_power_on_order_enforced(rig):
    ctl = rig.controller
    ctl.set_voltage("VBUS", 4.0)
    with pytest.raises(LimitViolation) as info:
        ctl.output_on("VBUS")
    assert info.value.rule == "sequencing.power_on"
    assert rig.truth()["nets"]["VBUS"]["max_voltage"] == 0.0


def test_start_up_finds_energised_bench_and_latches(rig_factory):
    first = rig_factory()
    first.power_up_logic()
    # The first controller dies without a word: no safe state, no more heartbeats.
    first.controller.monitor.stop()
    first.controller.supervisor.stop()
    first.controller.instruments.close()
    time.sleep(0.7)  # the board's watchdog (500 ms) opens the relays by itself
    assert first.truth()["contacts"] == []
    from interlock.controller import Controller

    second = Controller(first.configuration, first.journal, resources=first.sim.resources)
    second.connect()
    try:
        assert second.state == "fault"
        assert second.fault_cause.startswith("found-energised")
        assert "psu CH1 output on" in second.fault_cause
        psu_state = rig_settings(second)
        assert not any(s.output for s in psu_state)
        second.reset("operator")
        assert second.state == "safe"
    finally:
        second.close()


def rig_settings(controller):
    return controller.instruments.supplies["psu"].settings([1, 2, 3])


def test_readme_shows_the_generated_state_diagram():
    readme = (ROOT / "README.md").read_text()
    assert mermaid_diagram() in readme


def test_non_finite_requests_are_refused_on_the_record(rig):
    from interlock.journal import JournalReader

    for value in (float("nan"), float("inf")):
        with pytest.raises(LimitViolation) as info:
            rig.controller.set_voltage("VBUS", value)
        assert info.value.rule == "finite-value"
    with JournalReader(rig.journal.path) as reader:
        verdicts = [e.payload for e in reader.entries() if e.kind == "verdict"]
    assert [v["rule"] for v in verdicts[-2:]] == ["finite-value", "finite-value"]


def test_current_limit_below_what_the_supply_regulates_is_refused(rig):
    with pytest.raises(LimitViolation) as info:
        rig.controller.set_current_limit("VLOGIC", 1e-6)
    assert info.value.rule == "supply.min_current"
    assert "E36312A CH1 cannot regulate below 2 mA, got 1 µA" in info.value.reason
    assert rig.controller.fault_cause is None


def test_disarm_opens_what_a_script_left_closed(rig):
    rig.controller.set_relay("K8", True)
    rig.controller.disarm("operator")
    assert rig.controller.state == "safe"
    assert rig.truth()["contacts"] == []
    rig.controller.arm("operator")  # and arming again finds everything off
    assert rig.controller.state == "armed"


def test_what_a_client_staged_reaches_disk_within_two_periods_with_nothing_live(rig):
    """Armed, nothing live: a measurement's entries wait for the next command, or for
    the monitor once they have waited a whole period; never longer than two."""
    assert rig.controller.state == "armed"
    rig.controller.measure("VLOGIC")
    assert rig.journal.staged > 0
    period = rig.controller.monitor.period
    deadline = time.monotonic() + 2 * period + 0.2  # two periods, and a scheduling margin
    while rig.journal.staged and time.monotonic() < deadline:
        time.sleep(period / 10)
    assert rig.journal.staged == 0


def test_monitoring_alone_keeps_the_journal_current(rig):
    """Polls are pure queries (staged), but each monitor pass commits: nothing piles up."""
    from interlock.journal import JournalReader

    rig.power_up_logic()
    with JournalReader(rig.journal.path) as reader:
        before = reader.last_seq()
    time.sleep(0.5)  # about ten monitor passes, nobody else writing
    with JournalReader(rig.journal.path) as reader:
        measured = [e for e in reader.entries(after_seq=before) if e.kind == "measurement"]
    assert len(measured) >= 5
    assert rig.journal.staged <= 4  # at most one pass's worth waits in memory
