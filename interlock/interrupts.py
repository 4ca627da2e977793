"""Ctrl-C, SIGTERM and SIGHUP taken between two requests, while a script holds the bench.

SIGTERM is how a job is ended (a CI system cancelling it, ``kill``, systemd),
SIGHUP comes when the remote session it runs in ends; either kills a Python
process by default. A script killed while it holds the bench's lease with nets
live leaves the bench tripped on the lost lease: a latched fault that waits for
an operator, and no report. Ctrl-C raises KeyboardInterrupt wherever the
script is: in the middle of a request, whose reply is then lost while the
service carries it out, so that the power-down after it works from a status
that is already old.

Within :func:`signals_interrupt` the three are noted by a :class:`Stops`, and
raised as :class:`Interrupted` (a KeyboardInterrupt, which whatever handles
Ctrl-C handles: the bench powered down through the interlock, the report
written) only where nothing is under way: inside :meth:`Stops.interruptible`
(a wait, a prompt, a test's body), and never inside a request to the service
(:func:`calling`: raised as the request returns). After :meth:`Stops.over` (the
power-down has begun) they are only noted. A second signal is let go, except a
second Ctrl-C, which raises at once wherever it comes: whoever presses it again
will not wait. A SIGHUP also points at /dev/null the descriptors that were the
terminal: it is gone, and writing to it fails (EIO).
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import threading
from collections.abc import Iterator

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}

_active: Stops | None = None  # the Stops whose handlers are installed


class Interrupted(KeyboardInterrupt):
    """A stop asked for by a signal, taken as Ctrl-C is; ``by`` names it (``"SIGTERM"``)."""

    def __init__(self, by: str) -> None:
        super().__init__(by)
        self.by = by


class Stops:
    """What :func:`signals_interrupt` saw, and where it may interrupt: ``by`` names the
    first signal (None: none came), ``raised`` says whether it interrupted."""

    def __init__(self) -> None:
        self.by: str | None = None
        self.raised = False
        self._allowed = False  # inside interruptible()
        self._calls = 0  # requests under way (main thread)
        self._over = False
        self._terminal = _terminal_descriptors()

    def interruptible(self) -> contextlib.AbstractContextManager[None]:
        """Within the block a signal interrupts at once (a signal that came before
        interrupts as the block begins), but never inside a request (:func:`calling`)."""
        return self._interruptible()

    @contextlib.contextmanager
    def _interruptible(self) -> Iterator[None]:
        before, self._allowed = self._allowed, True
        try:
            self._interrupt_if_due()
            yield
        finally:
            self._allowed = before

    def stop_here(self) -> None:
        """A point between two requests: Interrupted if a signal came and has not yet."""
        if self.by is not None and not self.raised and not self._over:
            self.raised = True
            raise Interrupted(self.by)

    def over(self) -> None:
        """From now on a signal is noted, not raised: the power-down is under way."""
        self._over = True

    def handle(self, signum: int, frame: object) -> None:
        if signum == signal.SIGHUP:
            _leave_the_terminal(self._terminal)
        if self.by is not None:
            if signum == signal.SIGINT and self.by == NAMES[signal.SIGINT]:
                raise KeyboardInterrupt  # Ctrl-C again: at once, wherever it is
            return
        self.by = NAMES.get(signum, signal.Signals(signum).name)
        self._interrupt_if_due()

    def _interrupt_if_due(self) -> None:
        if self._allowed and self._calls == 0:
            self.stop_here()


@contextlib.contextmanager
def signals_interrupt() -> Iterator[Stops]:
    """Ctrl-C, SIGTERM and SIGHUP noted by the Stops yielded (main thread only: elsewhere
    nothing is taken). One ignored by whoever started us (``nohup``) stays ignored. The
    handlers before are back after the block."""
    global _active
    stops = Stops()
    if threading.current_thread() is not threading.main_thread():
        yield stops
        return
    previous = {}
    for sig in HANDLED:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, stops.handle)
    outer, _active = _active, stops
    try:
        yield stops
    finally:
        _active = outer
        for sig, handler in previous.items():
            # None: installed from outside Python, which cannot be put back.
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


def active() -> Stops | None:
    """The Stops whose handlers are installed now, if any."""
    return _active


@contextlib.contextmanager
def calling() -> Iterator[None]:
    """A request to the service under way: a signal meanwhile interrupts once it has
    returned, not while its reply is awaited (the service carries it out anyway)."""
    stops = _active
    if stops is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    stops._calls += 1
    try:
        yield
    finally:
        stops._calls -= 1
        stops._interrupt_if_due()


def _terminal_descriptors() -> list[tuple[int, int]]:
    """Open descriptors on a terminal, with the terminal's device, known now: one that has
    hung up no longer says it is a terminal. pytest, say, writes to a copy of fd 1."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = [0, 1, 2]
    found = []
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.isatty(fd):
                found.append((fd, os.fstat(fd).st_rdev))
    return found


def _leave_the_terminal(terminal: list[tuple[int, int]]) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd, device in terminal:
            try:
                now = os.fstat(fd)
            except OSError:
                continue  # closed since
            if stat.S_ISCHR(now.st_mode) and now.st_rdev == device and fd != null:
                os.dup2(null, fd)  # still that terminal, not a file that took its number
    finally:
        os.close(null)
