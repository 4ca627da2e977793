"""Voltage plans over the whole float range: the target is decided first, a ramp is
bounded before any of its steps is listed, and a ramp goes on only from where it
left its net. The broken planners in ``broken_engines.py`` must each be caught."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from unittest import mock

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from interlock.limits import (
    SAFE_STATE,
    NetLimits,
    NetState,
    SafeToMate,
    SetCurrentLimit,
    SetOutput,
    SetVoltage,
    evaluate,
)
from interlock.limits import ramps as engine
from interlock.limits.ramps import (
    RAMP_MARGIN,
    RAMP_MAX_SECONDS,
    RAMP_MAX_STEPS,
    continue_ramp,
    plan_voltage,
    ramp_steps,
)

from .broken_engines import BROKEN_PLANNERS, BROKEN_RAMP_CONTINUATIONS
from .strategies import (
    EXTREMES,
    UNKNOWN_NET,
    bench_states,
    pinned_limits,
    reachable_states,
    transition_violations,
)

# Work per plan, whatever the value asked for: a loose wall-clock bound on a pure
# function (a thousand-step plan takes a few milliseconds), only to catch a runaway.
RUNAWAY_S = 1.0

targets = st.one_of(st.floats(), st.sampled_from([*EXTREMES, math.nan, math.inf, -math.inf]))


@st.composite
def displaced_states(draw, limits):
    """A reachable state with one live net's setpoint moved outside its range, as no
    request could: the plan back from there is longer than any legal ramp."""
    state = draw(reachable_states(limits))
    live = sorted(state.live_nets)
    if not live:
        return state
    name = draw(st.sampled_from(live))
    net, held = limits.nets[name], state.net(name)
    span = net.max_voltage - net.min_voltage
    volts = draw(
        st.one_of(
            st.floats(net.max_voltage, net.max_voltage + 3 * span),
            st.floats(net.min_voltage - 3 * span, net.min_voltage),
        )
    )
    return state.with_net(name, NetState(volts, held.current_limit, True, held.changed_at))


@st.composite
def plan_scenarios(draw):
    limits = draw(pinned_limits())
    state = draw(
        st.one_of(
            reachable_states(limits),
            displaced_states(limits),
            bench_states(limits),
            st.just(SAFE_STATE),
        )
    )
    net = draw(st.sampled_from([*sorted(limits.nets), UNKNOWN_NET]))
    known = limits.nets.get(net)
    legal = st.floats(known.min_voltage, known.max_voltage) if known else st.just(1.0)
    volts = draw(st.one_of(targets, legal))
    now = draw(st.floats(5.0, 30.0))
    return limits, state, SetVoltage(net, volts), now


def longest(limits, net: str) -> int:
    """The most steps a plan on ``net`` may hold: the profile's bound, capped by the
    interlock's, and two more for rounding."""
    lim = limits.nets[net]
    legal = (lim.max_voltage - lim.min_voltage) / lim.max_step
    return (max(1, math.ceil(legal)) if legal <= RAMP_MAX_STEPS else RAMP_MAX_STEPS) + 2


def check_plan(planner, limits, state, request, now) -> None:
    calls = []
    real = engine.evaluate

    def counted(*args):
        calls.append(args)
        return real(*args)

    started = time.perf_counter()
    with mock.patch.object(engine, "evaluate", counted):
        try:
            plan = planner(limits, state, request, now)
        except Exception as error:  # not an answer: the request would fail unrecorded
            raise AssertionError(f"{request} raised {error!r}") from error
    assert time.perf_counter() - started < RUNAWAY_S
    net, volts = request.net, request.volts
    lim = limits.nets.get(net)
    finite = isinstance(volts, float) and math.isfinite(volts)
    verdict = plan.verdict
    if lim is not None:
        assert len(calls) <= longest(limits, net) + 1, "more work than the plan's bound"
    if not verdict.allowed:
        assert verdict.rule and verdict.where and verdict.reason
        assert not plan.steps and plan.state is state
    # The target is decided first, on its own, before any step is looked at.
    if lim is None:
        assert verdict.rule == "nets"
        return
    if not finite:
        assert verdict.rule == "finite-value"
    elif volts < lim.min_voltage:
        assert verdict.rule == f"nets.{net}.min_voltage"
    elif volts > lim.max_voltage:
        assert verdict.rule == f"nets.{net}.max_voltage"
    if not (finite and lim.min_voltage <= volts <= lim.max_voltage):
        # At most the request's own decision (an off net's): never a ramp's steps.
        assert [args[2] for args in calls] in ([], [request]), "steps decided before the target"
        return
    start = state.net(net)
    distance = abs(volts - start.voltage)
    if verdict.rule == "ramp.max_steps":
        legal = (lim.max_voltage - lim.min_voltage) / lim.max_step
        bound = math.ceil(legal) if legal <= RAMP_MAX_STEPS else RAMP_MAX_STEPS
        assert distance / lim.max_step > bound
    if verdict.rule == "ramp.max_duration":
        assert distance / lim.max_slew * RAMP_MARGIN > RAMP_MAX_SECONDS
    if not verdict.allowed:
        return
    # Allowed: exactly the value asked for, in steps each allowed at its planned time.
    assert plan.steps and plan.steps[-1].request == SetVoltage(net, volts)
    assert len(plan.steps) <= (longest(limits, net) if start.output else 1)
    assert plan.duration <= RAMP_MAX_SECONDS * (1 + 1e-9)
    held, at = state, now
    for step in plan.steps:
        at += step.delay
        assert step.delay >= 0
        problems = transition_violations(limits, held, step.request, at, step.decision.state)
        assert not problems, f"step {step.request} allowed but: {problems}"
        held = step.decision.state
    assert held == plan.state
    assert at - now == pytest.approx(plan.duration)


def plan_property(planner, examples: int, *, derandomize: bool = False):
    @settings(
        max_examples=examples,
        phases=[Phase.explicit, Phase.generate] if derandomize else list(Phase),
        report_multiple_bugs=False,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        database=None,
        derandomize=derandomize,
    )
    @given(plan_scenarios())
    def prop(scenario):
        check_plan(planner, *scenario)

    return prop


def test_every_voltage_is_planned_in_bounded_work_target_first():
    plan_property(plan_voltage, 400)()


@pytest.mark.parametrize("broken", BROKEN_PLANNERS, ids=lambda f: f.__name__)
def test_the_plan_property_catches_broken_planner(broken):
    with pytest.raises(AssertionError):
        # A cap far above what a catch takes (see test_limit_engine): only a miss pays it.
        plan_property(broken, 20_000, derandomize=True)()


# --- a ramp under way -------------------------------------------------------------------


@st.composite
def ramps_under_way(draw):
    """A live net, the state a ramp left it in, and the state now (changed or not)."""
    limits = draw(pinned_limits())
    state = draw(reachable_states(limits))
    live = sorted(state.live_nets)
    if not live:
        state = draw(bench_states(limits))
        live = sorted(limits.nets)
    net = draw(st.sampled_from(live))
    left = state.net(net)
    moved = draw(st.booleans())
    if moved:
        changed = draw(
            st.sampled_from(
                [
                    NetState(left.voltage + 1.0, left.current_limit, left.output, left.changed_at),
                    NetState(left.voltage, left.current_limit / 2, left.output, left.changed_at),
                    NetState(left.voltage, left.current_limit, not left.output, left.changed_at),
                    NetState(left.voltage, left.current_limit, left.output, left.changed_at + 1),
                ]
            )
        )
        state = state.with_net(net, changed)
    repinned = draw(st.booleans())
    now_limits = draw(pinned_limits()) if repinned else limits
    volts = draw(st.one_of(targets, st.floats(left.voltage - 1.0, left.voltage + 1.0)))
    now = draw(st.floats(5.0, 60.0))
    return limits, now_limits, left, state, SetVoltage(net, volts), now


def check_continuation(continuation, decided_under, limits, left, state, request, now) -> None:
    decision = continuation(decided_under, limits, left, state, request, now)
    moved = state.net(request.net) != left or limits != decided_under
    if moved:
        assert not decision.verdict.allowed
        assert decision.verdict.rule == "ramp.interrupted"
        assert decision.state is state
    else:
        assert decision == evaluate(limits, state, request, now)


def continuation_property(continuation, examples: int, *, derandomize: bool = False):
    @settings(
        max_examples=examples,
        phases=[Phase.explicit, Phase.generate] if derandomize else list(Phase),
        report_multiple_bugs=False,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        database=None,
        derandomize=derandomize,
    )
    @given(ramps_under_way())
    def prop(scenario):
        check_continuation(continuation, *scenario)

    return prop


def test_a_ramp_goes_on_only_from_where_it_left_its_net():
    continuation_property(continue_ramp, 200)()


@pytest.mark.parametrize("broken", BROKEN_RAMP_CONTINUATIONS, ids=lambda f: f.__name__)
def test_the_continuation_property_catches_broken_continuation(broken):
    with pytest.raises(AssertionError):
        # A cap far above what a catch takes (see test_limit_engine): only a miss pays it.
        continuation_property(broken, 3_000, derandomize=True)()


# --- ramp_steps on its own ----------------------------------------------------------------

VBUS = NetLimits(
    net="VBUS",
    min_voltage=0.0,
    max_voltage=25.0,
    max_current=0.5,
    max_slew=40.0,
    max_step=4.0,
    readback_absolute=0.02,
    readback_relative=0.005,
    settle_time=0.1,
    live_min_current=0.02,
    live_max_current=0.3,
    safe_to_mate=SafeToMate(100.0, 140.0, 0.5),
)


@settings(max_examples=300, deadline=None, database=None)
@given(start=st.floats(), target=st.floats(), max_step=st.floats(min_value=5e-324))
@example(start=0.0, target=1e308, max_step=4.0)
@example(start=5.0, target=-1e308, max_step=5.5)
@example(start=0.0, target=3e7, max_step=5.5)
@example(start=4.0, target=14.0, max_step=0.01)
@example(start=0.0, target=5e-324, max_step=5e-324)
@example(start=-0.0, target=0.0, max_step=1.0)
def test_ramp_steps_are_bounded_or_an_error_never_a_runaway(start, target, max_step):
    net = replace(VBUS, max_step=max_step)
    started = time.perf_counter()
    try:
        steps = ramp_steps(net, start, target)
    except ValueError:
        assert not abs(target - start) / max_step <= RAMP_MAX_STEPS
        return
    finally:
        assert time.perf_counter() - started < RUNAWAY_S
    if target == start:
        assert steps == []
        return
    assert len(steps) <= RAMP_MAX_STEPS + 2
    assert steps[-1] == target


# --- the shipped profile, at values no one would type --------------------------------------


@pytest.fixture(scope="module")
def shipped():
    from interlock.config import load_configuration

    limits = load_configuration().limits
    state, now = SAFE_STATE, 0.0
    for request in (
        SetVoltage("VLOGIC", 5.0),
        SetCurrentLimit("VLOGIC", 0.3),
        SetOutput("VLOGIC", True),
        SetVoltage("VBUS", 4.0),
        SetCurrentLimit("VBUS", 0.3),
        SetOutput("VBUS", True),
    ):
        decision = evaluate(limits, state, request, now)
        assert decision.verdict.allowed, decision.verdict
        state, now = decision.state, now + 1.0
    return limits, state


@settings(max_examples=200, deadline=None, database=None)
@given(volts=targets, net=st.sampled_from(["VLOGIC", "VBUS", "MOTOR"]))
@example(volts=1e308, net="VLOGIC")
@example(volts=-1e308, net="VBUS")
@example(volts=5e-324, net="VBUS")
@example(volts=-0.0, net="VBUS")
@example(volts=3e7, net="VLOGIC")
@example(volts=1e12, net="MOTOR")
def test_any_float_on_the_shipped_profile_is_answered_at_once(shipped, volts, net):
    limits, state = shipped
    check_plan(plan_voltage, limits, state, SetVoltage(net, volts), 100.0)
    for request in (SetVoltage(net, volts), SetCurrentLimit(net, volts)):
        decision = evaluate(limits, state, request, 100.0)
        assert decision.verdict.allowed or decision.verdict.rule


def test_an_absurd_target_on_a_live_net_names_the_limit_not_a_step(shipped):
    limits, state = shipped
    plan = plan_voltage(limits, state, SetVoltage("VLOGIC", 3e7), 100.0)
    assert plan.verdict.rule == "nets.VLOGIC.max_voltage"
    assert plan.verdict.where == "profiles/mdb24.toml: nets.VLOGIC.max_voltage"
    assert plan.verdict.reason == "3e+07 V is above the maximum of 5.5 V"


def test_a_tiny_max_step_is_refused_by_its_own_rule_naming_the_key(shipped):
    limits, state = shipped
    nets = {**limits.nets, "VBUS": replace(limits.nets["VBUS"], max_step=1e-6)}
    plan = plan_voltage(replace(limits, nets=nets), state, SetVoltage("VBUS", 24.0), 100.0)
    assert plan.verdict.rule == "ramp.max_steps"
    assert "profiles/mdb24.toml: nets.VBUS.max_step" in plan.verdict.reason
    assert "2e+07 steps" in plan.verdict.reason or "20000000 steps" in plan.verdict.reason


def test_a_tiny_max_slew_is_refused_by_its_own_rule(shipped):
    limits, state = shipped
    nets = {**limits.nets, "VBUS": replace(limits.nets["VBUS"], max_slew=1e-300)}
    plan = plan_voltage(replace(limits, nets=nets), state, SetVoltage("VBUS", 8.0), 100.0)
    assert plan.verdict.rule == "ramp.max_duration"
    assert "profiles/mdb24.toml: nets.VBUS.max_slew" in plan.verdict.reason


def test_a_start_outside_the_range_is_bounded_by_the_profile(shipped):
    """A commanded state outside the net's range (none the engine allows): the plan back
    would be longer than any legal ramp, and the profile's bound says so."""
    limits, state = shipped
    state = state.with_net("VBUS", NetState(1e6, 0.3, True, 0.0))
    plan = plan_voltage(limits, state, SetVoltage("VBUS", 24.0), 100.0)
    assert plan.verdict.rule == "ramp.max_steps"
    assert plan.verdict.where == "profiles/mdb24.toml: nets.VBUS.max_step"
    assert "more than the 7 that any ramp inside" in plan.verdict.reason


def test_a_step_whose_wait_is_below_the_clocks_resolution_is_planned_a_tick_later(shipped):
    """A step's wait that the clock cannot hold (100.0 + 2e-17 == 100.0): planned at the
    time of the last change, the step would be refused by its own slew check."""
    limits, state = shipped
    for start, target in ((4.0, 4.0 + 1e-15), (0.0, 1e-283)):
        moved = evaluate(limits, state, SetVoltage("VLOGIC", start), 100.0).state
        plan = plan_voltage(limits, moved, SetVoltage("VLOGIC", target), 100.0)
        assert plan.verdict.allowed, plan.verdict
        assert plan.duration > 0
