"""A question sent whose answer is still to be read, and waiting on several at once.

The monitor asks every supply before it reads any reply (one thread, no hand-over
per supply): each driver posts its question and returns a :class:`Posted`;
:func:`as_answered` then gives them back as their replies arrive, so a finding
on one supply is acted on without waiting for a slower one.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, NamedTuple, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Owed(NamedTuple):
    """A transport's receipt for a posted query: its reply is collected by ``token``
    (a reply never answers another query) and is late after ``due`` (monotonic)."""

    token: int
    due: float


class Posted(Generic[T]):
    """A question on its way: :meth:`result` reads (once) and reads the answer.

    ``fileno`` is the descriptor its reply arrives on (None: its link cannot be
    watched, or nothing went out yet and :meth:`result` asks in full);
    ``due`` is the monotonic time its reply is late by.
    """

    __slots__ = ("_result", "due", "fileno")

    def __init__(self, fileno: int | None, due: float, result: Callable[[], T]) -> None:
        self.fileno = fileno
        self.due = due
        self._result = result

    def result(self) -> T:
        return self._result()

    def then(self, read: Callable[[T], R]) -> Posted[R]:
        """The same question, its answer read on by ``read``."""
        result = self._result
        return Posted(self.fileno, self.due, lambda: read(result()))


def as_answered(posted: Sequence[Posted[T]]) -> Iterator[Posted[T]]:
    """Each of ``posted`` once its reply has begun to arrive, the first first; one still
    silent when its reply is due (its :meth:`~Posted.result` then times out), and one
    whose link cannot be watched, after them."""
    if len(posted) < 2:
        yield from posted
        return
    waiting = {p.fileno: p for p in posted if p.fileno is not None}
    unwatched = [p for p in posted if p.fileno is None]
    if len(waiting) + len(unwatched) < len(posted):  # two on one descriptor: in order
        yield from posted
        return
    while waiting:
        due = min(p.due for p in waiting.values())
        ready, _, _ = select.select(list(waiting), [], [], max(0.0, due - time.monotonic()))
        if not ready:  # the soonest due is late: its read says so
            late = min(waiting.values(), key=lambda p: p.due)
            yield waiting.pop(late.fileno)  # type: ignore[arg-type]
            continue
        for fileno in ready:
            yield waiting.pop(fileno)
    yield from unwatched
