"""The gate's latch: the first fault is kept, its trip's end is known, and a failure
seen again and again goes on the record once per fault."""

from __future__ import annotations

import threading

from interlock.controller.gate import Gate, Latched
from interlock.journal import Journal


def test_the_first_latch_is_kept_and_numbered(tmp_path):
    with Journal(tmp_path / "j.sqlite", bench="b") as journal:
        gate = Gate(journal)
        assert gate.latch("estop: alice") == Latched(True, 1)
        assert gate.latch("journal: full") == Latched(False, 1)
        assert gate.cause == "estop: alice"
        gate.clear()
        assert gate.latch("journal: full") == Latched(True, 2)


def test_a_trip_over_after_a_reset_and_a_new_latch_does_not_end_the_new_ones(tmp_path):
    """Whoever waits behind fault 2's trip goes on when fault 2's trip is over, not when
    fault 1's trip (cleared meanwhile by a reset) gets to its end."""
    with Journal(tmp_path / "j.sqlite", bench="b") as journal:
        gate = Gate(journal)
        first = gate.latch("estop: alice")
        gate.clear()
        second = gate.latch("monitor: VLOGIC short")
        gate.settled(first.number)
        assert not gate.wait_settled(0.05)
        gate.settled(second.number)
        assert gate.wait_settled(0.05)


def test_a_waiter_goes_on_once_the_trip_is_over(tmp_path):
    with Journal(tmp_path / "j.sqlite", bench="b") as journal:
        gate = Gate(journal)
        latched = gate.latch("estop: alice")
        waited: list[bool] = []
        waiter = threading.Thread(target=lambda: waited.append(gate.wait_settled(30)))
        waiter.start()
        gate.settled(latched.number)
        waiter.join(30)
        assert waited == [True]


def test_a_failure_is_told_once_per_fault(tmp_path):
    with Journal(tmp_path / "j.sqlite", bench="b") as journal:
        gate = Gate(journal)
        gate.latch("estop: alice")
        assert gate.first_told("disk full")
        assert not gate.first_told("disk full")
        assert gate.first_told("disk I/O error")
        gate.clear()
        gate.latch("monitor: VLOGIC short")
        assert gate.first_told("disk full")  # told anew behind the next fault
