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


@pytest.mark.parametrize(
    ("first", "again", "forced"),
    [
        ("SIGINT", "SIGINT", True),
        ("SIGTERM", "SIGINT", True),  # an operator after a kill: at once
        ("SIGTERM", "SIGTERM", True),
        ("SIGHUP", "SIGTERM", False),  # a session's end sends both
        ("SIGTERM", "SIGHUP", False),
    ],
)
def test_asked_again_inside_a_request_it_stops_at_once_but_not_for_a_sessions_end(
    first, again, forced
):
    seen = run_case(f"""
        with signals_interrupt() as stops:
            try:
                with calling():
                    signalled(signal.{first})
                    seen["noted"] = stops.by
                    signalled(signal.{again})  # a request that does not return, say
                    seen["waited"] = True
            except KeyboardInterrupt as interrupt:
                seen["raised"] = type(interrupt).__name__
    """)
    name = {"SIGINT": "Ctrl-C"}.get(first, first)
    if forced:
        assert seen == {"noted": name, "raised": "KeyboardInterrupt"}
    else:  # the request ends, then the first signal interrupts
        assert seen == {"noted": name, "waited": True}


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

other, other_side = os.openpty()  # a terminal of another kind: a DUT's console, say
console = os.fstat(other_side).st_rdev
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
    if os.fstat(other_side).st_rdev != console or not os.isatty(other_side):
        sys.exit(4)  # not the controlling terminal: left alone
"""


def test_after_a_hang_up_whatever_came_first_the_output_goes_nowhere_without_failing():
    """SIGTERM first, then the terminal hangs up: writing to it fails (EIO) at once, and
    from the SIGHUP's handler on, every descriptor that was the terminal writes to
    /dev/null, so the summary and the report are written without an error. Another
    terminal the process holds (a console on a pty) is left alone."""
    with in_a_terminal("-c", AFTER_A_HANG_UP, ready=b"ready") as process:
        assert process.hang_up() == 0


def test_a_sighup_sent_to_a_terminal_still_there_leaves_it_alone():
    code = """
import os, signal, time
from interlock.interrupts import signals_interrupt
with signals_interrupt() as stops:
    terminal = os.fstat(1).st_rdev
    os.kill(os.getpid(), signal.SIGHUP)  # kill -HUP: the terminal has not hung up
    while stops.by is None:
        time.sleep(0.001)
    if os.fstat(1).st_rdev == terminal and os.isatty(1):
        print("still the terminal", flush=True)
"""
    with in_a_terminal("-c", code, ready=b"still the terminal"):
        pass


def test_a_child_forked_meanwhile_is_ended_by_sigterm_as_before():
    seen = run_case("""
        with signals_interrupt():
            child = os.fork()
            if child == 0:
                time.sleep(30)
                os._exit(0)
            time.sleep(0.2)  # the child is running
            os.kill(child, signal.SIGTERM)
            _, status = os.waitpid(child, 0)
            seen["child"] = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
    """)
    assert seen == {"child": True}


def test_a_signal_an_inner_block_took_is_passed_to_the_outer_one():
    """A script holding the bench that runs a sequence in process (its own handlers):
    the outer one hears of the signal once the inner one ends."""
    seen = run_case("""
        with signals_interrupt() as outer:
            with signals_interrupt() as inner:
                signalled(signal.SIGTERM)
            seen["inner"], seen["outer"] = inner.by, outer.by
            try:
                outer.stop_here()
            except Interrupted as interrupt:
                seen["raised"] = interrupt.by
    """)
    assert seen == {"inner": "SIGTERM", "outer": "SIGTERM", "raised": "SIGTERM"}
