"""Ctrl-C, SIGTERM and SIGHUP taken between two requests (interlock.interrupts).

Each case runs in a process of its own: a handler that is not installed, or one
that raises where it should not, then fails that process, not the test run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.sequence.conftest import ROOT
from tests.terminal import in_a_terminal

PRELUDE = """
import json, os, signal, sys, threading, time
from interlock.interrupts import Interrupted, calling, signals_interrupt

def signalled(sig):
    os.kill(os.getpid(), sig)
    for _ in range(200):
        time.sleep(0.001)  # the handler runs in the main thread, between two bytecodes

seen = {}
"""


def run_case(code: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code) + "\nprint(json.dumps(seen))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_outside_interruptible_a_signal_is_noted_and_raised_between_two_requests():
    seen = run_case("""
        with signals_interrupt() as stops:
            signalled(signal.SIGTERM)
            seen["noted"] = [stops.by, stops.raised]
            try:
                stops.stop_here()
            except Interrupted as interrupt:
                seen["raised"] = interrupt.by
    """)
    assert seen == {"noted": ["SIGTERM", False], "raised": "SIGTERM"}


def test_inside_interruptible_a_signal_interrupts_at_once_and_a_second_is_let_go():
    seen = run_case("""
        with signals_interrupt() as stops:
            try:
                with stops.interruptible():
                    signalled(signal.SIGHUP)
                    seen["went on"] = True
            except KeyboardInterrupt as interrupt:
                seen["raised"] = [type(interrupt).__name__, interrupt.by]
            signalled(signal.SIGTERM)
            with stops.interruptible():
                signalled(signal.SIGTERM)
            stops.stop_here()  # raised once only
            seen["by"] = stops.by
    """)
    assert seen == {"raised": ["Interrupted", "SIGHUP"], "by": "SIGHUP"}


def test_a_request_under_way_is_not_interrupted_it_is_once_it_returns():
    seen = run_case("""
        with signals_interrupt() as stops:
            try:
                with stops.interruptible():
                    with calling():
                        signalled(signal.SIGTERM)
                        seen["request done"] = True
                    seen["after the request"] = True
            except Interrupted as interrupt:
                seen["raised"] = interrupt.by
    """)
    assert seen == {"request done": True, "raised": "SIGTERM"}


def test_once_over_a_signal_is_only_noted_but_ctrl_c_again_raises_at_once():
    seen = run_case("""
        with signals_interrupt() as stops:
            stops.over()
            with stops.interruptible():
                signalled(signal.SIGINT)
                stops.stop_here()
            seen["noted"] = [stops.by, stops.raised]
            try:
                with calling():
                    signalled(signal.SIGINT)  # whoever presses it again will not wait
            except KeyboardInterrupt as interrupt:
                seen["again"] = type(interrupt).__name__
    """)
    assert seen == {"noted": ["Ctrl-C", False], "again": "KeyboardInterrupt"}


@pytest.mark.parametrize("handler", ["default", "ignored"])
def test_handlers_are_put_back_and_one_ignored_before_stays_ignored(handler):
    """As under nohup: a SIGHUP ignored by whoever started us is not taken."""
    seen = run_case(f"""
        if {handler!r} == "ignored":
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
        before = {{s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}}
        with signals_interrupt() as stops:
            seen["ignored inside"] = signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            signalled(signal.SIGHUP)
        seen["by"] = stops.by
        seen["put back"] = all(signal.getsignal(s) is h for s, h in before.items())
    """)
    ignored = handler == "ignored"
    assert seen == {
        "ignored inside": ignored,
        "by": None if ignored else "SIGHUP",
        "put back": True,
    }


def test_outside_the_main_thread_nothing_is_taken():
    seen = run_case("""
        before = signal.getsignal(signal.SIGTERM)
        def elsewhere():
            with signals_interrupt() as stops:
                seen["installed"] = signal.getsignal(signal.SIGTERM) is not before
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
    """)
    assert seen == {"installed": False}


AFTER_A_HANG_UP = """
import os, signal, sys, time
from interlock.interrupts import signals_interrupt

with signals_interrupt() as stops:
    terminal = os.fstat(1).st_rdev
    os.kill(os.getpid(), signal.SIGTERM)  # noted first, as a session manager sends it
    while stops.by is None:
        time.sleep(0.001)
    print("ready", flush=True)
    failing_since = None
    while os.fstat(1).st_rdev == terminal:  # until the SIGHUP's handler has run
        try:
            os.write(1, b".")
        except OSError:  # hung up: the handler is due
            failing_since = failing_since or time.monotonic()
            if time.monotonic() - failing_since > 10:
                sys.exit(3)  # left on the terminal that is gone
        time.sleep(0.01)
    for _ in range(100):  # the summary and the report, after the stop
        print("written after the hang-up", flush=True)
        print("and to stderr", file=sys.stderr, flush=True)
"""


def test_after_a_hang_up_whatever_came_first_the_output_goes_nowhere_without_failing():
    """SIGTERM first, then the terminal hangs up: writing to it fails (EIO) at once, and
    from the SIGHUP's handler on, every descriptor that was the terminal writes to
    /dev/null, so the summary and the report are written without an error."""
    with in_a_terminal("-c", AFTER_A_HANG_UP, ready=b"ready") as process:
        assert process.hang_up() == 0
