"""A few threads that run one call per instrument side by side, and posted questions
waited on at once.

Each instrument has a session of its own, and an exchange spends its time
waiting for the instrument, not for the interpreter: the safe state's steps ask
their supplies side by side instead of one after the other. One instrument
costs no thread hand-over (the caller makes the call); more go to threads
started when first needed and kept.

The monitor's pass posts its question to every supply first
(:class:`~interlock.posted.Posted`); :meth:`SideBySide.as_answered` hands each
back as its reply arrives. A reply on a TCP socket or a raw serial port is
watched from the caller's thread (no hand-over), and read there once it is in
whole; one that has begun but is not whole yet is read to its end in one of
the threads, as is a question of several exchanges, which cannot be posted
whole, or one whose session's descriptor is not at hand (VISA serial).
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import select
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

from interlock.posted import Posted

T = TypeVar("T")
R = TypeVar("R")

# The longest a wait for replies goes without looking again at those another
# exchange on the session read first (they never show on the descriptor).
LOOK_AGAIN = 0.005  # s
# Waiting only on questions asked in threads: each exchange of theirs has a timeout.
THREADS_ONLY = 0.05  # s


class SideBySide:
    """Runs ``work(item)`` for each item at once; its threads are made when first needed."""

    def __init__(self, name: str, workers: int) -> None:
        self._name = name
        self._workers = max(1, workers)
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._wake: tuple[int, int] | None = None  # a pipe a thread's answer rings
        self._closes = 0  # how often close() was called: a pass begun before starts nothing

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            return self._started()

    def _started(self) -> ThreadPoolExecutor:
        """The threads, started if need be (under the lock)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix=self._name)
        return self._pool

    def _threads_since(self, closes: int) -> tuple[ThreadPoolExecutor, int] | None:
        """The threads and the wake pipe (its read end), started if need be; None if
        close() was called since it was called ``closes`` times (when a pass began):
        nothing would close what the pass started."""
        with self._lock:
            if closes != self._closes:
                return None
            if self._wake is None:
                self._wake = os.pipe()
                for end in self._wake:
                    os.set_blocking(end, False)
            return self._started(), self._wake[0]

    def all(self, work: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """Every result, in the order of ``items``; an error is raised once all have ended."""
        if len(items) < 2:
            return [work(item) for item in items]
        pool = self._executor()
        futures = [pool.submit(work, item) for item in items[1:]]
        try:
            first = work(items[0])
        finally:
            # Whatever the first did, the others end before anyone acts on the results.
            wait(futures)
        return [first, *(future.result() for future in futures)]

    def as_answered(self, posted: Sequence[Posted[T]]) -> Iterator[Posted[T]]:
        """Each of ``posted`` once its answer is in, the first first; its ``result()``
        then reads it without waiting (but for one handed back after a close(), which
        reads it in the caller's thread).

        One whose reply arrives on a descriptor is watched from this thread, and comes
        back when its reply is in whole; one whose reply begins to arrive but is not
        whole yet (a reply cut short, or one at the speed of a serial line) is read to
        its end in a thread, so that it holds up no other. One read first by another
        exchange on its session comes back within a wait or two of LOOK_AGAIN; one still
        silent when its reply is due is read in a thread too (where it times out at
        once, or waits for another exchange holding its session). One that cannot be
        watched (several exchanges, or no descriptor at hand) is asked in a thread, and
        comes back when that is done. Those still under way when the caller stops
        iterating are left as they are: a reply still owed is read by its session's
        next exchange, one in a thread there (its ``result()`` waits for it).
        """
        # Counted now, not when the caller first asks for an answer: a close() between
        # the two must still keep this pass from starting threads.
        return self._answers(posted, self._closes)

    def _answers(self, posted: Sequence[Posted[T]], closes: int) -> Iterator[Posted[T]]:
        if len(posted) < 2:
            yield from posted
            return
        watched: dict[int, Posted[T]] = {}
        aside: list[Posted[T]] = []
        for p in posted:
            if p.fileno is None or p.fileno in watched:
                aside.append(p)
            else:
                watched[p.fileno] = p
        poller = select.poll()
        for fileno in watched:
            poller.register(fileno, select.POLLIN)
        done: queue.SimpleQueue[Posted[T]] = queue.SimpleQueue()
        wake: int | None = None
        left = 0  # in threads

        def in_thread(p: Posted[T]) -> bool:
            """``p``'s answer read in a thread, ``done`` once in; False if no thread can."""
            nonlocal wake, left
            started = self._threads_since(closes)
            if started is None:  # close() since the pass began (the monitor stopping)
                return False
            pool, pipe = started
            if wake is None:
                wake = pipe
                poller.register(wake, select.POLLIN)
            try:
                future = p.read_in(pool.submit)
            except RuntimeError:  # shut down by a close() just now
                return False
            future.add_done_callback(lambda _: (done.put(p), self._ring()))
            left += 1
            return True

        for p in aside:
            if not in_thread(p):
                yield p  # asked here
        idle = True  # nothing seen on the last wait: look for replies it cannot show
        while watched or left:
            while left:
                try:
                    yield done.get_nowait()
                except queue.Empty:
                    break
                left -= 1
            if watched and idle:
                for fileno, p in list(watched.items()):
                    if p.ready():  # in hand: read by another exchange, nothing shows
                        poller.unregister(fileno)
                        yield watched.pop(fileno)
                if watched:
                    soonest = min(watched.values(), key=lambda p: p.due)
                    if soonest.due <= time.monotonic():  # due and silent: its read says so
                        poller.unregister(soonest.fileno)  # type: ignore[arg-type]
                        late = watched.pop(soonest.fileno)  # type: ignore[arg-type]
                        # In a thread: its read times out there at once, or waits for
                        # another exchange on its session, whose own reply may be late.
                        if late.ready() or not in_thread(late):
                            yield late
                        continue
            if not (watched or left):
                return
            idle = True
            wait = LOOK_AGAIN if watched else THREADS_ONLY
            for fileno, _ in poller.poll(math.ceil(wait * 1000)):
                if fileno in watched:  # a reply, a hang-up or a closed descriptor alike
                    idle = False
                    poller.unregister(fileno)
                    p = watched.pop(fileno)
                    # Not whole yet: its read would wait for the rest, and every other
                    # reply with it.
                    if p.ready() or not in_thread(p):
                        yield p
                elif fileno != wake or not self._quiet(fileno):
                    # The wake pipe, closed by close() meanwhile (its number maybe
                    # another file's now): the threads' answers are looked for anyway.
                    poller.unregister(fileno)

    def _quiet(self, fileno: int) -> bool:
        """Empty the wake pipe ``fileno``; False if it is not the open one any more."""
        with self._lock:  # close() cannot close it under us
            if self._wake is None or self._wake[0] != fileno:
                return False
            with contextlib.suppress(BlockingIOError):
                os.read(fileno, 4096)
            return True

    def _ring(self) -> None:
        with self._lock:
            if self._wake is not None:
                with contextlib.suppress(BlockingIOError):  # full: it rings already
                    os.write(self._wake[1], b".")

    def close(self) -> None:
        """Let the threads go once they are idle; a later call starts them again, but
        not a pass begun before (it reads what it has left in its own thread)."""
        with self._lock:
            self._closes += 1
            pool, self._pool = self._pool, None
            wake, self._wake = self._wake, None
        if pool is not None:
            pool.shutdown(wait=False)
        if wake is not None:
            for end in wake:
                os.close(end)
