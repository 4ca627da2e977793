"""A question sent whose answer is still to be read.

The monitor asks every supply before it reads any reply (no thread hand-over per
supply): each driver posts its question and returns a :class:`Posted`, which
:meth:`~interlock.controller.side_by_side.SideBySide.as_answered` hands back as
its reply arrives, so a finding on one supply is acted on without waiting for a
slower one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, NamedTuple, TypeVar

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
    monotonic time its reply is late by. ``answered`` says whether the reply is in
    hand already: another exchange on the session read it first, before its own line.
    """

    __slots__ = ("_result", "answered", "due", "fileno")

    def __init__(
        self,
        fileno: int | None,
        due: float,
        result: Callable[[], T],
        answered: Callable[[], bool] = _not_yet,
    ) -> None:
        self.fileno = fileno
        self.due = due
        self._result = result
        self.answered = answered

    def result(self) -> T:
        return self._result()

    def then(self, read: Callable[[T], R]) -> Posted[R]:
        """The same question, its answer read on by ``read``."""
        result = self._result
        return Posted(self.fileno, self.due, lambda: read(result()), self.answered)
