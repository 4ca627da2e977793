"""A question posted now and its answer read later: waiting on several at once, and the
raw serial link's owed replies (the VISA transport's are in test_visa_transport.py)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from interlock.dialects import dialects
from interlock.drivers.serial_link import SerialLink
from interlock.errors import ProtocolError
from interlock.journal import Journal
from interlock.posted import Posted, as_answered
from interlock.sim.electrical import ElectricalBench, Route
from interlock.sim.instrument import IdentityString
from interlock.sim.serial_server import SerialTwinServer
from interlock.sim.truth import GroundTruth
from interlock.sim.twins.korad import KoradSupply


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


def question(read_end: int | None, name: str, due_in: float = 5.0) -> Posted[str]:
    return Posted(read_end, time.monotonic() + due_in, lambda: name)


def test_answers_come_back_as_they_arrive_not_as_they_were_asked(pipes):
    (r1, w1), (r2, w2), (r3, w3) = pipes(), pipes(), pipes()
    asked = [question(r1, "first"), question(r2, "second"), question(r3, "third")]
    os.write(w3, b"x")
    answers = as_answered(asked)
    assert next(answers).result() == "third"
    os.write(w1, b"x")
    assert next(answers).result() == "first"
    os.write(w2, b"x")
    assert next(answers).result() == "second"
    assert list(answers) == []


def test_a_silent_one_comes_back_when_it_is_due_and_unwatched_ones_last(pipes):
    (r1, _), (r2, w2) = pipes(), pipes()
    asked = [
        question(None, "unwatched"),
        question(r1, "silent", due_in=0.2),
        question(r2, "answered"),
    ]
    os.write(w2, b"x")
    started = time.monotonic()
    order = [p.result() for p in as_answered(asked)]
    assert order == ["answered", "silent", "unwatched"]
    assert time.monotonic() - started >= 0.2  # the silent one was waited for until due


def test_one_or_none_is_handed_back_without_waiting():
    only = question(None, "only")
    assert [p.result() for p in as_answered([only])] == ["only"]
    assert list(as_answered([])) == []


# -- the raw serial link (a Korad twin on a pseudo-terminal) ---------------------------


@pytest.fixture
def korad(tmp_path):
    dialect = dialects()["korad-ka"]
    truth = GroundTruth(["OUT"])
    electrical = ElectricalBench(
        [Route("OUT", ("psu", 1), None, None)], {}, truth, threading.RLock()
    )
    twin = KoradSupply(
        "psu", IdentityString("KORAD", "KA3005P", "", "5.5"), electrical, truth, model="KA3005P"
    )
    server = SerialTwinServer(twin, truth, dialect.link, latency=0)
    link = SerialLink("psu", server.start(), dialect.link, timeout=1.0)
    link.open()
    with Journal(tmp_path / "journal.sqlite", bench="serial-test") as journal:
        yield link, journal
    link.close()
    server.close()


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
