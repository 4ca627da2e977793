"""Request-time rules: one requested change against the pinned limits and the
whole commanded state.

Given the limits pinned at arming (:class:`PinnedLimits`), the commanded state
of the whole bench (:class:`BenchState`) and one requested change, the engine
answers allowed (with the state that results) or refused, naming the rule that
refused it and where that rule is defined. It rejects, never clamps: an
allowed request always results in exactly the value that was asked for.

Cross-device rules (relays never closed together, relays open before a net
changes, total power, power-on and power-off order) are checked against the
whole state the change would produce, not only the value that changes.

:func:`check_target` checks the target of a voltage change on its own, as if
it were reached at once: :mod:`.ramps` calls it before it plans any ramp to it.

All values are SI floats (V, A, s); ``now`` is the caller's monotonic clock,
passed in so the engine stays pure and tests can drive time.
"""

from __future__ import annotations

import math
from dataclasses import replace

from interlock.engineering import amount
from interlock.limits.model import (
    ALLOWED,
    BUILT_IN,
    NET_REQUESTS,
    BenchState,
    Decision,
    NetLimits,
    NetState,
    PinnedLimits,
    Request,
    SetCurrentLimit,
    SetOutput,
    SetRelay,
    SetVoltage,
    Verdict,
    refuse,
)

# --- the engine -------------------------------------------------------------------


def check(limits: PinnedLimits, state: BenchState, request: Request, now: float) -> Verdict:
    return evaluate(limits, state, request, now).verdict


def evaluate(limits: PinnedLimits, state: BenchState, request: Request, now: float) -> Decision:
    """Decide one request against the pinned limits and the whole commanded state."""
    verdict = _check_request(limits, state, request, now)
    if not verdict.allowed:
        return Decision(verdict, state)
    new_state = apply(state, request, now)
    verdict = check_state(limits, new_state)
    if not verdict.allowed:
        return Decision(verdict, state)
    return Decision(ALLOWED, new_state)


def apply(state: BenchState, request: Request, now: float) -> BenchState:
    """The state after ``request``, unchecked (the engine calls it only once allowed)."""
    # NetState(voltage, current_limit, output, changed_at, on_at), built directly: this
    # runs for every check of every step, and only the named fields change.
    if isinstance(request, SetVoltage):
        old = state.net(request.net)
        changed_at = now if old.output else old.changed_at
        new = NetState(float(request.volts), old.current_limit, old.output, changed_at, old.on_at)
        return state.with_net(request.net, new)
    if isinstance(request, SetCurrentLimit):
        old = state.net(request.net)
        new = NetState(old.voltage, float(request.amps), old.output, old.changed_at, old.on_at)
        return state.with_net(request.net, new)
    if isinstance(request, SetOutput):
        old = state.net(request.net)
        on = request.on
        turned_on = on and not old.output
        changed_at, on_at = (now, now) if turned_on else (old.changed_at, old.on_at)
        return state.with_net(
            request.net, NetState(old.voltage, old.current_limit, bool(on), changed_at, on_at)
        )
    if isinstance(request, SetRelay):
        relay = request.relay
        relays = state.closed_relays | {relay} if request.closed else state.closed_relays - {relay}
        return state.__class__(state.nets, frozenset(relays))
    raise TypeError(f"not a request: {request!r}")


def went_on(state: BenchState, net: str, at: float) -> BenchState:
    """``net`` once its supply reads its output on: its settle time (and the slew of its
    next step) counts from ``at``, not from when turning it on was decided. On a slow
    link (a serial supply with a gap between commands) the exchange alone can outlast
    the settle time, and a DUT charging its capacitors would be judged before it could."""
    return state.with_net(net, replace(state.net(net), changed_at=at, on_at=at))


def is_finite_number(value: object) -> bool:
    """A real number JSON can hold: not a bool, NaN, an infinity or an int beyond any float."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond any float: 10**400
        return False


def check_finite(subject: str, quantity: str, value: object) -> Verdict:
    """``finite-value``: a quantity asked for is a finite number, or the request is refused.

    ``quantity`` as the journal names it (``"current_limit"``) or as people read it.
    """
    if is_finite_number(value):
        return ALLOWED
    shown = quantity.replace("_", " ")
    return refuse(
        "finite-value", BUILT_IN, f"{subject} {shown} must be a finite number, got {value!r}"
    )


def _check_request(
    limits: PinnedLimits, state: BenchState, request: Request, now: float, *, ramped: bool = False
) -> Verdict:
    if isinstance(request, SetRelay):
        return _check_relay(limits, state, request.relay, request.closed)
    if not isinstance(request, NET_REQUESTS):
        return refuse("request", BUILT_IN, f"not a request: {request!r}")
    net = request.net
    if net not in limits.nets:
        known = ", ".join(sorted(limits.nets))
        return refuse(
            "nets", limits.where("nets"), f'unknown net "{net}" (this profile has {known})'
        )

    net_limits = limits.nets[net]
    current = state.net(net)
    if isinstance(request, SetVoltage):
        verdict = _check_voltage(limits, net_limits, current, request.volts, now, ramped=ramped)
    elif isinstance(request, SetCurrentLimit):
        verdict = _check_current_limit(limits, net_limits, request.amps)
    else:
        verdict = _check_output(limits, state, net_limits, current, request.on)
    if not verdict.allowed:
        return verdict
    return _check_open_before_change(limits, state, net)


def _check_voltage(
    limits: PinnedLimits,
    net: NetLimits,
    current: NetState,
    volts: float,
    now: float,
    *,
    ramped: bool = False,
) -> Verdict:
    """The value itself, then (unless ``ramped``: the target of a ramp) the live step."""
    key = f"nets.{net.net}"
    verdict = check_finite(net.net, "voltage", volts)
    if not verdict.allowed:
        return verdict
    if volts < net.min_voltage:
        return refuse(
            f"{key}.min_voltage",
            limits.where(f"{key}.min_voltage"),
            f"{amount(volts, 'V')} is below the minimum of {amount(net.min_voltage, 'V')}",
        )
    if volts > net.max_voltage:
        return refuse(
            f"{key}.max_voltage",
            limits.where(f"{key}.max_voltage"),
            f"{amount(volts, 'V')} is above the maximum of {amount(net.max_voltage, 'V')}",
        )
    if current.output and not ramped:
        step = abs(volts - current.voltage)
        if step > net.max_step:
            return refuse(
                f"{key}.max_step",
                limits.where(f"{key}.max_step"),
                f"a step of {amount(step, 'V')} on a live net exceeds "
                f"{amount(net.max_step, 'V')}: ramp it",
            )
        elapsed = now - current.changed_at
        if step > net.max_slew * elapsed:
            return refuse(
                f"{key}.max_slew",
                limits.where(f"{key}.max_slew"),
                f"{amount(step, 'V')} in {amount(elapsed, 's')} exceeds "
                f"{amount(net.max_slew, 'V/s')}",
            )
    return ALLOWED


def _check_current_limit(limits: PinnedLimits, net: NetLimits, amps: float) -> Verdict:
    key = f"nets.{net.net}.max_current"
    verdict = check_finite(net.net, "current limit", amps)
    if not verdict.allowed:
        return verdict
    if amps <= 0:
        return refuse(
            key, limits.where(key), f"a current limit must be above 0 A, got {amount(amps, 'A')}"
        )
    floor, channel = limits.supply_floors.get(net.net, (0.0, ""))
    if amps < floor:
        return refuse(
            "supply.min_current",
            f"{limits.bench_file}: wiring.{net.net}.supply",
            f"the {channel} cannot regulate below {amount(floor, 'A')}, got {amount(amps, 'A')}",
        )
    if amps > net.max_current:
        return refuse(
            key,
            limits.where(key),
            f"{amount(amps, 'A')} is above the maximum current limit of "
            f"{amount(net.max_current, 'A')}",
        )
    return ALLOWED


def _check_output(
    limits: PinnedLimits, state: BenchState, net: NetLimits, current: NetState, on: object
) -> Verdict:
    if not isinstance(on, bool):
        return refuse("request", BUILT_IN, f"output must be on or off, got {on!r}")
    if on == current.output:
        return ALLOWED
    key = f"nets.{net.net}"
    if on:
        if current.voltage > net.max_step:
            return refuse(
                f"{key}.max_step",
                limits.where(f"{key}.max_step"),
                f"turning on at {amount(current.voltage, 'V')} is a step of more than "
                f"{amount(net.max_step, 'V')} from 0 V: turn on lower and ramp",
            )
        if current.current_limit <= 0:
            return refuse(
                f"{key}.max_current",
                limits.where(f"{key}.max_current"),
                "no current limit programmed: set one before turning the output on",
            )
        before = limits.power_on[: limits.power_on.index(net.net)]
        missing = [n for n in before if not state.net(n).output]
        if missing:
            return refuse(
                "sequencing.power_on",
                limits.where("sequencing.power_on"),
                f"{net.net} powers on after {', '.join(missing)}, which are off",
            )
    else:
        before = limits.power_off[: limits.power_off.index(net.net)]
        still_on = [n for n in before if state.net(n).output]
        if still_on:
            return refuse(
                "sequencing.power_off",
                limits.where("sequencing.power_off"),
                f"{net.net} powers off after {', '.join(still_on)}, which are on",
            )
    return ALLOWED


def _check_open_before_change(limits: PinnedLimits, state: BenchState, net: str) -> Verdict:
    for rule in limits.open_before_change:
        if rule.net != net:
            continue
        closed = sorted(rule.relays & state.closed_relays)
        if closed:
            return refuse(
                rule.rule,
                rule.where,
                f"{', '.join(closed)} must be open before {net} changes: {rule.reason}",
            )
    return ALLOWED


def _check_relay(limits: PinnedLimits, state: BenchState, relay: str, closed: object) -> Verdict:
    if relay not in limits.relays:
        return refuse("relays", f"{limits.bench_file}: relays", f'unknown relay "{relay}"')
    if not isinstance(closed, bool):
        return refuse("request", BUILT_IN, f"a relay is open or closed, got {closed!r}")
    if closed == (relay in state.closed_relays):
        return ALLOWED
    for net, power_relay in limits.power_relays.items():
        if power_relay == relay and state.net(net).output:
            key = f"wiring.{net}.power_relay"
            return refuse(
                "hot-switch",
                f"{limits.bench_file}: {key}",
                f"{relay} feeds {net}, whose output is on: turn it off first",
            )
    return ALLOWED


def total_power(state: BenchState) -> float:
    """The most the commanded state can deliver: setpoint x current limit over live nets."""
    return sum(net.voltage * net.current_limit for net in state.nets.values() if net.output)


def check_state(limits: PinnedLimits, state: BenchState) -> Verdict:
    """Check rules that concern the whole commanded state at once."""
    closed_relays = state.closed_relays
    for rule in limits.never_together:
        together = rule.relays & closed_relays
        if len(together) > 1:
            closed = sorted(together)
            return refuse(
                rule.rule,
                rule.where,
                f"{' and '.join(closed)} would be closed together: {rule.reason}",
            )
    for name, net in state.nets.items():
        if not net.output:
            continue
        net_limits = limits.nets.get(name)
        if net_limits is None:
            return refuse("nets", limits.where("nets"), f'net "{name}" is live but has no limits')
        if not net_limits.min_voltage <= net.voltage <= net_limits.max_voltage:
            key = f"nets.{name}.max_voltage"
            return refuse(
                key, limits.where(key), f"{name} would be live at {amount(net.voltage, 'V')}"
            )
        if not 0 < net.current_limit <= net_limits.max_current:
            key = f"nets.{name}.max_current"
            return refuse(
                key,
                limits.where(key),
                f"{name} would be live with a {amount(net.current_limit, 'A')} current limit",
            )
    power = total_power(state)
    if power > limits.max_total_power:
        return refuse(
            "rules.max_total_power",
            limits.where("rules.max_total_power"),
            f"the live nets could draw {amount(power, 'W')}, "
            f"above {amount(limits.max_total_power, 'W')}",
        )
    return ALLOWED


def check_target(
    limits: PinnedLimits, state: BenchState, request: SetVoltage, now: float
) -> Verdict:
    """Every rule on the target of a voltage change as if it were reached at once,
    but the live step and slew (a ramp's steps are checked for those one by one)."""
    verdict = _check_request(limits, state, request, now, ramped=True)
    if not verdict.allowed:
        return verdict
    return check_state(limits, apply(state, request, now))
