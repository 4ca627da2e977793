"""Any float, on a live net or an off one, through a controller on the simulated bench:
every request is answered, refused or done, in bounded time and bounded work.

Time is not measured against a stopwatch an idle machine would meet: a refusal
must send nothing at all, and a request that is done must send no more setpoints
than the longest ramp the profile allows. Wall time is then only bounded very
loosely (a refusal takes about a millisecond here; the absurd setpoints these
tests are for took from seconds to forever).
"""

from __future__ import annotations

import contextlib
import math
import time

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from interlock.errors import InterlockError, LimitViolation
from interlock.limits.ramps import RAMP_MARGIN

from .support import assert_truth_within_limits, setting_commands

NETS = ["VLOGIC", "VBUS", "MOTOR"]
# A refusal's answer, with a wide margin for a loaded machine (about a millisecond here).
ANSWER_S = 2.0
# Per setpoint sent: one exchange (about 2 ms here) and its journal commit, widely.
PER_SETTING_S = 0.25

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def bring_up(rig) -> None:
    """VLOGIC live at 5 V, VBUS live at 12 V, MOTOR off: whatever the last example left."""
    ctl = rig.controller
    if ctl.state == "fault":
        ctl.reset("operator")
    if ctl.state == "safe":
        ctl.arm("operator")
    for net, volts in (("VLOGIC", 5.0), ("VBUS", 12.0)):
        if not ctl.commanded.net(net).output:
            ctl.set_current_limit(net, 0.3)
            ctl.set_voltage(net, min(volts, rig.limits.nets[net].max_step))
            ctl.output_on(net)
            ctl.set_voltage(net, volts)


def longest_ramp(rig, net: str) -> tuple[int, float]:
    """The most setpoints, and the most seconds of waiting, any legal ramp on ``net`` takes."""
    limits = rig.limits.nets[net]
    span = limits.max_voltage - limits.min_voltage
    return math.ceil(span / limits.max_step) + 2, span / limits.max_slew * RAMP_MARGIN


def attempt(rig, action, net: str, value: float) -> str:
    try:
        action(net, value)
    except LimitViolation:
        return "refused"
    except InterlockError:
        return "fault"  # e.g. a live current limit below the DUT's draw trips the bench
    return "done"


def setpoints_sent(rig) -> int:
    """Setpoints and current limits the supply received (a trip's OUTP OFF lines, which
    the last example may set off at any time, are not counted)."""
    return sum(line.startswith(("VOLT ", "CURR ")) for line in setting_commands(rig))


def check_bounded(rig, action, net: str, value: float) -> None:
    for _ in range(3):  # a trip the last example set off may land in the middle of this
        with contextlib.suppress(InterlockError):
            bring_up(rig)
            break
    live = rig.controller.commanded.net(net).output
    sent_before = setpoints_sent(rig)
    started = time.monotonic()
    outcome = attempt(rig, action, net, value)
    elapsed = time.monotonic() - started
    sent = setpoints_sent(rig) - sent_before
    event(f"{action.__name__} on a {'live' if live else 'off'} net: {outcome}")
    if outcome == "refused":
        assert sent == 0, f"{value!r} on {net}: refused after {sent} settings went out"
        assert elapsed < ANSWER_S, f"{value!r} on {net}: refused after {elapsed:.2f} s"
    else:
        steps, waiting = longest_ramp(rig, net)
        assert sent <= steps, f"{value!r} on {net}: {sent} settings sent"
        assert elapsed < ANSWER_S + waiting + sent * PER_SETTING_S, (
            f"{value!r} on {net}: {outcome} after {elapsed:.2f} s, {sent} settings sent"
        )
    assert_truth_within_limits(rig)


# The whole range (NaN, infinities, subnormals, 1e308, -0.0), and legal values often
# enough that live ramps and trips happen too.
volts = st.one_of(st.floats(), st.floats(0.0, 25.0))
amps = st.one_of(st.floats(), st.floats(0.0, 0.6))


@SETTINGS
@given(net=st.sampled_from(NETS), volts=volts)
@example(net="VLOGIC", volts=3e7)
@example(net="VLOGIC", volts=1e308)
@example(net="VBUS", volts=-1e308)
@example(net="VBUS", volts=5e-324)
@example(net="VBUS", volts=-0.0)
@example(net="MOTOR", volts=1e308)
def test_any_setpoint_is_answered_refused_or_done_in_bounded_time(rig, net, volts):
    check_bounded(rig, rig.controller.set_voltage, net, volts)


@SETTINGS
@given(net=st.sampled_from(NETS), amps=amps)
@example(net="VLOGIC", amps=1e308)
@example(net="VBUS", amps=-1e308)
@example(net="VBUS", amps=5e-324)
@example(net="VLOGIC", amps=-0.0)
@example(net="MOTOR", amps=3e7)
def test_any_current_limit_is_answered_refused_or_done_in_bounded_time(rig, net, amps):
    check_bounded(rig, rig.controller.set_current_limit, net, amps)
