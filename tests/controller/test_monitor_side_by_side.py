"""The monitor polls its supplies side by side, and a finding trips at once.

Each supply has a session of its own: one pass asks them all at once, so a pass
over many supplies takes about as long as its slowest exchange, not their sum.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from interlock.controller import monitor as monitor_module
from interlock.controller.monitor import Monitor
from interlock.journal import Journal
from interlock.protocols import Reading


class Supply:
    def __init__(self, barrier: threading.Barrier, answered: threading.Event | None = None):
        self.barrier, self.answered = barrier, answered

    def poll(self, channels):
        self.barrier.wait()
        if self.answered is not None:
            self.answered.wait(5)
        return [Reading(5.0, 0.1, False, True) for _ in channels]


def make_monitor(tmp_path, supplies, trips, monkeypatch, finding_on=None):
    def check_live(limits, net, volts, amps, **_):
        return SimpleNamespace(problem="out of its envelope") if net == finding_on else None

    monkeypatch.setattr(monitor_module, "check_live", check_live)
    monkeypatch.setattr(monitor_module, "settling", lambda *a: False)
    nets = {f"{name}-net": SimpleNamespace(supply=name, channel=1) for name in supplies}
    commanded = SimpleNamespace(
        live_nets=set(nets),
        window=lambda net: (5.0, 5.0),
        net=lambda net: SimpleNamespace(output=True, changed_at=0.0, on_at=0.0),
        state=None,
    )
    journal = Journal(tmp_path / "journal.sqlite", bench="test")
    monitor = Monitor(
        1.0,
        journal=journal,
        instruments=SimpleNamespace(ports=nets, supplies=supplies),
        commanded=commanded,
        gate=SimpleNamespace(cause=None),
        limits=lambda: SimpleNamespace(nets=nets),
        clock=time.monotonic,
        trip=lambda cause, detail, **_: trips.append(detail),
        on_trip_failed=lambda why: None,
    )
    return monitor, journal


def test_one_pass_asks_every_supply_at_once(tmp_path, monkeypatch):
    # Each supply answers only once every other has been asked too: one after the other,
    # the first would wait for the rest for ever (here: the barrier's 5 s).
    barrier = threading.Barrier(3, timeout=5)
    supplies = {name: Supply(barrier) for name in ("psu1", "psu2", "psu3")}
    trips: list[str] = []
    monitor, journal = make_monitor(tmp_path, supplies, trips, monkeypatch)
    try:
        monitor.poll_live_nets()
    finally:
        monitor.stop()
        journal.close()
    assert trips == [] and not barrier.broken
    assert all(monitor.reading(net) is not None for net in ("psu1-net", "psu2-net", "psu3-net"))


def test_a_finding_trips_without_waiting_for_a_slower_supply(tmp_path, monkeypatch):
    barrier = threading.Barrier(2, timeout=5)
    slow_answers = threading.Event()
    supplies = {"fast": Supply(barrier), "slow": Supply(barrier, slow_answers)}
    trips: list[str] = []
    monitor, journal = make_monitor(tmp_path, supplies, trips, monkeypatch, finding_on="fast-net")
    try:
        monitor.poll_live_nets()  # returns once the fast supply's finding has tripped
        assert trips == ["fast-net: out of its envelope"]
        assert not slow_answers.is_set()  # the slow one is still being asked
    finally:
        slow_answers.set()
        monitor.stop()
        journal.close()


def test_a_pass_journals_one_entry_per_supply_with_every_nets_reading(tmp_path, monkeypatch):
    from interlock.journal import JournalReader
    from interlock.journal.entries import Kind, net_readings

    barrier = threading.Barrier(2, timeout=5)
    supplies = {name: Supply(barrier) for name in ("psu1", "psu2")}
    trips: list[str] = []
    # A finding on psu1's first net: its other nets' readings are on the record too.
    monitor, journal = make_monitor(tmp_path, supplies, trips, monkeypatch, finding_on="psu1-a")
    ports = {
        f"{name}-{c}": SimpleNamespace(supply=name, channel=i)
        for name in supplies
        for i, c in enumerate("abc", start=1)
    }
    monitor._instruments.ports = ports
    monitor._limits = lambda: SimpleNamespace(nets=ports)
    monitor._commanded.live_nets = set(ports)
    try:
        monitor.poll_live_nets()
        journal.flush()
    finally:
        monitor.stop()
        journal.close()
    assert trips == ["psu1-a: out of its envelope"]
    with JournalReader(journal.path) as reader:
        entries = [e for e in reader.entries() if e.kind == Kind.MEASUREMENT]
    by_supply = {e.payload["instrument"]: net_readings(e.payload) for e in entries}
    assert len(entries) == 2
    assert by_supply == {
        name: {f"{name}-{c}": {"voltage": 5.0, "current": 0.1} for c in "abc"} for name in supplies
    }


def test_a_setpoint_changed_during_a_pass_does_not_hide_the_reading(tmp_path, monkeypatch):
    """A client changing a live net's setpoint while the pass reads it (every change sets
    the net's ``changed_at``) must not keep the reading from the engine: the window covers
    the change. Only an output turned off and on again meanwhile (``on_at``) waits for the
    next pass. Skipped on every change, a short under a client commanding without pause
    went unjudged for pass after pass."""
    supplies = {"psu": Supply(threading.Barrier(1, timeout=5))}
    trips: list[str] = []
    monitor, journal = make_monitor(tmp_path, supplies, trips, monkeypatch, finding_on="psu-net")
    changes = iter(range(1, 1000))
    # Each look at the net finds a newer setpoint change; the output went on once, at 0.
    monitor._commanded.net = lambda net: SimpleNamespace(
        output=True, changed_at=float(next(changes)), on_at=0.0
    )
    try:
        monitor.poll_live_nets()
    finally:
        monitor.stop()
        journal.close()
    assert trips == ["psu-net: out of its envelope"]


def test_an_output_turned_off_and_on_during_a_pass_waits_for_the_next(tmp_path, monkeypatch):
    supplies = {"psu": Supply(threading.Barrier(1, timeout=5))}
    trips: list[str] = []
    monitor, journal = make_monitor(tmp_path, supplies, trips, monkeypatch, finding_on="psu-net")
    toggles = iter(range(1, 1000))
    monitor._commanded.net = lambda net: SimpleNamespace(
        output=True, changed_at=0.0, on_at=float(next(toggles))
    )
    try:
        monitor.poll_live_nets()
    finally:
        monitor.stop()
        journal.close()
    assert trips == []
