"""Waiting on many posted questions at once, over random mixes of how replies come.

``SideBySide.as_answered`` is the monitor's pass: whatever each reply does (arrives
whole, stops half way and ends later, is read first by another exchange, never
comes before it is due, fails, or needs several exchanges in a thread), every
question comes back exactly once, its answer is read exactly once, and no reply
cut short is ever read in the caller's thread before it has ended: there it would
hold up every other reply. Each reply here is one byte on a pipe, as a socket's
would show, and its events come at random times (a few milliseconds apart) from a
thread of their own. What the runs exercised is counted and asserted at the end.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interlock.controller.side_by_side import SideBySide
from interlock.errors import InstrumentTimeout, ProtocolError
from interlock.posted import Posted
from tests.controller.test_posted import arrived

KINDS = ("whole", "cut", "kept", "silent", "fails", "thread")
SETTINGS = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# Far beyond any wait here (milliseconds): reached only if the property is broken.
STUCK_S = 10.0


@dataclass
class Reply:
    """One posted question and what its reply does, at ``at`` ms (and ``more`` ms later)."""

    kind: str
    at: int
    more: int
    name: str
    read: int = 0  # how often its answer was read
    ended: threading.Event = field(default_factory=threading.Event)  # whole, or known so
    pipe: tuple[int, int] | None = None

    def post(self) -> Posted[str]:
        if self.kind == "thread":  # several exchanges: no descriptor, asked in full
            return Posted(None, 0.0, self._answer)
        self.pipe = os.pipe()
        due = time.monotonic() + (self.at / 1000 if self.kind == "silent" else 60.0)
        if self.kind == "kept":
            ready = self.ended.is_set  # read by another exchange: nothing shows on the pipe
        elif self.kind == "cut":
            ready = self.ended.is_set  # its first byte shows before it is whole
        else:
            ready = lambda: arrived(self.pipe[0])  # noqa: E731
        return Posted(self.pipe[0], due, self._answer, ready)

    def happen(self) -> None:
        """Its reply's first event; a cut-short one's end comes ``more`` ms later."""
        if self.kind in ("whole", "fails", "cut"):
            os.write(self.pipe[1], b"x")
        if self.kind == "cut":
            time.sleep(self.more / 1000)
        if self.kind != "silent":
            self.ended.set()

    def _answer(self) -> str:
        # As a session's read: it waits for the reply to end (or fails saying why).
        self.read += 1
        if self.kind == "thread":
            time.sleep(self.at / 1000)
            return self.name
        if self.kind == "silent":
            raise InstrumentTimeout(self.name, "no reply within its timeout")
        assert self.ended.wait(STUCK_S), f"{self.name}: its reply never ended"
        if self.kind == "fails":
            raise ProtocolError(self.name, "not a number")
        return self.name

    def close(self) -> None:
        if self.pipe is not None:
            for end in self.pipe:
                os.close(end)


@dataclass
class Tally:
    examples: int = 0
    kinds: Counter = field(default_factory=Counter)
    cut_while_another_waited: int = 0  # a cut-short reply still cut while another came back


TALLY = Tally()

replies = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(0, 15), st.integers(1, 15)),
    min_size=2,
    max_size=6,
)


@SETTINGS
@given(replies)
def check_every_question_comes_back_once_and_no_cut_reply_holds_up_another(mix):
    together = SideBySide("property", 4)
    made = [Reply(kind, at, more, f"q{i}") for i, (kind, at, more) in enumerate(mix)]
    try:
        asked = [reply.post() for reply in made]
        events = threading.Thread(target=_events, args=(made,), daemon=True)
        events.start()
        back: list[Posted[str]] = []
        for answered in together.as_answered(asked):
            reply = made[asked.index(answered)]
            if reply.kind == "cut":
                # Read in the caller's thread before its end, it would hold up the rest.
                assert reply.ended.is_set(), f"{reply.name} handed back cut short"
            if any(r.kind == "cut" and not r.ended.is_set() for r in made):
                TALLY.cut_while_another_waited += 1
            back.append(answered)
            try:
                assert answered.result() == reply.name
                assert reply.kind in ("whole", "cut", "kept", "thread")
            except InstrumentTimeout:
                assert reply.kind == "silent"
            except ProtocolError:
                assert reply.kind == "fails"
        events.join(STUCK_S)
        assert sorted(map(id, back)) == sorted(map(id, asked))  # each once, no other
        assert [r.read for r in made] == [1] * len(made)  # each answer read once
        TALLY.examples += 1
        TALLY.kinds.update(r.kind for r in made)
    finally:
        together.close()
        for reply in made:
            reply.close()


def _events(made: list[Reply]) -> None:
    start = time.monotonic()
    for reply in sorted(made, key=lambda r: r.at):
        if reply.kind in ("silent", "thread"):
            continue  # their time is their due, or their exchanges'
        time.sleep(max(0.0, start + reply.at / 1000 - time.monotonic()))
        if reply.kind == "cut":
            threading.Thread(target=reply.happen, daemon=True).start()
        else:
            reply.happen()


def test_every_question_comes_back_once_and_no_cut_reply_holds_up_another():
    check_every_question_comes_back_once_and_no_cut_reply_holds_up_another()
    print(f"as_answered: {TALLY}")
    assert TALLY.examples >= 80
    assert all(TALLY.kinds[kind] >= 10 for kind in KINDS), TALLY.kinds
    # The case the property is for came up, and not just once.
    assert TALLY.cut_while_another_waited >= 5, TALLY
