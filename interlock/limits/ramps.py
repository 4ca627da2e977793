"""Ramps: how a voltage is reached, planned and bounded by the limit engine's rules.

Pure, as the rest of the engine. :func:`plan_voltage` turns one voltage
request into the setpoints the controller sends: one, or on a live net a ramp
in steps of at most ``max_step``, ``max_step / max_slew`` apart. The target is
checked first (:func:`~interlock.limits.requests.check_target`), then the ramp's length
and duration are bounded (:func:`check_ramp`), and only then are its steps
listed, each decided at its planned time: no request costs work in proportion
to the value asked for. While a ramp runs, :func:`continue_ramp` decides each
step again against the state as it is then.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

from interlock.engineering import amount
from interlock.limits.model import (
    ALLOWED,
    BUILT_IN,
    SAFE_STATE,
    BenchState,
    Decision,
    NetLimits,
    NetState,
    PinnedLimits,
    SetVoltage,
    Verdict,
)
from interlock.limits.model import refuse as _refuse
from interlock.limits.requests import check_target, evaluate

# Margin over the slew-limited interval between ramp steps (clock granularity): the
# controller waits this much longer than max_slew asks, and the dry run plans the same.
RAMP_MARGIN = 1.02
# The most steps, and seconds, the interlock plans for one request whatever the
# profile says: a legal but tiny max_step or max_slew must not make a request
# unbounded. Deciding 1000 steps takes a few milliseconds; a client waits 120 s
# (interlock.client.REQUEST_TIMEOUT) for an answer. The configuration refuses a
# profile whose whole range would need more (interlock.config.profile), so every
# ramp inside a profile that loads can be planned.
RAMP_MAX_STEPS = 1000
RAMP_MAX_SECONDS = 60.0


def ramp_step_count(net: NetLimits, start: float, target: float) -> float:
    """How many steps of ``max_step`` a ramp from ``start`` to ``target`` needs, as a
    float (inf or nan when absurd: never a list)."""
    return abs(target - start) / net.max_step


def ramp_duration(net: NetLimits, start: float, target: float) -> float:
    """How long the waits of a ramp from ``start`` to ``target`` take at ``max_slew``."""
    return abs(target - start) / net.max_slew * RAMP_MARGIN


@dataclass(frozen=True)
class RampStep:
    """One setpoint of a plan: the wait before it, and its decision at its planned time."""

    delay: float
    request: SetVoltage
    decision: Decision


@dataclass(frozen=True)
class VoltagePlan:
    """How a voltage is reached: one setpoint, or a ramp on a live net; decided whole."""

    verdict: Verdict
    steps: tuple[RampStep, ...] = ()  # empty if refused
    state: BenchState = SAFE_STATE  # after the last step if allowed, else the state unchanged
    duration: float = 0.0  # the waits between steps, in seconds


def plan_voltage(
    limits: PinnedLimits, state: BenchState, request: SetVoltage, now: float
) -> VoltagePlan:
    """The steps to reach ``request.volts`` from ``state``, each with its wait, decided whole.

    One setpoint (an off net, or no change) is decided on its own. For a ramp
    the target is checked first and the ramp's length and duration bounded
    before any step is listed: a refusal costs the same whatever the value.
    Then every step is decided at its planned time; the first refusal refuses
    the plan, naming the step.
    """
    start = state.net(request.net)
    if not start.output or request.volts == start.voltage:
        # One setpoint: its own decision is the target's (an off net has no step or slew).
        decision = evaluate(limits, state, request, now)
        steps = (RampStep(0.0, request, decision),) if decision.verdict.allowed else ()
        return VoltagePlan(decision.verdict, steps, decision.state)
    verdict = check_target(limits, state, request, now)
    if not verdict.allowed:
        return VoltagePlan(verdict, state=state)
    net = limits.nets[request.net]
    volts = float(request.volts)
    verdict = check_ramp(limits, net, start.voltage, volts)
    if not verdict.allowed:
        return VoltagePlan(verdict, state=state)
    setpoints = ramp_steps(net, start.voltage, volts)
    steps, planned, at, previous, changed = [], state, now, start.voltage, start.changed_at
    for i, setpoint in enumerate(setpoints):
        interval = step_interval(net, setpoint - previous) * RAMP_MARGIN
        # The first step waits only for what is left since the net's last live change.
        earliest = max(now, changed + interval) if i == 0 else at + interval
        step_at = _slew_time(earliest, changed, abs(setpoint - previous), net.max_slew)
        delay, at, changed = step_at - at, step_at, step_at
        step = SetVoltage(request.net, setpoint)
        decision = evaluate(limits, planned, step, at)
        if not decision.verdict.allowed:
            return VoltagePlan(at_step(decision.verdict, i, len(setpoints)), state=state)
        steps.append(RampStep(delay, step, decision))
        planned, previous = decision.state, setpoint
    return VoltagePlan(ALLOWED, tuple(steps), planned, at - now)


def _slew_time(earliest: float, changed: float, step: float, slew: float) -> float:
    """The first time from ``earliest`` at which the live slew check passes: a step
    whose wait is below the clock's resolution there still gets one tick of it."""
    at = earliest
    for _ in range(4):
        if not step > slew * (at - changed):
            break
        at = math.nextafter(at, math.inf)
    return at


def at_step(verdict: Verdict, index: int, count: int) -> Verdict:
    """A step's refusal, saying which step of the ramp it was (when there are several)."""
    if count <= 1:
        return verdict
    return replace(verdict, reason=f"{verdict.reason} (ramp step {index + 1} of {count})")


def check_ramp(limits: PinnedLimits, net: NetLimits, start: float, target: float) -> Verdict:
    """A ramp's length and duration, bounded before any of its steps is listed.

    The bound on the length follows from the profile: no ramp between two
    setpoints inside the net's range needs more than
    ``ceil((max_voltage - min_voltage) / max_step)`` steps; the interlock's own
    bounds cap what a tiny (but legal) max_step or max_slew would allow. (A
    plan may hold up to two steps more: see :func:`ramp_steps`.)
    """
    key = f"nets.{net.net}"
    needed = ramp_step_count(net, start, target)
    legal = (net.max_voltage - net.min_voltage) / net.max_step
    if legal <= RAMP_MAX_STEPS:
        bound = max(1, math.ceil(legal))
        if not needed <= bound:
            return _refuse(
                "ramp.max_steps",
                limits.where(f"{key}.max_step"),
                f"a ramp from {amount(start, 'V')} to {amount(target, 'V')} takes "
                f"{_count(needed)} steps of at "
                f"most {amount(net.max_step, 'V')}, more than the {bound} that any ramp inside "
                f"{key}.min_voltage .. {key}.max_voltage needs",
            )
    elif not needed <= RAMP_MAX_STEPS:
        return _refuse(
            "ramp.max_steps",
            BUILT_IN,
            f"a ramp from {amount(start, 'V')} to {amount(target, 'V')} takes "
            f"{_count(needed)} steps of at most "
            f"{amount(net.max_step, 'V')} ({limits.where(f'{key}.max_step')}), more than the "
            f"{RAMP_MAX_STEPS} the interlock plans for one request",
        )
    seconds = ramp_duration(net, start, target)
    if not seconds <= RAMP_MAX_SECONDS:
        return _refuse(
            "ramp.max_duration",
            BUILT_IN,
            f"a ramp from {amount(start, 'V')} to {amount(target, 'V')} "
            f"at {amount(net.max_slew, 'V/s')} "
            f"({limits.where(f'{key}.max_slew')}) takes {amount(seconds, 's')}, longer than the "
            f"{amount(RAMP_MAX_SECONDS, 's')} the interlock allows one request",
        )
    return ALLOWED


def _count(steps: float) -> str:
    return str(max(1, math.ceil(steps))) if steps < 1e15 else f"{steps:.3g}"


def continue_ramp(
    decided_under: PinnedLimits,
    limits: PinnedLimits,
    left: NetState,
    state: BenchState,
    request: SetVoltage,
    now: float,
) -> Decision:
    """A ramp's next step, decided again against the state as it is now.

    A ramp goes on only from where it left its net, under the limits it was
    decided under: a net another request changed meanwhile (a setpoint, a
    current limit, its output) or limits pinned again end it there, never
    with a jump from a state it did not plan from.
    """
    if limits is not decided_under and limits != decided_under:
        return Decision(
            _refuse(
                "ramp.interrupted",
                BUILT_IN,
                "the limits were pinned again during the ramp: it stops here",
            ),
            state,
        )
    held = state.net(request.net)
    if held != left:
        output = "on" if held.output else "off"
        return Decision(
            _refuse(
                "ramp.interrupted",
                BUILT_IN,
                f"{request.net} was changed by another request during the ramp (now "
                f"{amount(held.voltage, 'V')}, output {output}): the ramp stops here",
            ),
            state,
        )
    return evaluate(limits, state, request, now)


def ramp_steps(net: NetLimits, start: float, target: float) -> list[float]:
    """Setpoints from ``start`` to ``target`` in equal steps no larger than ``max_step``.

    The caller waits ``step_interval`` between them, so the average slew stays
    within ``max_slew``; each step is still checked by the engine on its own.
    Only for a ramp :func:`check_ramp` allowed: longer ones are an error here.
    Where rounding would make an equal step a hair longer than ``max_step``,
    one or two more steps are taken.
    """
    distance = target - start
    if distance == 0:
        return []
    needed = ramp_step_count(net, start, target)
    if not needed <= RAMP_MAX_STEPS:
        raise ValueError(f"a ramp of {_count(needed)} steps: check_ramp() refuses it")
    least = max(1, math.ceil(needed))
    for count in (least, least + 1, least + 2):
        # The plan's check of each step has the last word; this only spares a legal
        # ramp a refusal for a rounding error.
        steps = [start + distance * (i / count) for i in range(1, count)]
        steps.append(target)
        if all(abs(b - a) <= net.max_step for a, b in itertools.pairwise([start, *steps])):
            break
    return steps


def step_interval(net: NetLimits, step: float) -> float:
    """The shortest wait before a step of ``step`` volts on a live net."""
    return abs(step) / net.max_slew
