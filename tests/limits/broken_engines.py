"""Deliberately wrong limit engines. The property tests must catch every one.

Each takes the same arguments as :func:`interlock.limits.evaluate` and gets one
thing wrong in a way real code does.
"""

from __future__ import annotations

import dataclasses

from interlock.limits import ALLOWED, Decision, SetVoltage, apply, evaluate


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
