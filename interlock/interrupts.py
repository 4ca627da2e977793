"""SIGTERM and SIGHUP taken as Ctrl-C, while a script holds the bench.

Either kills a Python process by default: SIGTERM is how a job is ended (a CI
system cancelling it, ``kill``, systemd), SIGHUP comes when the remote session
it runs in ends. A script killed while it holds the bench's lease with nets
live leaves the bench tripped on the lost lease: a latched fault that waits
for an operator, and no report. Within :func:`signals_interrupt`, the first of
them raises :class:`Interrupted` (a KeyboardInterrupt) in the main thread
instead, so that whatever handles Ctrl-C powers the bench down through the
interlock and reports; any after it is let go, so that the power-down is not
cut short. A SIGHUP also points standard input and output that were a
terminal at /dev/null: that terminal is gone, and writing to it fails (EIO).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

HANDLED = (signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """A stop asked for by a signal, taken as Ctrl-C is; ``by`` names it (``"SIGTERM"``)."""

    def __init__(self, by: str) -> None:
        super().__init__(by)
        self.by = by


class Stops:
    """What :func:`signals_interrupt` saw: ``by`` the first signal's name, ``raised``
    whether it interrupted (it does not once :meth:`over` was called)."""

    def __init__(self) -> None:
        self.by: str | None = None
        self.raised = False
        self._interrupting = True
        # Known now: a terminal that has hung up no longer says it is one.
        self._terminal = [fd for fd in (0, 1, 2) if os.isatty(fd)]

    def over(self) -> None:
        """From now on a signal is noted, not raised: the power-down is under way."""
        self._interrupting = False

    def handle(self, signum: int, frame: object) -> None:
        if self.by is not None:
            return
        self.by = signal.Signals(signum).name
        if signum == signal.SIGHUP:
            _leave_the_terminal(self._terminal)
        if self._interrupting:
            self.raised = True
            raise Interrupted(self.by)


@contextmanager
def signals_interrupt() -> Iterator[Stops]:
    """SIGTERM and SIGHUP raise :class:`Interrupted` within the block (main thread only:
    elsewhere nothing is taken). One ignored by whoever started us (``nohup``) stays
    ignored. The handlers before are back after the block."""
    stops = Stops()
    if threading.current_thread() is not threading.main_thread():
        yield stops
        return
    previous = {}
    for sig in HANDLED:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, stops.handle)
    try:
        yield stops
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _leave_the_terminal(fds: list[int]) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in fds:
            os.dup2(null, fd)
    finally:
        os.close(null)
