"""A question posted now and its answer read later: waiting on several at once
(SideBySide.as_answered), and the raw serial link's owed replies (the VISA
transport's are in test_visa_transport.py)."""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import select
import termios
import threading
import time

import pytest

from interlock.controller.side_by_side import SideBySide
from interlock.dialects import dialects
from interlock.drivers.device import DialectDevice
from interlock.drivers.serial_link import SerialLink
from interlock.errors import FaultLatched, ProtocolError
from interlock.journal import Journal
from interlock.posted import Posted
from tests.controller.test_visa_transport import scripted
from tests.dialects.test_korad_twin import korad_twin
from tests.waiting import until


@pytest.fixture
def pipes():
    made: list[tuple[int, int]] = []

    def pipe() -> tuple[int, int]:
        made.append(os.pipe())
        return made[-1]

    yield pipe
    for ends in made:
        for end in ends:
            os.close(end)


@pytest.fixture
def side_by_side():
    together = SideBySide("test", 4)
    yield together
    together.close()


def arrived(read_end: int) -> bool:
    """Whether anything waits in the pipe: each test's reply is one byte, whole."""
    waiting = array.array("i", [0])
    fcntl.ioctl(read_end, termios.FIONREAD, waiting)
    return waiting[0] > 0


def question(read_end: int | None, name: str, due_in: float = 60.0, ready=None) -> Posted[str]:
    if ready is None and read_end is not None:
        ready = lambda: arrived(read_end)  # noqa: E731
    return Posted(read_end, time.monotonic() + due_in, lambda: name, ready or (lambda: False))


def test_answers_come_back_as_they_arrive_not_as_they_were_asked(pipes, side_by_side):
    (r1, w1), (r2, w2), (r3, w3) = pipes(), pipes(), pipes()
    asked = [question(r1, "first"), question(r2, "second"), question(r3, "third")]
    os.write(w3, b"x")
    answers = side_by_side.as_answered(asked)
    assert next(answers).result() == "third"
    os.write(w1, b"x")
    assert next(answers).result() == "first"
    os.write(w2, b"x")
    assert next(answers).result() == "second"
    assert list(answers) == []


def test_a_silent_one_comes_back_when_it_is_due(pipes, side_by_side):
    (r1, _), (r2, w2) = pipes(), pipes()
    asked = [question(r1, "silent", due_in=0.2), question(r2, "answered")]
    os.write(w2, b"x")
    order = [p.result() for p in side_by_side.as_answered(asked)]
    assert order == ["answered", "silent"]
    assert time.monotonic() >= asked[0].due  # waited for until it was due, not longer


def test_a_reply_another_exchange_read_first_comes_back_without_waiting_till_due(
    pipes, side_by_side
):
    # Its descriptor never shows it (the bytes were read from it already): due in a
    # minute, it comes back at once because it says it is answered.
    (r1, _), (r2, _) = pipes(), pipes()
    kept = threading.Event()
    asked = [question(r1, "read by another", ready=kept.is_set), question(r2, "silent")]
    answers = side_by_side.as_answered(asked)
    threading.Timer(0.05, kept.set).start()
    started = time.monotonic()
    assert next(answers).result() == "read by another"
    assert time.monotonic() - started < 30  # well before its due time of 60 s


def test_a_reply_begun_but_not_whole_is_read_in_a_thread_and_holds_up_no_other(pipes, side_by_side):
    # Its first bytes are there, the rest is not: read here, it would hold every other
    # reply for as long as its own timeout. The other reply arrives while it is being
    # read (which makes the order certain).
    (r1, w1), (r2, w2) = pipes(), pipes()
    release = threading.Event()

    reads = []

    def rest_of_the_reply() -> str:  # as a session's read: it waits for the rest
        reads.append(1)
        os.write(w2, b"x")
        assert release.wait(10)
        return "cut short"

    asked = [
        Posted(r1, time.monotonic() + 60, rest_of_the_reply, release.is_set),
        question(r2, "whole"),
    ]
    os.write(w1, b"x")  # begun
    answers = side_by_side.as_answered(asked)
    first = next(answers)
    assert first is asked[1] and first.result() == "whole"
    assert not release.is_set()
    release.set()
    assert next(answers) is asked[0]
    assert asked[0].result() == "cut short"  # the thread's answer, not read a second time
    assert len(reads) == 1
    assert list(answers) == []


def test_a_reply_cut_short_on_a_socket_holds_up_no_other(tmp_path, side_by_side):
    # Real sessions: the slow instrument's reply stops half way, and only then does the
    # fast one answer. Both replies show on their sockets; the fast one's comes back
    # first, while the slow one's is still cut short.
    release, begun = threading.Event(), threading.Event()

    def slow_reply(conn) -> None:
        conn.sendall(b"1.2")
        begun.set()
        if release.wait(10):
            conn.sendall(b"34\n")

    def fast_reply(conn) -> None:
        if begun.wait(10):
            time.sleep(0.05)  # most often after the pass's first look: it is seen arrive
            conn.sendall(b"5.000\n")

    dialect = dialects()["keysight-e36300"]
    with (
        Journal(tmp_path / "journal.sqlite", bench="posted-test") as journal,
        scripted([slow_reply], timeout=30) as (_, slow_link),
        scripted([fast_reply], timeout=30) as (_, fast_link),
    ):
        # Both sessions are named "dev" by scripted(), as their journal entries are.
        devices = [DialectDevice("dev", dialect, link, journal) for link in (slow_link, fast_link)]
        asked = [device.post("MEAS:VOLT? (@1)") for device in devices]
        answers = side_by_side.as_answered(asked)
        first = next(answers)
        assert first is asked[1] and first.result() == "5.000"
        assert not release.is_set()
        release.set()
        assert next(answers) is asked[0] and asked[0].result() == "1.234"


def test_questions_of_several_exchanges_are_asked_side_by_side_in_threads(pipes, side_by_side):
    # Each of the two answers only once the other is being asked too: one after the
    # other, the first would wait for the barrier until it breaks.
    barrier = threading.Barrier(2, timeout=10)

    def several_exchanges(name: str):
        return lambda: (barrier.wait(), name)[1]

    (r, w) = pipes()
    asked = [
        Posted(None, 0.0, several_exchanges("one")),
        Posted(None, 0.0, several_exchanges("two")),
        question(r, "watched"),
    ]
    os.write(w, b"x")
    answers = sorted(p.result() for p in side_by_side.as_answered(asked))
    assert answers == ["one", "two", "watched"] and not barrier.broken


def test_an_error_in_a_thread_is_raised_by_its_result(side_by_side):
    def fails():
        raise ProtocolError("psu", "garbled")

    asked = [Posted(None, 0.0, fails), Posted(None, 0.0, lambda: "fine")]
    outcomes = []
    for p in side_by_side.as_answered(asked):
        try:
            outcomes.append(p.result())
        except ProtocolError as error:
            outcomes.append(str(error))
    assert sorted(outcomes) == ["fine", "psu: garbled"]


def test_one_or_none_is_handed_back_without_waiting(side_by_side):
    only = question(None, "only")
    assert [p.result() for p in side_by_side.as_answered([only])] == ["only"]
    assert list(side_by_side.as_answered([])) == []


# -- the raw serial link (a Korad twin on a pseudo-terminal) ---------------------------


@pytest.fixture
def korad(tmp_path):
    with korad_twin() as (port, _, _):
        link = SerialLink("psu", port, dialects()["korad-ka"].link, timeout=1.0)
        link.open()
        with Journal(tmp_path / "journal.sqlite", bench="serial-test") as journal:
            yield link, journal
        link.close()


def test_a_serial_reply_still_owed_is_read_before_the_next_line_and_kept(korad):
    link, journal = korad
    link.send(journal.command_intent("psu", "VSET1:04.20"))
    owed = link.post(journal.query_intent("psu", "VSET1?"), 5)
    assert link.fileno() is not None
    assert link.exchange(journal.query_intent("psu", "ISET1?"), 5) != ""
    assert link.collect(owed.token) == "04.20"
    with pytest.raises(ProtocolError, match="not kept for it"):
        link.collect(owed.token)  # collected once
    assert link.is_open


def test_a_serial_reply_framed_by_its_width_is_ready_once_all_its_bytes_are_in(korad):
    link, journal = korad
    link.send(journal.command_intent("psu", "VSET1:04.20"))
    owed = link.post(journal.query_intent("psu", "VSET1?"), 5)
    assert until(lambda: link.reply_ready(owed.token))
    assert link.collect(owed.token) == "04.20"
    assert not link.reply_ready(owed.token)  # collected once


def test_a_serial_reply_ended_by_silence_is_not_known_whole_before_it_is_read(korad):
    # Its end is the line falling silent: only a read can tell, so the pass reads it in
    # a thread, where it holds up no other.
    link, journal = korad
    owed = link.post(journal.query_intent("psu", "*IDN?"))
    fileno = link.fileno()
    assert select.select([fileno], [], [], 10)[0]  # it has begun
    time.sleep(0.1)  # and, most likely, ended
    assert not link.reply_ready(owed.token)
    assert link.collect(owed.token).startswith("KORAD")


@contextlib.contextmanager
def korad_supply(tmp_path):
    """A Korad supply's driver over a pty to its twin: the driver and the twin's truth."""
    from interlock.drivers.supply import DialectSupply

    dialect = dialects()["korad-ka"]
    with (
        korad_twin() as (port, _, truth),
        Journal(tmp_path / "journal.sqlite", bench="serial-test") as journal,
    ):
        link = SerialLink("psu", port, dialect.link, timeout=1.0)
        link.open()
        try:
            yield DialectSupply("psu", dialect, link, journal), truth
        finally:
            link.close()


def test_a_poll_of_several_exchanges_asks_no_line_after_between_raises(tmp_path):
    # The monitor's between raises once the bench is tripped: the poll's next line would
    # only go out before the safe state's.
    assert dialects()["korad-ka"].poll_exchanges(1) > 1
    with korad_supply(tmp_path) as (supply, truth):
        before = len(truth.commands("psu"))
        calls = []

        def between():
            calls.append(len(truth.commands("psu")))
            raise FaultLatched("bench test is in a latched fault: estop")

        posted = supply.post_poll([1], between)
        with pytest.raises(FaultLatched):
            posted.result()
        lines = truth.commands("psu")[before:]
        assert len(calls) == 1 and len(lines) == 1  # the first line, and no other


def test_a_serial_reply_framed_by_its_width_is_not_ready_with_only_some_of_its_bytes(tmp_path):
    dialect = dialects()["korad-ka"]
    master, slave = os.openpty()
    link = SerialLink("psu", os.ttyname(slave), dialect.link, timeout=5.0)
    link.open()
    try:
        with Journal(tmp_path / "journal.sqlite", bench="serial-test") as journal:
            owed = link.post(journal.query_intent("psu", "VSET1?"), 5)
            assert os.read(master, 64) == b"VSET1?"
            os.write(master, b"04.")
            assert select.select([link.fileno()], [], [], 10)[0]
            time.sleep(0.05)  # all three in, most likely: not ready either way
            assert not link.reply_ready(owed.token)
            os.write(master, b"20")
            assert until(lambda: link.reply_ready(owed.token)), "never ready when whole"
            assert link.collect(owed.token) == "04.20"
    finally:
        link.close()
        os.close(master)
        os.close(slave)


def test_one_due_but_not_ready_is_read_in_a_thread_and_holds_up_no_other(pipes, side_by_side):
    # Due, and its session busy with another exchange (whose own reply is the late one):
    # its collect would wait for that exchange, and every other reply with it.
    (r1, _), (r2, w2) = pipes(), pipes()
    release = threading.Event()
    reads = []

    def waits_for_the_session() -> str:
        reads.append(1)
        os.write(w2, b"x")  # the other reply arrives meanwhile (which makes the order certain)
        assert release.wait(10)
        return "late"

    asked = [Posted(r1, time.monotonic() + 0.05, waits_for_the_session), question(r2, "whole")]
    answers = side_by_side.as_answered(asked)
    first = next(answers)
    assert first is asked[1] and first.result() == "whole"
    release.set()
    assert next(answers) is asked[0] and asked[0].result() == "late"
    assert len(reads) == 1


def test_a_pass_begun_before_close_starts_no_threads_after_it(pipes):
    # The monitor stopped (close()) while its pass still waits on a read in a thread: a
    # reply the pass hands on afterwards is read in the pass's own thread, and nothing
    # is started that no later close() would end.
    together = SideBySide("test", 4)
    (r1, w1), (r2, w2) = pipes(), pipes()
    release = threading.Event()

    def rest_of_the_reply() -> str:
        together.close()  # meanwhile, the monitor stops
        os.write(w2, b"x")  # and the other reply begins, not whole
        assert release.wait(10)
        return "cut short"

    begun_not_whole = Posted(r2, time.monotonic() + 60, lambda: "read here", lambda: False)
    asked = [Posted(r1, time.monotonic() + 60, rest_of_the_reply, release.is_set), begun_not_whole]
    os.write(w1, b"x")
    answers = together.as_answered(asked)
    assert next(answers) is begun_not_whole  # handed back to be read here, not in a thread
    release.set()
    assert next(answers) is asked[0] and asked[0].result() == "cut short"
    assert list(answers) == []
    assert together._pool is None and together._wake is None  # nothing left running


def test_a_poll_of_several_exchanges_asks_between_only_once_the_gap_has_passed(tmp_path):
    # The Korad takes 100 ms between lines: asked before the gap, a stop that comes
    # during it would not stop the line that goes out after it.
    gap = dialects()["korad-ka"].link.min_gap
    assert gap > 0
    with korad_supply(tmp_path) as (supply, truth):
        before = len(truth.commands("psu"))
        asked_at = []

        def between():
            asked_at.append(time.monotonic())
            raise FaultLatched("bench test is in a latched fault: estop")

        with pytest.raises(FaultLatched):
            supply.post_poll([1], between).result()
        first = truth.commands("psu")[before]
        # The gap runs from the end of the first reply, which came after its line.
        assert asked_at[0] - first["monotonic"] >= gap


def test_a_pass_counts_the_closes_when_it_is_asked_for_not_when_first_read(pipes):
    # The monitor stopped between the pass asking for its answers and reading the
    # first: nothing is started that no later close() would end.
    together = SideBySide("test", 4)
    (r1, w1), (r2, w2) = pipes(), pipes()
    begun_not_whole = Posted(r1, time.monotonic() + 60, lambda: "read here", lambda: False)
    whole = question(r2, "whole")
    os.write(w1, b"x")
    os.write(w2, b"x")
    answers = together.as_answered([begun_not_whole, whole])
    together.close()
    assert sorted(p.result() for p in answers) == ["read here", "whole"]
    assert together._pool is None and together._wake is None


def test_a_serial_reply_is_not_ready_while_another_exchange_holds_the_link(korad):
    link, journal = korad
    owed = link.post(journal.query_intent("psu", "VSET1?"), 5)
    assert until(lambda: link.reply_ready(owed.token))
    with link._lock:  # as another exchange holds it
        assert not link.reply_ready(owed.token)
    assert link.reply_ready(owed.token)
    assert link.collect(owed.token) != ""
