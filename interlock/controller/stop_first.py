"""The stop first: while this process drives a bench safe, its other work waits.

Every thread of the process shares one interpreter lock. Under a flood of
requests the threads serving them hold it nearly all the time, and a stop
waits for it again after each exchange it makes (a millisecond or more for
each thread busy): the stop's time grew with the flood. So a stop says that
it is under way (:func:`stopping`, in the thread making it), and the other
work of the process, at the points where it starts something new (a
request, a monitor pass), waits for it to end (:func:`yield_to_stop`). At
those points a thread holds nothing the stop needs. Work already under way
finishes: a stop waits for an exchange in flight anyway (the gate).

Process-wide, as the interpreter lock is. The relay board's heartbeat never
waits here: it must go on through any stop.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

#: The longest any work waits for a stop: a stop stuck on an instrument that does not
#: answer must not stop the service's answering (the status shows the stop under way).
MAX_WAIT_S = 0.5

_lock = threading.Lock()
_under_way = 0
_clear = threading.Event()
_clear.set()
_mine = threading.local()


@contextlib.contextmanager
def stopping() -> Iterator[None]:
    """Within the block, this thread is stopping a bench: other work yields to it."""
    global _under_way
    depth = getattr(_mine, "depth", 0)
    _mine.depth = depth + 1
    with _lock:
        _under_way += 1
        _clear.clear()
    try:
        yield
    finally:
        with _lock:
            _under_way -= 1
            if _under_way == 0:
                _clear.set()
        _mine.depth = depth


def under_way() -> bool:
    """Whether a stop is under way in this process."""
    return not _clear.is_set()


def yield_to_stop(timeout: float = MAX_WAIT_S) -> bool:
    """Wait (at most ``timeout``) for the stops under way to end; True if none is left.

    Returns at once when no stop is under way, and in the thread making one.
    """
    if _clear.is_set() or getattr(_mine, "depth", 0):
        return True
    return _clear.wait(timeout)
