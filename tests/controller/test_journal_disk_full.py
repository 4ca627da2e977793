"""The journal's disk full, for real: a small file system of its own, filled up.

The change that meets it is refused before anything goes out (journal before
acting), the bench trips once to its safe state, and stays there without driving
it again every monitor period (each time staging more that the disk cannot take);
once there is room again, the record is written whole, the off commands that went
out without theirs flagged.
"""

from __future__ import annotations

import errno
import os
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from interlock.controller.monitor import Monitor
from interlock.errors import FaultLatched, JournalError
from interlock.journal import Journal, JournalReader, verify_journal
from interlock.journal.store import FAILED_WAIT_S
from tests.controller.support import assert_all_outputs_off, close_rig, make_rig
from tests.waiting import until


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs (needs the right to mount: skipped where there is none)."""
    where = tmp_path / "disk"
    where.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(where)],
            capture_output=True,
            text=True,
        )
    except OSError as error:  # no mount(8) at all
        pytest.skip(f"cannot mount a small file system here: {error}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(path: Path) -> None:
    """Write ``path`` until the file system has no room left, to the last byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)


@pytest.fixture
def live_rig(sim_bench_factory, small_disk):
    """A bench with its journal on the small disk, VLOGIC live."""
    rig = make_rig(sim_bench_factory, small_disk)
    try:
        rig.power_up_logic()
        yield rig
    finally:
        close_rig(rig)


def trip_on_a_full_disk(rig, disk: Path) -> Path:
    """Fill ``disk``; the next setpoint change (4.0 V) meets it and trips. The filler."""
    filler = disk / "filler"
    fill(filler)
    with pytest.raises(JournalError, match="full"):
        rig.controller.set_voltage("VLOGIC", 4.0)
    return filler


def test_a_full_disk_trips_once_and_the_record_is_written_once_there_is_room(
    live_rig, small_disk, caplog
):
    rig = live_rig
    filler = trip_on_a_full_disk(rig, small_disk)
    assert rig.controller.state == "fault"
    # Asked again, the client hears why it is refused (the latched fault), not the
    # journal's error: the refusal waits staged for the record.
    with pytest.raises(FaultLatched, match="latched fault"):
        rig.controller.set_voltage("VLOGIC", 4.0)
    assert rig.truth()["supplies"]["psu"]["1"]["setpoint"] == 5.0  # 4.0 never went out
    assert_all_outputs_off(rig)
    # Forty monitor periods and more (the journal tries again each FAILED_WAIT_S): the
    # safe state is not driven again each one.
    periods = 40
    time.sleep(periods * rig.controller.monitor.period)
    # Two off commands (the supply's, the relay board's) went out unjournaled per
    # safe state: the trip's, and the relay board's watchdog trip (its heartbeat
    # stops when the safe state cannot be journaled) at most.
    assert rig.journal.unjournaled <= 4, rig.journal.unjournaled
    said = [r for r in caplog.records if "still cannot take the record" in r.getMessage()]
    assert len(said) <= 1  # said once, not once a try
    assert rig.journal.condition()["not_kept"] == 0
    # A status says the journal writes nothing, long after the back-off of a failure.
    journal = rig.controller.status()["journal"]
    assert "full" in (journal["not_writing"] or ""), journal
    assert journal["staged"] > 0
    filler.unlink()
    # The monitor writes what waits within a period or so once there is room.
    assert until(lambda: rig.journal.condition()["staged"] == 0, 30)
    assert rig.controller.status()["journal"]["not_writing"] is None  # it writes again
    close_rig(rig)  # its last records written: the journal as the next start finds it
    assert verify_journal(rig.journal.path).entries > 0  # raises on a broken chain
    with JournalReader(rig.journal.path) as reader:
        entries = list(reader.entries())
    flagged = [e.payload for e in entries if e.kind == "command" and "unjournaled" in e.payload]
    assert any(p["data"].startswith("OUTP OFF") for p in flagged)
    trips = [e for e in entries if e.kind == "state" and e.payload.get("trigger") == "trip"]
    assert len(trips) == 1 and trips[0].payload["cause"] == "journal", [t.payload for t in trips]
    refused = [e for e in entries if e.kind == "request" and e.payload.get("value") == 4.0]
    assert refused, "the refused request is on the record"


def test_an_operators_reset_once_there_is_room_gets_the_journals_answer_now(live_rig, small_disk):
    """The back-off after a failed write refuses writes with that failure's error; an
    operator who has just freed space and resets gets a real try, not that stale error."""
    filler = trip_on_a_full_disk(live_rig, small_disk)
    time.sleep(FAILED_WAIT_S)
    with pytest.raises(JournalError, match="full"):  # a try, or the monitor's just now
        live_rig.journal.flush()
    filler.unlink()  # within the back-off's half second that follows
    live_rig.controller.reset("operator")
    assert live_rig.controller.state == "safe"


def test_after_a_failed_write_none_is_tried_for_a_while_and_off_commands_do_not_wait(
    small_disk,
):
    """Each try writes the whole backlog before the disk refuses it: for FAILED_WAIT_S after
    a failure every write is refused at once, the safe state's off commands go out
    unjournaled without trying, and once there is room the record is written whole."""
    journal = Journal(small_disk / "journal.sqlite", bench="b")
    began: list[str] = []
    try:
        journal.begin_run()
        filler = small_disk / "filler"
        fill(filler)
        journal.measurement("VBUS", voltage=1.0, durable=False)
        with pytest.raises(JournalError, match="full"):
            journal.flush()
        # Each write's BEGIN, as SQLite runs it (the journal's own connection, traced).
        journal._conn.set_trace_callback(
            lambda sql: began.append(sql) if sql.startswith("BEGIN") else None
        )
        with pytest.raises(JournalError, match="full"):  # the same error, not tried
            journal.flush()
        off = journal.safe_off_intent("psu", "OUTP OFF,(@1)\n", purpose="safe-state")
        assert (off.seq, journal.unjournaled, began) == (0, 1, [])
        time.sleep(FAILED_WAIT_S)
        with pytest.raises(JournalError, match="full"):  # tried again, and refused again
            journal.flush()
        assert began == ["BEGIN IMMEDIATE"]
        filler.unlink()
        time.sleep(FAILED_WAIT_S)
        journal.flush()
    finally:
        journal._conn.set_trace_callback(None)
        journal.close()
    with JournalReader(journal.path) as reader:
        kinds = [(e.kind, "unjournaled" in e.payload) for e in reader.entries()]
    assert ("measurement", False) in kinds and ("command", True) in kinds


def test_a_refusal_the_full_disk_cannot_record_trips_the_bench(live_rig, small_disk):
    """A refusal is on the record before its client hears of it: one the journal cannot
    take trips the bench (the client hears the journal's error), as a command would."""
    fill(small_disk / "filler")
    with pytest.raises(JournalError, match="full"):
        live_rig.controller.set_voltage("VLOGIC", 1000.0)  # beyond its limit: refused
    assert live_rig.controller.state == "fault"
    assert_all_outputs_off(live_rig)


def test_the_monitor_finding_the_full_disk_just_after_a_client_drives_nothing_again(
    live_rig, small_disk, monkeypatch
):
    """A client's change and the monitor's commit fail on the same full disk a moment
    apart: one fault, one safe state. Here the client's trip latches just after the
    monitor's commit failed and just before the monitor's own trip would (the window a
    look at the gate, then a trip, leaves open): the monitor drives nothing again."""
    controller = live_rig.controller
    driven: list[str] = []
    safe_state = controller.safe_state

    def counted(reason: str):
        driven.append(reason)
        return safe_state(reason)

    monkeypatch.setattr(controller, "safe_state", counted)
    latch, between = controller._gate.latch, threading.Event()

    def client_first(cause: str) -> bool:
        # The monitor's thread about to latch: the client's trip comes first.
        if threading.current_thread().name == "interlock-monitor" and not between.is_set():
            between.set()
            controller.trip("journal", "a client's change failed on the same disk")
        return latch(cause)

    monkeypatch.setattr(controller._gate, "latch", client_first)
    fill(small_disk / "filler")
    assert until(between.is_set, 30), "the monitor's commit never failed"
    time.sleep(10 * controller.monitor.period)  # the monitor's passes after it
    assert controller.state == "fault"
    ours = [r for r in driven if not r.startswith("relay-board")]  # the board's watchdog
    assert ours == ["journal: a client's change failed on the same disk"], driven
    assert_all_outputs_off(live_rig)


def test_the_journal_failing_again_once_tripped_drives_and_stages_nothing(live_rig, small_disk):
    """The journal's failure seen again (by a client's change racing the monitor, say)
    while a fault is latched is the same fault: no safe state again, no record staged
    for it (another failure is staged once, and drives nothing either)."""
    controller = live_rig.controller
    trip_on_a_full_disk(live_rig, small_disk)

    # Its heartbeat stopped with the safe state unjournaled, the board's watchdog trips
    # too: once that is handled, nothing else drives or stages.
    def board_tripped() -> bool:
        report = controller.last_safe_state
        return report is not None and report.reason.startswith("relay-board")

    assert until(board_tripped, 30)
    unjournaled, staged = live_rig.journal.unjournaled, live_rig.journal.condition()["staged"]
    assert controller.fault_cause.startswith("journal: ")
    failure = controller.fault_cause.removeprefix("journal: ")
    assert controller.journal_failed(failure) is None
    assert live_rig.journal.unjournaled == unjournaled
    assert live_rig.journal.condition()["staged"] == staged
    for _ in range(2):
        assert controller.journal_failed("disk I/O error") is None
    assert live_rig.journal.unjournaled == unjournaled
    assert live_rig.journal.condition()["staged"] == staged + 1


def test_a_journal_failure_behind_a_trip_under_way_is_told_once_the_bench_is_safe(
    sim_bench_factory, tmp_path, monkeypatch
):
    """Another thread's trip is under way (an emergency stop) when a client's change finds
    the journal failing: the client hears of it only once the bench is safe, nothing is
    driven again, and the failure is on the record once, behind the stop."""
    rig = make_rig(sim_bench_factory, tmp_path)
    controller = rig.controller
    try:
        rig.power_up_logic()
        safe_state, driving = controller.safe_state, threading.Event()
        driven: list[str] = []

        def slow(reason: str):  # a safe state that takes its time
            driven.append(reason)
            driving.set()
            time.sleep(0.5)
            return safe_state(reason)

        monkeypatch.setattr(controller, "safe_state", slow)
        stop = threading.Thread(target=controller.emergency_stop, args=("alice",))
        stop.start()
        try:
            assert driving.wait(30)
            assert controller.journal_failed("disk I/O error") is None  # alice's trip
            assert controller.state == "fault"
            assert controller.last_safe_state is not None
            assert_all_outputs_off(rig)
            controller.journal_failed("disk I/O error")  # the monitor's next try: told
        finally:
            stop.join(30)
        assert driven == ["estop: emergency stop by alice"]
        rig.journal.flush()
        with JournalReader(rig.journal.path) as reader:
            faults = [e.payload for e in reader.entries() if e.kind == "fault"]
        told = [(f["cause"], f["first"]) for f in faults]
        assert told == [("estop", True), ("journal", False)], faults
    finally:
        close_rig(rig)


def test_a_journal_trip_that_fails_leaves_the_relays_to_the_boards_watchdog(
    tmp_path, monkeypatch, caplog
):
    """The monitor's commit fails and so does its trip (a defect, say): the heartbeat is
    stopped at once, as for any trip that fails, so the board's watchdog opens every
    relay; and nothing says the bench was tripped."""
    journal = Journal(tmp_path / "journal.sqlite", bench="b")
    stopped: list[str] = []

    def failing(detail: str) -> None:
        raise RuntimeError("the safe state itself failed")

    def full() -> None:
        raise JournalError("write failed: database or disk is full")

    monitor = Monitor(
        1.0,
        journal=journal,
        instruments=SimpleNamespace(ports={}, supplies={}),
        commanded=SimpleNamespace(live_nets={"VLOGIC"}),
        gate=SimpleNamespace(cause=None),
        limits=lambda: SimpleNamespace(nets={}),
        clock=time.monotonic,
        trip=lambda *a, **k: pytest.fail("tripped by the monitor's own name"),
        journal_failed=failing,
        on_trip_failed=stopped.append,
    )
    monkeypatch.setattr(journal, "flush", full)
    try:
        monitor.once()  # a pass over the live net (none to poll), then its commit
    finally:
        monitor.stop()
        journal.close()
    assert stopped == ["monitor could not trip: write failed: database or disk is full"]
    assert not [r for r in caplog.records if "still cannot take" in r.getMessage()]
