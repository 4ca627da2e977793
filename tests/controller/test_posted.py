"""A question posted now and its answer read later: waiting on several at once
(SideBySide.as_answered), and the raw serial link's owed replies (the VISA
transport's are in test_visa_transport.py)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from interlock.controller.side_by_side import SideBySide
from interlock.dialects import dialects
from interlock.drivers.serial_link import SerialLink
from interlock.errors import ProtocolError
from interlock.journal import Journal
from interlock.posted import Posted
from tests.dialects.test_korad_twin import korad_twin


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


def question(read_end: int | None, name: str, due_in: float = 60.0, answered=None) -> Posted[str]:
    if answered is None:
        return Posted(read_end, time.monotonic() + due_in, lambda: name)
    return Posted(read_end, time.monotonic() + due_in, lambda: name, answered)


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
    asked = [question(r1, "read by another", answered=kept.is_set), question(r2, "silent")]
    answers = side_by_side.as_answered(asked)
    threading.Timer(0.05, kept.set).start()
    started = time.monotonic()
    assert next(answers).result() == "read by another"
    assert time.monotonic() - started < 30  # well before its due time of 60 s


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
