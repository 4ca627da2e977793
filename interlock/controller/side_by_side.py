"""A few threads that run one call per instrument side by side.

Each instrument has a session of its own, and an exchange spends its time
waiting for the instrument, not for the interpreter: the monitor's pass and
the safe state's steps ask their supplies side by side instead of one after
the other. One instrument costs no thread hand-over (the caller makes the
call); more go to threads started when first needed and kept.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


class SideBySide:
    """Runs ``work(item)`` for each item at once; its threads are made when first needed."""

    def __init__(self, name: str, workers: int) -> None:
        self._name = name
        self._workers = max(1, workers)
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix=self._name)
            return self._pool

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

    def as_done(self, work: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """Each result as soon as it is in, whichever comes first: a finding on one
        instrument is acted on without waiting for the others. Calls still under way
        when the caller stops iterating finish in their threads."""
        if len(items) < 2:
            for item in items:
                yield work(item)
            return
        pool = self._executor()
        for future in as_completed([pool.submit(work, item) for item in items]):
            yield future.result()

    def close(self) -> None:
        """Let the threads go once they are idle; a later call starts them again."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)
