"""A question sent whose answer is still to be read, and a transport's record of it.

The monitor asks every supply before it reads any reply (no thread hand-over per
supply): each driver posts its question and returns a :class:`Posted`, which
:meth:`~interlock.controller.side_by_side.SideBySide.as_answered` hands back as
its reply arrives, so a finding on one supply is acted on without waiting for a
slower one. Both transports keep the reply owed, and the reply once read, by its
token in an :class:`OwedReplies`: a reply never answers another query.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, NamedTuple, TypeVar

from interlock.errors import InstrumentError

T = TypeVar("T")
R = TypeVar("R")


class Owed(NamedTuple):
    """A transport's receipt for a posted query: its reply is collected by ``token``
    (a reply never answers another query), is late after ``due`` (monotonic) and
    arrives on ``fileno`` (None where the session's descriptor is not at hand)."""

    token: int
    due: float
    fileno: int | None


def _not_yet() -> bool:
    return False


class Posted(Generic[T]):
    """A question on its way: :meth:`result` reads the answer (once).

    ``fileno`` is the descriptor its reply arrives on; None when it cannot be watched:
    it takes several exchanges (asked in full by :meth:`result`), or its session's
    descriptor is not at hand (VISA serial, VXI-11, a vendor's VISA). ``due`` is the
    monotonic time its reply is late by. ``ready`` says whether the reply is in hand
    whole, so that :meth:`result` waits for nothing: another exchange on the session
    read it first (before its own line), or it has arrived to its end.
    """

    __slots__ = ("_result", "due", "fileno", "ready")

    def __init__(
        self,
        fileno: int | None,
        due: float,
        result: Callable[[], T],
        ready: Callable[[], bool] = _not_yet,
    ) -> None:
        self.fileno = fileno
        self.due = due
        self._result = result
        self.ready = ready

    def result(self) -> T:
        return self._result()

    def then(self, read: Callable[[T], R]) -> Posted[R]:
        """The same question, its answer read on by ``read``."""
        result = self._result
        return Posted(self.fileno, self.due, lambda: read(result()), self.ready)

    def read_in(self, submit: Callable[[Callable[[], T]], Future[T]]) -> Future[T]:
        """Have a thread (``submit``) read the answer; :meth:`result` then gives that
        thread's answer (waiting for it), and never reads it a second time."""
        future = submit(self._result)
        self._result = future.result
        return future


class OwedReplies:
    """A transport's posted query whose reply is still to be read, and that reply once
    read (by the next exchange on the session, or by its own collect): the bookkeeping
    the VISA and serial transports share. Their own lock guards every call."""

    def __init__(self) -> None:
        self._posts = 0
        self._owed: tuple[int, int | None, float] | None = None  # token, width, due
        self._kept: tuple[int, bytes] | None = None

    def owe(self, width: int | None, timeout: float, fileno: int | None) -> Owed:
        """A query just sent: its reply (of ``width`` bytes, where framed so) owed."""
        self._posts += 1
        due = time.monotonic() + timeout
        self._owed = (self._posts, width, due)
        return Owed(self._posts, due, fileno)

    def is_owed(self, token: int) -> bool:
        return self._owed is not None and self._owed[0] == token

    def take_owed(self) -> tuple[int, int | None, float] | None:
        """The reply still owed (token, width, due), now the caller's to read and keep."""
        owed, self._owed = self._owed, None
        return owed

    def keep(self, token: int, raw: bytes) -> None:
        self._kept = (token, raw)

    def has_reply(self, token: int) -> bool:
        kept = self._kept
        return kept is not None and kept[0] == token

    def owed_width(self, token: int) -> int | None:
        """The width ``token``'s reply is framed by, while it is owed (None otherwise)."""
        owed = self._owed
        return owed[1] if owed is not None and owed[0] == token else None

    def take(self, token: int) -> bytes | None:
        """The reply kept for ``token`` (handed over once); None if none is: a later
        post's read took its place, or reading it failed."""
        kept = self._kept
        if kept is None or kept[0] != token:
            return None
        self._kept = None
        return kept[1]

    def forget(self) -> None:
        """A session opened again: nothing of the old one is owed on it."""
        self._owed = self._kept = None


def said_as_earlier(error: InstrumentError) -> InstrumentError:
    """An owed reply's failure, said as the earlier query's: the line of whoever read it
    never went out."""
    detail = str(error).removeprefix(f"{error.instrument}: ")
    return type(error)(error.instrument, f"{detail}, to a query asked before")


NOT_KEPT = "a posted query's reply was not kept for it"
