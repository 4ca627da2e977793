"""SIGTERM and SIGHUP taken as Ctrl-C within signals_interrupt (interlock.interrupts)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from interlock.interrupts import Interrupted, signals_interrupt

pytestmark = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="signal handlers are the main thread's",
)


def signalled(sig: int) -> None:
    """Send ``sig`` to this process and give its handler the chance to run."""
    os.kill(os.getpid(), sig)
    for _ in range(100):
        time.sleep(0.001)  # the handler runs in the main thread, between two bytecodes


def test_the_first_signal_interrupts_as_ctrl_c_and_a_second_is_let_go():
    before = signal.getsignal(signal.SIGTERM)
    with signals_interrupt() as stops:
        with pytest.raises(KeyboardInterrupt) as raised:
            signalled(signal.SIGTERM)
        assert isinstance(raised.value, Interrupted) and raised.value.by == "SIGTERM"
        signalled(signal.SIGTERM)  # the power-down that follows is not cut short
        signalled(signal.SIGHUP)
        assert (stops.by, stops.raised) == ("SIGTERM", True)
    assert signal.getsignal(signal.SIGTERM) is before


def test_once_over_a_signal_is_noted_not_raised():
    with signals_interrupt() as stops:
        stops.over()
        signalled(signal.SIGTERM)
    assert (stops.by, stops.raised) == ("SIGTERM", False)


def test_a_signal_ignored_by_whoever_started_us_stays_ignored():
    """As under nohup: a SIGHUP ignored before is not taken."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with signals_interrupt() as stops:
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            signalled(signal.SIGHUP)
        assert stops.by is None
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_outside_the_main_thread_nothing_is_taken():
    seen = []

    def elsewhere() -> None:
        with signals_interrupt() as stops:
            seen.append(signal.getsignal(signal.SIGTERM))
        seen.append(stops.by)

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert seen == [before, None]
