"""Deliberately broken controllers: the ground-truth checks must catch each one.

If one of these passed, the checks the other tests rely on would be blind to
exactly the kind of mistake they exist for.
"""

from __future__ import annotations

import contextlib
import time

import pytest

from interlock.controller import actuation as actuation_module
from interlock.controller import energising as energising_module
from interlock.errors import InterlockError
from interlock.limits import ALLOWED, Decision, apply
from interlock.limits.ramps import RampStep, VoltagePlan

from .support import assert_intents_before_commands, assert_truth_within_limits


def without_safe_to_mate(energising, net):
    """Skips looking before energising."""


def trusting_readback(actuation, net, quantity, commanded, readback):
    """Believes every instrument."""


def allow_everything(limits, state, request, now):
    """A limit engine that never says no."""
    return Decision(ALLOWED, apply(state, request, now))


def plan_anything(limits, state, request, now):
    """...and plans any voltage as one step at once."""
    decision = allow_everything(limits, state, request, now)
    return VoltagePlan(ALLOWED, (RampStep(0.0, request, decision),), decision.state)


def test_checks_catch_a_controller_without_safe_to_mate(rig_factory, monkeypatch):
    monkeypatch.setattr(energising_module.Energising, "check_safe_to_mate", without_safe_to_mate)
    rig = rig_factory(faults=["swap:VBUS,MOTOR"])
    rig.power_up_logic()
    with contextlib.suppress(InterlockError):
        rig.power_up_bus(4.0)
    stray = rig.limits.nets["MOTOR"].safe_to_mate.max_stray_voltage
    # The winding got the bus's voltage: exactly what the break-out-box test forbids.
    assert rig.truth()["nets"]["MOTOR"]["max_voltage"] > stray


def test_checks_catch_a_controller_without_limits(rig_factory, monkeypatch):
    monkeypatch.setattr(actuation_module, "evaluate", allow_everything)
    monkeypatch.setattr(actuation_module, "plan_voltage", plan_anything)
    rig = rig_factory()
    rig.controller.set_voltage("VLOGIC", 5.9)
    # The monitor notices, but only once the DUT already saw 5.9 V.
    with contextlib.suppress(InterlockError):
        rig.controller.output_on("VLOGIC")
    with pytest.raises(AssertionError, match="VLOGIC saw"):
        assert_truth_within_limits(rig)


def test_checks_catch_a_controller_that_trusts_every_readback(rig_factory, monkeypatch):
    monkeypatch.setattr(actuation_module.Actuation, "expect", trusting_readback)
    rig = rig_factory()
    rig.power_up_logic()
    rig.sim.inject("ignore-setpoint:psu")
    rig.controller.set_voltage("VLOGIC", 4.0)  # no ReadbackMismatch: the fault goes unseen
    assert rig.controller.fault_cause is None
    assert rig.controller.measure("VLOGIC")["voltage"] == pytest.approx(5.0, abs=0.05)


@pytest.mark.parametrize("line", ["VOLT 1,(@1)", "OUTP OFF,(@1)"])
def test_checks_catch_commands_sent_without_intent(rig_factory, line):
    # An off line too: only the safe state's may go out before its record, and only with
    # its record flagged unjournaled.
    rig = rig_factory()
    psu = rig.controller.instruments.supplies["psu"]
    # Bypass the journal: write straight to the socket session, as a careless driver would.
    psu.transport._session.write_raw(f"{line}\n".encode())
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and not any(
        c["line"] == line for c in rig.truth()["instruments"]["psu"]["commands"]
    ):
        time.sleep(0.005)
    with pytest.raises(AssertionError, match="with no intent"):
        assert_intents_before_commands(rig)
