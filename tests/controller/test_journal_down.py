"""A journal that cannot be written never keeps the bench energised.

Failing safe comes before journaling (DESIGN.md, principles 1 and 6): when the
journal cannot be written, the safe state still sends its off commands, logs
that at once, and journals them, flagged ``unjournaled``, when it can again.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

from interlock.errors import JournalError
from interlock.journal import JournalReader, verify_journal
from tests.controller.support import assert_all_outputs_off


def _hold_journal(rig) -> sqlite3.Connection:
    """Another writer holds the journal: the controller's writes wait its busy timeout.

    It waits (up to 10 s) for a commit under way to end before it takes the journal: the
    monitor and the supervisor write too, and a holder that cannot wait fails the test."""
    other = sqlite3.connect(
        rig.journal.path, isolation_level=None, timeout=10, check_same_thread=False
    )
    other.execute("BEGIN IMMEDIATE")
    return other


def _supply_outputs(rig) -> dict[tuple[str, int], bool]:
    return {
        (name, number): channel.output
        for name, instrument in rig.sim.instruments.items()
        for number, channel in getattr(instrument, "channels", {}).items()
    }


def test_an_emergency_stop_turns_every_output_off_with_the_journal_held(rig, caplog):
    rig.power_up_logic()
    assert any(_supply_outputs(rig).values())
    other = _hold_journal(rig)
    try:
        started = time.monotonic()
        with caplog.at_level(logging.CRITICAL):
            report = rig.controller.emergency_stop("operator")
        # Not held up by the journal's 30 s busy timeout: each off command waits 50 ms,
        # and the late records 1 s once everything is off.
        assert time.monotonic() - started < 5.0
        assert rig.controller.state == "fault"
        # At once, by the commands, not later by the relay board's watchdog.
        assert not any(_supply_outputs(rig).values())
        assert rig.truth()["contacts"] == []
        assert_all_outputs_off(rig)
        assert report.outputs_off_at is not None
        assert any("sent unjournaled" in item for item in report.unverified)
        assert "journal cannot be written" in caplog.text
    finally:
        other.execute("ROLLBACK")
        other.close()
    rig.journal.flush()  # the journal writes again: the flagged records go in
    with JournalReader(rig.journal.path) as reader:
        flagged = [
            e.payload
            for e in reader.entries()
            if e.kind == "command" and "unjournaled" in e.payload
        ]
    assert any(p["data"].startswith("OUTP OFF") for p in flagged)
    assert any(p["data"].startswith("SET 0") for p in flagged)
    assert verify_journal(rig.journal.path).entries > 0  # raises on a broken chain


def test_with_the_journal_writable_the_off_commands_are_journaled_first(rig):
    rig.power_up_logic()
    rig.controller.emergency_stop("operator")
    with JournalReader(rig.journal.path) as reader:
        commands = [e.payload for e in reader.entries() if e.kind == "command"]
    offs = [p for p in commands if p["data"].startswith("OUTP OFF")]
    assert offs and not any("unjournaled" in p for p in commands)


def test_a_journal_only_busy_for_a_moment_gets_the_records_late_and_no_fault_of_its_own(rig):
    rig.power_up_logic()
    other = _hold_journal(rig)
    release = threading.Timer(0.3, lambda: (other.execute("ROLLBACK"), other.close()))
    release.start()
    try:
        report = rig.controller.emergency_stop("operator")
    finally:
        release.join()
    assert not any(_supply_outputs(rig).values())
    assert not report.journal_down
    assert not any("unjournaled" in item for item in report.unverified)
    assert any("journaled after" in item for item in report.done)
    assert rig.controller.supervisor.running  # the heartbeat goes on: the journal works
    with JournalReader(rig.journal.path) as reader:
        flagged = [e.payload for e in reader.entries() if "unjournaled" in e.payload]
    assert any(p["data"].startswith("OUTP OFF") for p in flagged)


def test_a_dead_supply_is_not_retried_while_the_journal_is_held(rig):
    rig.power_up_logic()
    rig.sim.inject("drop:psu")
    other = _hold_journal(rig)
    try:
        started = time.monotonic()
        report = rig.controller.emergency_stop("operator")
        assert time.monotonic() - started < 5.0  # no identity check waiting on the journal
        assert any("not retried" in item for item in report.unverified)
        assert rig.truth()["contacts"] == []  # the relays disconnect the DUT
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_an_emergency_stop_is_not_held_behind_a_setpoint_waiting_for_the_journal(rig):
    """A setpoint change holds the gate a trip needs; its journal write gives up after
    2 s (and trips), never after the journal's 30 s busy timeout."""
    rig.power_up_logic()
    other = _hold_journal(rig)
    errors: list[BaseException] = []

    def change() -> None:
        try:
            rig.controller.set_voltage("VLOGIC", 4.5)
        except BaseException as error:  # the journal error that trips, or the trip itself
            errors.append(error)

    setter = threading.Thread(target=change)
    try:
        setter.start()
        time.sleep(0.3)  # the setter now holds the gate, waiting for the journal
        started = time.monotonic()
        rig.controller.emergency_stop("operator")
        assert time.monotonic() - started < 5.0
        assert not any(_supply_outputs(rig).values())
        setter.join(10)
        assert errors, "the setpoint change must not succeed without its record"
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert rig.controller.state == "fault"
    assert not any(line.startswith("VOLT 4.5") for line in setting_lines(rig))


def setting_lines(rig) -> list[str]:
    return [c["line"] for c in rig.truth()["instruments"]["psu"]["commands"]]


def test_a_trip_reaches_the_fault_state_even_if_its_record_fails(rig, monkeypatch):
    rig.power_up_logic()
    state = rig.journal.state

    def failing_when_durable(*args, durable=True, **kwargs):
        if durable:
            raise JournalError("disk full")
        return state(*args, durable=durable, **kwargs)

    monkeypatch.setattr(rig.journal, "state", failing_when_durable)
    rig.controller.emergency_stop("operator")
    assert rig.controller.state == "fault"  # not left "live" with a fault latched
    rig.journal.flush()
    with JournalReader(rig.journal.path) as reader:
        trips = [e for e in reader.entries() if e.kind == "state" and e.payload["to"] == "fault"]
    assert trips


def test_a_trip_does_not_wait_out_the_busy_timeout_to_flush_a_backlog(rig):
    """999 staged entries: the trip's own (the fault) makes the thousandth, whose backlog
    flush must give up after a second with the journal held, not half a minute."""
    rig.power_up_logic()
    rig.controller.monitor.stop()  # it would flush the backlog itself
    rig.journal.flush()
    for i in range(999 - rig.journal.staged):
        rig.journal.measurement("VLOGIC", durable=False, voltage=5.0, sample=i)
    other = _hold_journal(rig)
    try:
        started = time.monotonic()
        rig.controller.emergency_stop("operator")
        assert time.monotonic() - started < 5.0
        assert not any(_supply_outputs(rig).values())
        assert rig.controller.state == "fault"
    finally:
        other.execute("ROLLBACK")
        other.close()
