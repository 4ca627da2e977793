"""Deliberately wrong limit engines. The property tests must catch every one.

Each takes the same arguments as :func:`interlock.limits.evaluate` (or, for
planners and ramp continuations, as :func:`~interlock.limits.ramps.plan_voltage` and
:func:`~interlock.limits.ramps.continue_ramp`) and gets one thing wrong in a way real
code does.
"""

from __future__ import annotations

import dataclasses
from unittest import mock

from interlock.limits import ALLOWED, Decision, SetVoltage, apply, evaluate
from interlock.limits import ramps as engine


def off_by_tolerance(limits, state, request, now):
    """Compares against the limit plus a 'small' margin: a tolerance mistaken for slack."""
    loose = {
        name: dataclasses.replace(net, max_voltage=net.max_voltage + 1e-3)
        for name, net in limits.nets.items()
    }
    return evaluate(dataclasses.replace(limits, nets=loose), state, request, now)


def clamping(limits, state, request, now):
    """Clamps an over-voltage request to the limit instead of rejecting it."""
    decision = evaluate(limits, state, request, now)
    if (
        not decision.verdict.allowed
        and isinstance(request, SetVoltage)
        and request.net in limits.nets
        and decision.verdict.rule.endswith("max_voltage")
    ):
        clamped = SetVoltage(request.net, limits.nets[request.net].max_voltage)
        retry = evaluate(limits, state, clamped, now)
        if retry.verdict.allowed:
            return Decision(ALLOWED, retry.state)
    return decision


def cross_rule_ignored(limits, state, request, now):
    """Forgets the relays-never-together rules."""
    return evaluate(dataclasses.replace(limits, never_together=()), state, request, now)


def only_the_changed_value(limits, state, request, now):
    """Checks the requested value but not the whole resulting state (total power)."""
    decision = evaluate(
        dataclasses.replace(limits, max_total_power=float("inf")), state, request, now
    )
    return decision


def power_order_ignored(limits, state, request, now):
    """Lets outputs come on in any order."""
    relaxed = dataclasses.replace(limits, power_on=tuple(sorted(limits.power_on, key=lambda n: 0)))
    decision = evaluate(relaxed, state, request, now)
    if not decision.verdict.allowed and decision.verdict.rule == "sequencing.power_on":
        return Decision(ALLOWED, apply(state, request, now))
    return decision


BROKEN_ENGINES = [
    off_by_tolerance,
    clamping,
    cross_rule_ignored,
    only_the_changed_value,
    power_order_ignored,
]


# --- broken planners: each takes plan_voltage's arguments -------------------------------


def _with(name, replacement):
    """plan_voltage with one of the engine's own pieces swapped for a wrong one."""

    def planner(limits, state, request, now):
        with mock.patch.object(engine, name, replacement):
            return engine.plan_voltage(limits, state, request, now)

    return planner


def target_checked_last(limits, state, request, now):
    """Lists and decides the steps before looking at the target on its own: how a
    single absurd setpoint once hung the controller (here bounded, so it returns)."""
    return _with("check_target", lambda *args: ALLOWED)(limits, state, request, now)


def unbounded_ramp(limits, state, request, now):
    """Plans a ramp of any length up to the interlock's cap: the profile's bound forgotten."""
    return _with("check_ramp", lambda *args: ALLOWED)(limits, state, request, now)


def clamping_plan(limits, state, request, now):
    """Ramps an out-of-range target to the limit instead of refusing it."""
    plan = engine.plan_voltage(limits, state, request, now)
    rule = plan.verdict.rule or ""
    if rule.endswith(("max_voltage", "min_voltage")) and request.net in limits.nets:
        net = limits.nets[request.net]
        clamped = min(max(request.volts, net.min_voltage), net.max_voltage)
        retry = engine.plan_voltage(limits, state, SetVoltage(request.net, clamped), now)
        if retry.verdict.allowed:
            return retry
    return plan


BROKEN_PLANNERS = [target_checked_last, unbounded_ramp, clamping_plan]


# --- broken continuations: each takes continue_ramp's arguments --------------------------


def stale_ramp(decided_under, limits, left, state, request, now):
    """Decides the next step against the state now, forgetting where the ramp left its net:
    a net another request moved is ramped on from there."""
    return evaluate(limits, state, request, now)


def limits_unchanged_assumed(decided_under, limits, left, state, request, now):
    """Notices a moved net, not limits pinned again."""
    return engine.continue_ramp(limits, limits, left, state, request, now)


BROKEN_RAMP_CONTINUATIONS = [stale_ramp, limits_unchanged_assumed]
