"""The monitor polls its supplies side by side, and a finding trips at once.

Each supply has a session of its own: one pass asks them all before it reads any
reply, and reads each reply as it arrives, so a pass over many supplies takes
about as long as its slowest exchange, not their sum. Here each supply's reply
arrives on a pipe when the test says, as a socket's would.
"""

from __future__ import annotations

import os
import select
import threading
import time
from types import SimpleNamespace

from interlock.controller import monitor as monitor_module
from interlock.controller.monitor import Monitor
from interlock.errors import ProtocolError
from interlock.journal import Journal
from interlock.posted import Posted
from interlock.protocols import Reading
from tests.controller.test_posted import arrived


class Supply:
    """A supply that is asked at once and answers when :meth:`answer` is called."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        self.asked = threading.Event()
        self.collected = False

    def answer(self) -> None:
        os.write(self._write, b"x")

    def post_poll(self, channels, between=None):
        self.asked.set()

        def result():
            # As a session's read: the reply within the timeout (5 s), or an error.
            assert select.select([self._read], [], [], 5)[0], "no reply within 5 s"
            os.read(self._read, 1)
            self.collected = True
            return [Reading(5.0, 0.1, False, True) for _ in channels]

        return Posted(self._read, time.monotonic() + 5, result, lambda: arrived(self._read))

    def close(self) -> None:
        os.close(self._read)
        os.close(self._write)


def answer_once_all_asked(supplies) -> threading.Thread:
    def answer():
        if all(s.asked.wait(5) for s in supplies):
            for s in supplies:
                s.answer()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    return thread


def make_monitor(tmp_path, supplies, trips, monkeypatch, finding_on=None, on_trip=lambda: None):
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
        trip=lambda cause, detail, **_: (trips.append(detail), on_trip()),
        journal_failed=lambda detail: (trips.append(detail), on_trip()),
        on_trip_failed=lambda why: None,
    )
    return monitor, journal


def one_pass(monitor, journal) -> None:
    """One pass of ``monitor``; then it is stopped and its journal closed."""
    try:
        monitor.poll_live_nets()
    finally:
        monitor.stop()
        journal.close()


def test_one_pass_asks_every_supply_at_once(tmp_path, monkeypatch):
    # Each supply answers only once every other has been asked too: one after the other,
    # the first reply would never come (here: an error after 5 s).
    supplies = {name: Supply() for name in ("psu1", "psu2", "psu3")}
    answering = answer_once_all_asked(list(supplies.values()))
    trips: list[str] = []
    monitor, journal = make_monitor(tmp_path, supplies, trips, monkeypatch)
    try:
        one_pass(monitor, journal)
    finally:
        answering.join()
    assert trips == []
    assert all(monitor.reading(net) is not None for net in ("psu1-net", "psu2-net", "psu3-net"))


def test_a_finding_trips_without_waiting_for_a_slower_supply(tmp_path, monkeypatch):
    # The slow supply is asked first and answers only once the bench has tripped (as the
    # safe state's exchange reads a reply still owed): the fast one's reply is read as it
    # arrives, and its finding trips the bench without waiting for the slow one's.
    supplies = {"slow": Supply(), "fast": Supply()}
    supplies["fast"].answer()
    at_trip: list[bool] = []

    def on_trip():
        at_trip.append(supplies["slow"].collected)
        supplies["slow"].answer()

    trips: list[str] = []
    monitor, journal = make_monitor(
        tmp_path, supplies, trips, monkeypatch, finding_on="fast-net", on_trip=on_trip
    )
    one_pass(monitor, journal)
    assert trips == ["fast-net: out of its envelope"]
    assert at_trip == [False]  # tripped before the slow supply's reply was read
    # ... which was read after, for the record.
    assert supplies["slow"].collected and monitor.reading("slow-net") is not None


def test_a_pass_journals_one_entry_per_supply_with_every_nets_reading(tmp_path, monkeypatch):
    from interlock.journal import JournalReader
    from interlock.journal.entries import Kind, net_readings

    supplies = {name: Supply() for name in ("psu1", "psu2")}
    answering = answer_once_all_asked(list(supplies.values()))
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
        answering.join()
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
    supplies = {"psu": Supply()}
    supplies["psu"].answer()
    trips: list[str] = []
    monitor, journal = make_monitor(tmp_path, supplies, trips, monkeypatch, finding_on="psu-net")
    changes = iter(range(1, 1000))
    # Each look at the net finds a newer setpoint change; the output went on once, at 0.
    monitor._commanded.net = lambda net: SimpleNamespace(
        output=True, changed_at=float(next(changes)), on_at=0.0
    )
    one_pass(monitor, journal)
    assert trips == ["psu-net: out of its envelope"]


def test_an_output_turned_off_and_on_during_a_pass_waits_for_the_next(tmp_path, monkeypatch):
    supplies = {"psu": Supply()}
    supplies["psu"].answer()
    trips: list[str] = []
    monitor, journal = make_monitor(tmp_path, supplies, trips, monkeypatch, finding_on="psu-net")
    toggles = iter(range(1, 1000))
    monitor._commanded.net = lambda net: SimpleNamespace(
        output=True, changed_at=0.0, on_at=float(next(toggles))
    )
    one_pass(monitor, journal)
    assert trips == []


class SeveralExchanges:
    """A supply whose poll takes several exchanges (no compound line): asked in full
    when its result is read; each answers only while the other is being asked too."""

    def __init__(self, barrier: threading.Barrier) -> None:
        self.barrier = barrier

    def post_poll(self, channels, between=None):
        def result():
            self.barrier.wait()
            return [Reading(5.0, 0.1, False, True) for _ in channels]

        return Posted(None, 0.0, result)


def test_supplies_polled_in_several_exchanges_are_asked_side_by_side_too(tmp_path, monkeypatch):
    barrier = threading.Barrier(2, timeout=10)
    supplies = {"korad1": SeveralExchanges(barrier), "korad2": SeveralExchanges(barrier)}
    trips: list[str] = []
    monitor, journal = make_monitor(tmp_path, supplies, trips, monkeypatch)
    one_pass(monitor, journal)
    assert trips == [] and not barrier.broken
    assert monitor.reading("korad1-net") is not None and monitor.reading("korad2-net") is not None


class Garbled(Supply):
    """A supply whose reply arrives garbled: reading it raises, as the driver does."""

    def post_poll(self, channels, between=None):
        posted = super().post_poll(channels, between)

        def result():
            posted.result()
            raise ProtocolError("garbled", "MEAS:VOLT?: not a number: 'x'")

        return Posted(posted.fileno, posted.due, result, posted.ready)


def test_a_reply_that_fails_trips_first_and_the_others_are_still_recorded(tmp_path, monkeypatch):
    supplies = {"garbled": Garbled(), "fine": Supply()}
    supplies["garbled"].answer()
    at_trip: list[bool] = []

    def on_trip():
        at_trip.append(supplies["fine"].collected)
        supplies["fine"].answer()  # as the safe state's exchange reads a reply owed

    trips: list[str] = []
    monitor, journal = make_monitor(tmp_path, supplies, trips, monkeypatch, on_trip=on_trip)
    one_pass(monitor, journal)  # the failure is the monitor's to trip on, not raised
    assert trips == ["garbled: MEAS:VOLT?: not a number: 'x'"]
    assert at_trip == [False]  # tripped before the other reply was read
    assert supplies["fine"].collected and monitor.reading("fine-net") is not None


def test_a_pass_asks_no_more_supplies_once_the_bench_is_tripped_meanwhile(tmp_path, monkeypatch):
    # The first supply's question is posted, then someone trips the bench: the others
    # are not asked (a line more would only make the safe state wait for its reply).
    supplies = {name: Supply() for name in ("psu1", "psu2", "psu3")}
    trips: list[str] = []
    monitor, journal = make_monitor(tmp_path, supplies, trips, monkeypatch)
    for supply in supplies.values():
        supply.answer()
        posting = supply.post_poll

        def post_then_trip(channels, between=None, posting=posting):
            posted = posting(channels, between)
            monitor._gate.cause = "estop"  # as the gate latches a stop
            return posted

        supply.post_poll = post_then_trip
    one_pass(monitor, journal)
    assert sum(s.asked.is_set() for s in supplies.values()) == 1
    assert trips == []  # the reply in is recorded, not judged: the bench is tripped


class CutShort(Supply):
    """A supply whose reply stops after its first bytes: reading it waits for the rest,
    which comes here once the bench has tripped (the safe state waits for that read).
    While it is being read, ``meanwhile`` happens (which makes the order certain)."""

    def __init__(self, meanwhile) -> None:
        super().__init__()
        self.meanwhile = meanwhile
        self.rest = threading.Event()
        self.read_to_its_end = False

    def post_poll(self, channels, between=None):
        self.asked.set()
        self.answer()  # its first bytes

        def result():
            self.meanwhile()
            self.rest.wait(10)
            self.read_to_its_end = True
            return [Reading(5.0, 0.1, False, True) for _ in channels]

        return Posted(self._read, time.monotonic() + 30, result, self.rest.is_set)


def test_a_finding_trips_while_another_supplys_reply_is_cut_short(tmp_path, monkeypatch):
    # Read in the pass's own thread, the reply cut short would hold the finding on the
    # other supply for as long as its own timeout.
    fast = Supply()
    cut_short = CutShort(meanwhile=fast.answer)
    supplies = {"cut-short": cut_short, "fast": fast}
    at_trip: list[bool] = []

    def on_trip():
        at_trip.append(cut_short.read_to_its_end)
        cut_short.rest.set()

    trips: list[str] = []
    monitor, journal = make_monitor(
        tmp_path, supplies, trips, monkeypatch, finding_on="fast-net", on_trip=on_trip
    )
    one_pass(monitor, journal)
    assert trips == ["fast-net: out of its envelope"]
    assert at_trip == [False]  # tripped while the cut-short reply was still being read
    # ... which was read to its end after, for the record.
    assert cut_short.read_to_its_end and monitor.reading("cut-short-net") is not None


class AskedLineByLine:
    """A supply polled in several exchanges (no compound line); the bench trips while
    its first line is being answered."""

    def __init__(self, trip) -> None:
        self.trip = trip
        self.lines: list[str] = []

    def post_poll(self, channels, between=None):
        def result():
            for line in ("VOUT1?", "IOUT1?", "STATUS?"):
                if self.lines and between is not None:
                    between()
                self.lines.append(line)
                if line == "VOUT1?":
                    self.trip()
            return [Reading(5.0, 0.1, False, True) for _ in channels]

        return Posted(None, 0.0, result)


def test_a_poll_of_several_exchanges_asks_no_more_lines_once_the_bench_is_tripped(
    tmp_path, monkeypatch
):
    # Each line more would go out before the safe state's next line on that supply.
    trips: list[str] = []
    supplies: dict = {}
    monitor, journal = make_monitor(tmp_path, supplies, trips, monkeypatch)

    def trip():
        monitor._gate.cause = "estop: emergency stop by operator"  # as the gate latches

    supplies["korad"] = AskedLineByLine(trip)
    monitor._instruments.ports["korad-net"] = SimpleNamespace(supply="korad", channel=1)
    monitor._commanded.live_nets.add("korad-net")
    one_pass(monitor, journal)
    assert supplies["korad"].lines == ["VOUT1?"]
    assert trips == []  # tripped by someone else: not the monitor's to trip again


def test_a_poll_of_several_exchanges_asks_no_more_lines_once_a_stop_is_under_way(
    tmp_path, monkeypatch
):
    # A stop is under way before its trip latches (its record is journaled first): the
    # poll's lines would already go before the stop's.
    import contextlib

    from interlock.controller import stop_first

    stopping = contextlib.ExitStack()
    supplies = {"korad": AskedLineByLine(lambda: stopping.enter_context(stop_first.stopping()))}
    trips: list[str] = []
    monitor, journal = make_monitor(tmp_path, supplies, trips, monkeypatch)
    with stopping:
        one_pass(monitor, journal)
    assert supplies["korad"].lines == ["VOUT1?"]
    assert trips == []
