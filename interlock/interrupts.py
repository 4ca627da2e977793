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
written) only where nothing is under way: at :meth:`Stops.stop_here` (between
two steps), inside :meth:`Stops.interruptible` (a wait, a prompt, a test's
body), and never inside a request to the service (:func:`calling`: raised as
the request returns). A signal that is only noted is said on stderr, once.
Ctrl-C after any of them, or SIGTERM after SIGTERM, raises KeyboardInterrupt at
once, wherever it comes: whoever asks twice will not wait. Not a SIGTERM after
a SIGHUP, nor a SIGHUP: a session's end sends both, in no sure order. A
SIGHUP also points at /dev/null the descriptors that were the controlling
terminal once it has hung up: writing to it fails (EIO). A process forked
meanwhile gets the handlers from before back.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}

_stack: list[Stops] = []  # the Stops whose handlers are installed, the innermost last


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
        self._terminal = _controlling_terminal()
        self._previous: dict[int, Any] = {}

    def interruptible(self) -> contextlib.AbstractContextManager[None]:
        """Within the block (main thread) a signal interrupts at once, and one that came
        before interrupts as it begins; never inside a request (:func:`calling`)."""
        if threading.current_thread() is not threading.main_thread():
            return contextlib.nullcontext()
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
        if self.by is not None and not self.raised:
            self.raised = True
            raise Interrupted(self.by)

    def handle(self, signum: int, frame: object) -> None:
        if signum == signal.SIGHUP:
            with contextlib.suppress(OSError):  # nothing may come out of here but a stop
                _leave_the_terminal(self._terminal)
        if self.by is not None:
            if signum == signal.SIGINT or (signum == signal.SIGTERM and self.by == "SIGTERM"):
                raise KeyboardInterrupt  # asked again: at once, wherever it is
            return
        self.by = NAMES[signal.Signals(signum)]
        self._interrupt_if_due()
        say(f"interlock: {self.by} noted: stopping between two requests (Ctrl-C to stop at once)")

    def _interrupt_if_due(self) -> None:
        if self._allowed and self._calls == 0:
            self.stop_here()


@contextlib.contextmanager
def signals_interrupt() -> Iterator[Stops]:
    """Ctrl-C, SIGTERM and SIGHUP noted by the Stops yielded (main thread only: elsewhere
    nothing is taken). One ignored by whoever started us (``nohup``) stays ignored. The
    handlers before are back after the block; a signal an inner block took is passed on
    to the outer one's Stops."""
    stops = Stops()
    if threading.current_thread() is not threading.main_thread():
        yield stops
        return
    stops._previous = take(stops.handle)
    _stack.append(stops)
    try:
        yield stops
    finally:
        if stops in _stack:  # not in a forked child, which dropped them all
            _stack.remove(stops)
            put_back(stops._previous)
        outer = active()
        if outer is not None and stops.by is not None and outer.by is None:
            outer.by = stops.by
            outer._interrupt_if_due()


def active() -> Stops | None:
    """The Stops whose handlers are installed now, if any."""
    return _stack[-1] if _stack else None


@contextlib.contextmanager
def calling() -> Iterator[None]:
    """A request to the service under way: a signal meanwhile interrupts once it has
    returned, not while its reply is awaited (the service carries it out anyway)."""
    stops = active()
    if stops is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    stops._calls += 1
    try:
        yield
    finally:
        stops._calls -= 1
        stops._interrupt_if_due()


def take(handler: Callable[[int, Any], None]) -> dict[int, Any]:
    """``handler`` for SIGINT, SIGTERM and SIGHUP, but one that whoever started us ignored
    (``nohup``), which stays ignored; the handlers it replaced, for :func:`put_back`."""
    previous = {}
    for sig in HANDLED:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, handler)
    return previous


def put_back(previous: dict[int, Any]) -> None:
    """The handlers :func:`take` replaced."""
    for sig, handler in previous.items():
        # None: installed from outside Python, which cannot be put back.
        signal.signal(sig, signal.SIG_DFL if handler is None else handler)  # type: ignore[arg-type]


def _in_a_child() -> None:
    """After fork: the child is not the script holding the bench, and gets the handlers
    from before any (a SIGTERM there ends it, as it would have)."""
    if _stack:
        put_back(_stack[0]._previous)
        _stack.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_in_a_child)


def say(text: str) -> None:
    """A line on stderr from a signal handler (no print: it may interrupt one)."""
    with contextlib.suppress(OSError):
        os.write(2, text.encode() + b"\n")


def _controlling_terminal() -> tuple[list[int], int] | None:
    """Descriptors open on the controlling terminal now (pytest, say, writes to a copy
    of fd 1), and its device; None without one."""
    try:
        with open("/proc/self/stat", "rb") as handle:
            stat = handle.read()
        tty_nr = int(stat[stat.rindex(b")") + 2 :].split()[4])
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except (OSError, ValueError, IndexError):
        return None
    if tty_nr == 0:
        return None
    device = os.makedev((tty_nr >> 8) & 0xFFF, (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00))
    found = []
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.fstat(fd).st_rdev == device and os.isatty(fd):
                found.append(fd)
    return found, device


def _leave_the_terminal(terminal: tuple[list[int], int] | None) -> None:
    """Point at /dev/null what is still that terminal and has hung up (a SIGHUP sent to a
    terminal still there changes nothing)."""
    if terminal is None:
        return
    fds, device = terminal
    gone = []
    for fd in fds:
        try:
            if os.fstat(fd).st_rdev == device and not os.isatty(fd):
                gone.append(fd)  # still that terminal (not a file that took its number)
        except OSError:
            continue  # closed since
    if not gone:
        return
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in gone:
            os.dup2(null, fd)
    finally:
        os.close(null)
