"""Hypothesis strategies for random limits, commanded states and requests,
and an independent oracle that restates every rule of the limit engine.

The oracle is written from the rules as a test engineer states them, not from
the engine's code, so a bug in one is unlikely to hide in the other.
"""

from __future__ import annotations

import math

from hypothesis import strategies as st

from interlock.limits import (
    BenchState,
    NetLimits,
    NetState,
    OpenBeforeChangeRule,
    PinnedLimits,
    RelayGroupRule,
    SafeToMate,
    SetCurrentLimit,
    SetOutput,
    SetRelay,
    SetVoltage,
    total_power,
)

NET_POOL = ["VA", "VB", "VC", "VD"]
SENSE_RELAYS = ["S1", "S2", "S3", "S4"]
UNKNOWN_NET = "NOPE"
UNKNOWN_RELAY = "K99"


# Legal in a profile (above zero) but tiny: ramps the engine must still bound.
TINY = [1e-3, 1e-6, 1e-300, 5e-324]
# Values no one would type, drawn alongside the unrestricted float strategy.
EXTREMES = [1e308, -1e308, 5e-324, -5e-324, -0.0, 2.2250738585072014e-308, 3e7, 1e12]


@st.composite
def net_limits(draw, net: str) -> NetLimits:
    max_voltage = draw(st.floats(1.0, 30.0))
    max_current = draw(st.floats(0.05, 5.0))
    rare = draw(st.integers(0, 9)) == 0
    return NetLimits(
        net=net,
        min_voltage=draw(st.sampled_from([0.0, 0.0, max_voltage / 4])),
        max_voltage=max_voltage,
        max_current=max_current,
        max_slew=draw(st.sampled_from(TINY) if rare else st.floats(0.5, 100.0)),
        max_step=draw(
            st.sampled_from(TINY) if rare and draw(st.booleans()) else st.floats(0.1, max_voltage)
        ),
        readback_absolute=0.01,
        readback_relative=0.005,
        settle_time=0.05,
        live_min_current=0.0,
        live_max_current=max_current,
        safe_to_mate=SafeToMate(1.0, 100.0, 0.5),
    )


@st.composite
def pinned_limits(draw) -> PinnedLimits:
    nets = draw(st.lists(st.sampled_from(NET_POOL), min_size=1, max_size=4, unique=True))
    power_relays = {net: f"P_{net}" for net in nets}
    relays = sorted(power_relays.values()) + SENSE_RELAYS
    groups = draw(
        st.lists(st.lists(st.sampled_from(relays), min_size=2, max_size=3, unique=True), max_size=2)
    )
    open_before = draw(
        st.lists(
            st.tuples(
                st.sampled_from(nets), st.lists(st.sampled_from(relays), min_size=1, max_size=2)
            ),
            max_size=2,
        )
    )
    return PinnedLimits(
        nets={net: draw(net_limits(net)) for net in nets},
        relays=frozenset(relays),
        power_relays=power_relays,
        never_together=tuple(
            RelayGroupRule(f"rules.never_together[{i}]", "p.toml: g", frozenset(g), "test")
            for i, g in enumerate(groups)
        ),
        open_before_change=tuple(
            OpenBeforeChangeRule(
                f"rules.open_before_change[{i}]", "p.toml: o", n, frozenset(r), "t"
            )
            for i, (n, r) in enumerate(open_before)
        ),
        power_on=tuple(draw(st.permutations(nets))),
        power_off=tuple(draw(st.permutations(nets))),
        max_total_power=draw(st.floats(0.1, 150.0)),
        profile_file="p.toml",
        bench_file="b.toml",
        supply_floors={net: (draw(st.sampled_from([0.0, 0.002, 0.01])), "PSU CH1") for net in nets},
    )


def near(value: float) -> st.SearchStrategy[float]:
    """Values at and just around a limit, where comparison bugs live."""
    deltas = [0.0, 1e-9, -1e-9, 1e-6, -1e-6, 1e-3, -1e-3, 0.1, -0.1]
    return st.sampled_from([value + d for d in deltas])


@st.composite
def bench_states(draw, limits: PinnedLimits) -> BenchState:
    nets = {}
    for name, net in limits.nets.items():
        nets[name] = NetState(
            voltage=draw(st.floats(0.0, net.max_voltage * 1.2)),
            current_limit=draw(st.floats(0.0, net.max_current * 1.2)),
            output=draw(st.booleans()),
            changed_at=draw(st.floats(-5.0, 5.0)),
        )
    closed = draw(st.sets(st.sampled_from(sorted(limits.relays))))
    return BenchState(nets=nets, closed_relays=frozenset(closed))


def values(limit: float) -> st.SearchStrategy[float]:
    return st.one_of(
        st.floats(-1.0, limit * 1.5),
        near(limit),
        near(0.0),
        near(0.002),
        st.sampled_from([math.nan, math.inf, -math.inf, *EXTREMES]),
        st.floats(),  # the whole range: subnormals, 1e308, -0.0, NaN, infinities
    )


@st.composite
def requests(draw, limits: PinnedLimits, state: BenchState):
    nets = sorted(limits.nets)
    net = draw(
        st.sampled_from([*nets, UNKNOWN_NET])
        if draw(st.integers(0, 9)) == 0
        else st.sampled_from(nets)
    )
    known = limits.nets.get(net)
    current = state.net(net)
    kind = draw(st.sampled_from(["voltage", "current", "output", "relay"]))
    if kind == "voltage":
        if known is None:
            return SetVoltage(net, 1.0)
        volts = draw(
            st.one_of(
                values(known.max_voltage),
                near(known.min_voltage),
                near(current.voltage + known.max_step),
                near(current.voltage - known.max_step),
            )
        )
        return SetVoltage(net, volts)
    if kind == "current":
        return SetCurrentLimit(net, draw(values(known.max_current if known else 1.0)))
    if kind == "output":
        return SetOutput(net, draw(st.booleans()))
    relay = draw(st.sampled_from([*sorted(limits.relays), UNKNOWN_RELAY]))
    return SetRelay(relay, draw(st.booleans()))


# --- the oracle -------------------------------------------------------------------------


def state_violations(limits: PinnedLimits, state: BenchState) -> list[str]:
    """Rules about a state on its own: what must hold of any state the engine allows."""
    found = []
    for group in limits.never_together:
        if len(group.relays & state.closed_relays) >= 2:
            found.append(f"{group.rule}: {sorted(group.relays & state.closed_relays)} closed")
    for name, net in state.nets.items():
        if net.output:
            lim = limits.nets.get(name)
            if lim is None:
                found.append(f"{name} live without limits")
                continue
            if net.voltage > lim.max_voltage or net.voltage < lim.min_voltage:
                found.append(f"{name} live at {net.voltage} V outside limits")
            if not (0 < net.current_limit <= lim.max_current):
                found.append(f"{name} live with current limit {net.current_limit}")
    if total_power_oracle(state) > limits.max_total_power:
        found.append("total power above maximum")
    return found


def total_power_oracle(state: BenchState) -> float:
    power = 0.0
    for net in state.nets.values():
        if net.output:
            power += net.voltage * net.current_limit
    return power


def transition_violations(
    limits: PinnedLimits, before: BenchState, request, now: float, after: BenchState
) -> list[str]:
    """Rules about the change itself, and that the change is exactly what was asked."""
    found = state_violations(limits, after)
    match request:
        case SetRelay(relay, closed):
            if relay not in limits.relays:
                return [*found, "unknown relay"]
            if (relay in after.closed_relays) != closed:
                found.append("relay not in the requested position")
            if after.nets != before.nets:
                found.append("a relay request changed a net")
            if (relay in before.closed_relays) != closed:
                for net, power_relay in limits.power_relays.items():
                    if power_relay == relay and before.net(net).output:
                        found.append(f"hot-switched {relay} under live {net}")
            return found
    net = request.net
    lim = limits.nets.get(net)
    if lim is None:
        return [*found, "unknown net"]
    old, new = before.net(net), after.net(net)
    if after.closed_relays != before.closed_relays:
        found.append("a net request moved a relay")
    for other in set(before.nets) | set(after.nets):
        if other != net and before.net(other) != after.net(other):
            found.append(f"request on {net} changed {other}")
    match request:
        case SetVoltage(_, volts):
            if not (isinstance(volts, float | int) and math.isfinite(volts)):
                return [*found, "non-finite voltage accepted"]
            if new.voltage != volts:
                found.append(f"asked {volts} V, got {new.voltage} V (clamped?)")
            if not lim.min_voltage <= volts <= lim.max_voltage:
                found.append(f"{volts} V outside {lim.min_voltage}..{lim.max_voltage}")
            if old.output:
                step = abs(volts - old.voltage)
                if step > lim.max_step:
                    found.append(f"live step {step} > {lim.max_step}")
                if step > lim.max_slew * (now - old.changed_at):
                    found.append("slew exceeded")
        case SetCurrentLimit(_, amps):
            if not (isinstance(amps, float | int) and math.isfinite(amps)):
                return [*found, "non-finite current accepted"]
            if new.current_limit != amps:
                found.append(f"asked {amps} A, got {new.current_limit} A (clamped?)")
            if not 0 < amps <= lim.max_current:
                found.append(f"{amps} A outside (0, {lim.max_current}]")
            if amps < limits.supply_floors.get(net, (0.0, ""))[0]:
                found.append(f"{amps} A below what the supply can regulate")
        case SetOutput(_, on):
            if new.output != on:
                found.append("output not in the requested state")
            if on and not old.output:
                if old.voltage > lim.max_step:
                    found.append("turned on with a step above max_step")
                if old.current_limit <= 0:
                    found.append("turned on without a current limit")
                earlier = limits.power_on[: limits.power_on.index(net)]
                if any(not before.net(n).output for n in earlier):
                    found.append("power-on order broken")
            if not on and old.output:
                earlier = limits.power_off[: limits.power_off.index(net)]
                if any(before.net(n).output for n in earlier):
                    found.append("power-off order broken")
    # "Must be open before the net changes": any request on the net counts as a change.
    for rule in limits.open_before_change:
        if rule.net == net and rule.relays & before.closed_relays:
            found.append(f"{rule.rule}: relays closed while {net} changes")
    return found


@st.composite
def reachable_states(draw, limits: PinnedLimits) -> BenchState:
    """A state the engine itself led to from the safe state: nets brought up in
    their power-on order at legal setpoints, some ramped, until one is refused."""
    from interlock.limits import SAFE_STATE, evaluate

    state, now = SAFE_STATE, 0.0
    for name in limits.power_on[: draw(st.integers(0, len(limits.power_on)))]:
        net = limits.nets[name]
        floor = limits.supply_floors.get(name, (0.0, ""))[0]
        low, high = net.min_voltage, min(net.max_voltage, net.max_step)
        requests = [
            SetVoltage(name, draw(st.floats(low, high)) if low <= high else low),
            SetCurrentLimit(name, draw(st.floats(max(floor, 1e-3), net.max_current))),
            SetOutput(name, True),
            SetVoltage(name, draw(st.floats(net.min_voltage, net.max_voltage))),
        ]
        for request in requests:
            now += draw(st.floats(0.0, 10.0))
            decision = evaluate(limits, state, request, now)
            if not decision.verdict.allowed:
                return state
            state = decision.state
    return state


__all__ = [
    "EXTREMES",
    "TINY",
    "UNKNOWN_NET",
    "UNKNOWN_RELAY",
    "bench_states",
    "pinned_limits",
    "reachable_states",
    "requests",
    "state_violations",
    "total_power",
    "transition_violations",
]
