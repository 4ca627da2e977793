"""What the console offers and highlights, from a status (no terminal)."""

from __future__ import annotations

import pytest

from interlock.console.model import History, JournalLine, availability, relays_in_fault
from interlock.console.screens import typed_name_matches


@pytest.mark.parametrize("role", ["viewer", "script", "operator"])
@pytest.mark.parametrize("state", [None, "disconnected", "safe", "armed", "live", "fault"])
@pytest.mark.parametrize("connected", [True, False])
def test_the_emergency_stop_is_always_offered(role, state, connected):
    assert availability("estop", role, state, connected).allowed


@pytest.mark.parametrize("action", ["arm", "disarm", "reset"])
@pytest.mark.parametrize("role", ["viewer", "script"])
def test_operator_actions_name_the_role_they_need(action, role):
    verdict = availability(
        action, role, {"arm": "safe", "disarm": "armed"}.get(action, "fault"), True
    )
    assert not verdict.allowed
    assert verdict.reason == f"needs the operator role (this console is {role})"


@pytest.mark.parametrize(
    ("action", "state", "allowed"),
    [
        ("arm", "safe", True),
        ("arm", "live", False),
        ("disarm", "armed", True),
        ("disarm", "safe", False),
        ("reset", "fault", True),
        ("reset", "safe", False),
    ],
)
def test_operator_actions_follow_the_state(action, state, allowed):
    verdict = availability(action, "operator", state, True)
    assert verdict.allowed is allowed
    assert allowed or f"(now {state})" in verdict.reason


def test_nothing_but_the_stop_is_offered_while_disconnected():
    verdict = availability("arm", "operator", "safe", False)
    assert (verdict.allowed, verdict.reason) == (False, "no service: disconnected")


@pytest.mark.parametrize(
    ("kind", "text", "alarm"),
    [
        ("fault", "FAULT estop: emergency stop by ops", "fault"),
        ("state", "live -> fault (trip)", "fault"),
        (
            "verdict",
            "REFUSED request #3 by max_voltage (p.toml: nets.VBUS.max_voltage): ...",
            "refused",
        ),
        ("verdict", "ALLOWED request #4", None),
        ("state", "safe -> armed (arm)", None),
        ("operator", "estop", None),
    ],
)
def test_journal_alarms(kind, text, alarm):
    assert JournalLine(1, "2026-11-26T03:00:00.000Z", kind, "ops", text).alarm == alarm


def test_history_counts_each_measurement_once():
    history = History(size=3)

    def status(volts: float, at: float) -> dict:
        return {"nets": {"VBUS": {"measured": {"voltage": volts, "current": 0.2, "at": at}}}}

    for volts, at in ((24.0, 1.0), (24.0, 1.0), (24.1, 2.0), (23.9, 3.0), (24.2, 4.0)):
        history.add(status(volts, at))
    history.add({"nets": {"VBUS": {"measured": None}, "ID": {}}})
    assert history.voltage("VBUS") == [24.1, 23.9, 24.2]
    assert history.current("VBUS") == [0.2, 0.2, 0.2]
    assert history.voltage("ID") == []


def test_the_sparklines_drop_to_zero_when_a_net_goes_off():
    history = History()

    def status(output: bool, volts: float, at: float) -> dict:
        reading = {"voltage": volts, "current": 0.2 if output else 0.0, "at": at}
        return {"nets": {"VBUS": {"output": output, "measured": reading}}}

    for at in (1.0, 2.0):
        history.add(status(True, 24.0, at))
    # The trip: the output is off, and the status still carries the last live reading.
    history.add(status(False, 24.0, 2.0))
    history.add(status(False, 24.0, 2.0))
    assert history.voltage("VBUS") == [24.0, 24.0, 0.0]
    assert history.current("VBUS") == [0.2, 0.2, 0.0]
    # A reading of the off output, when one comes, is drawn as read.
    history.add(status(False, 0.003, 3.0))
    assert history.voltage("VBUS") == [24.0, 24.0, 0.0, 0.003]


def test_a_contact_sense_fault_names_its_relays():
    relays = ["K1", "K2", "K3", "K12"]
    fault = "contact-sense: contacts disagree with coils: K1, K12 (board event)"
    assert relays_in_fault(fault, relays) == {"K1", "K12"}
    assert relays_in_fault("monitor: K1 looks odd", relays) == set()
    assert relays_in_fault(None, relays) == set()


@pytest.mark.parametrize(
    ("typed", "name", "ok"),
    [
        ("fm-bench-02", "fm-bench-02", True),
        (" fm-bench-02 ", "fm-bench-02", True),
        ("FM-BENCH-02", "fm-bench-02", False),
        ("fm-bench-2", "fm-bench-02", False),
        ("qmbench", "qm bench", True),
        ("", "fm-bench-02", False),
    ],
)
def test_the_flight_confirmation_is_the_exact_name(typed, name, ok):
    assert typed_name_matches(typed, name) is ok
