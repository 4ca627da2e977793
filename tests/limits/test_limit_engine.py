"""Property tests of the pure limit engine, and proof that they catch broken engines."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from interlock.limits import (
    SAFE_STATE,
    BenchState,
    SetCurrentLimit,
    SetOutput,
    SetRelay,
    SetVoltage,
    apply,
    evaluate,
)

from .broken_engines import BROKEN_ENGINES
from .strategies import bench_states, pinned_limits, requests, transition_violations


@st.composite
def scenarios(draw):
    limits = draw(pinned_limits())
    state = draw(st.one_of(bench_states(limits), st.just(SAFE_STATE)))
    request = draw(requests(limits, state))
    now = draw(st.floats(5.0, 30.0))
    return limits, state, request, now


def check_engine(engine, limits, state, request, now) -> None:
    decision = engine(limits, state, request, now)
    verdict = decision.verdict
    if verdict.allowed:
        problems = transition_violations(limits, state, request, now, decision.state)
        assert not problems, f"allowed {request} but: {problems}"
    else:
        # Every refusal names its rule and where it is defined, and changes nothing.
        assert verdict.rule and verdict.where and verdict.reason
        assert decision.state == state
        # ...and is needed: had the change been made, some rule would be broken.
        problems = transition_violations(limits, state, request, now, apply(state, request, now))
        assert problems, f"refused {request} by {verdict.rule} but no rule is broken"


def make_property(engine, examples: int, shrink: bool = True, derandomize: bool = False):
    phases = list(Phase) if shrink else [Phase.explicit, Phase.generate]

    @settings(
        max_examples=examples,
        phases=phases,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        database=None,
        derandomize=derandomize,
    )
    @given(scenarios())
    def prop(scenario):
        check_engine(engine, *scenario)

    return prop


def test_engine_allows_only_safe_changes_and_refuses_only_unsafe_ones():
    make_property(evaluate, 2000)()


@pytest.mark.parametrize("broken", BROKEN_ENGINES, ids=lambda f: f.__name__)
def test_property_catches_broken_engine(broken):
    with pytest.raises(AssertionError):
        # No shrinking: finding the counter-example is the point, not minimising it.
        # The cap is far above what a catch takes: a fixed seed does not fix the
        # examples (hypothesis also draws on constants of the modules loaded so far,
        # which the order of the tests changes), and power_order_ignored took from 28
        # to 2,700 examples over 40 seeds (about 1 run in 30 missed it at 3,000). A
        # caught engine stops at its catch, so the cap costs only a miss.
        make_property(broken, 20_000, shrink=False, derandomize=True)()


# --- examples against the shipped profile -------------------------------------------------


@pytest.fixture(scope="module")
def limits():
    from interlock.config import load_configuration

    return load_configuration().limits


def live(limits, *steps, now=100.0, state=SAFE_STATE):
    for request in steps:
        decision = evaluate(limits, state, request, now)
        assert decision.verdict.allowed, decision.verdict
        state = decision.state
    return state


def test_over_voltage_refused_with_rule_and_place(limits):
    verdict = evaluate(limits, SAFE_STATE, SetVoltage("VBUS", 26.0), 0.0).verdict
    assert not verdict.allowed
    assert verdict.rule == "nets.VBUS.max_voltage"
    assert verdict.where == "profiles/mdb24.toml: nets.VBUS.max_voltage"
    assert "26 V is above the maximum of 25 V" in verdict.reason


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_refused(limits, value):
    for request in (SetVoltage("VBUS", value), SetCurrentLimit("VBUS", value)):
        assert evaluate(limits, SAFE_STATE, request, 0.0).verdict.rule == "finite-value"


def test_negative_refused(limits):
    assert not evaluate(limits, SAFE_STATE, SetVoltage("VBUS", -0.1), 0.0).verdict.allowed
    assert not evaluate(limits, SAFE_STATE, SetCurrentLimit("VBUS", -0.1), 0.0).verdict.allowed


def test_unknown_targets_refused(limits):
    assert evaluate(limits, SAFE_STATE, SetVoltage("VBAT", 1.0), 0.0).verdict.rule == "nets"
    assert evaluate(limits, SAFE_STATE, SetRelay("K42", True), 0.0).verdict.rule == "relays"


def test_dmm_routes_never_together(limits):
    state = live(limits, SetRelay("K4", True))
    verdict = evaluate(limits, state, SetRelay("K5", True), 0.0).verdict
    assert verdict.rule == "rules.never_together[0]"
    assert "K4 and K5" in verdict.reason


def test_bus_cannot_change_with_winding_connected(limits):
    state = live(limits, SetRelay("K3", True))
    verdict = evaluate(limits, state, SetVoltage("VBUS", 1.0), 0.0).verdict
    assert verdict.rule == "rules.open_before_change[0]"


def test_power_on_order_and_soft_start(limits):
    state = live(limits, SetVoltage("VBUS", 4.0), SetCurrentLimit("VBUS", 0.3))
    verdict = evaluate(limits, state, SetOutput("VBUS", True), 0.0).verdict
    assert verdict.rule == "sequencing.power_on"  # VLOGIC must be up first
    state = live(limits, SetVoltage("VBUS", 24.0), SetCurrentLimit("VBUS", 0.3))
    state = live(
        limits, SetVoltage("VLOGIC", 5.0), SetCurrentLimit("VLOGIC", 0.3), SetOutput("VLOGIC", True)
    )
    state = evaluate(limits, state, SetVoltage("VBUS", 24.0), 0.0).state
    state = evaluate(limits, state, SetCurrentLimit("VBUS", 0.3), 0.0).state
    verdict = evaluate(limits, state, SetOutput("VBUS", True), 0.0).verdict
    assert verdict.rule == "nets.VBUS.max_step"  # would jump from 0 V to 24 V


def test_live_step_must_be_ramped_at_slew(limits):
    state = live(
        limits,
        SetVoltage("VLOGIC", 5.0),
        SetCurrentLimit("VLOGIC", 0.3),
        SetOutput("VLOGIC", True),
        SetVoltage("VBUS", 4.0),
        SetCurrentLimit("VBUS", 0.3),
        SetOutput("VBUS", True),
        now=10.0,
    )
    too_big = evaluate(limits, state, SetVoltage("VBUS", 9.0), 20.0).verdict
    assert too_big.rule == "nets.VBUS.max_step"
    too_fast = evaluate(limits, state, SetVoltage("VBUS", 8.0), 10.05).verdict
    assert too_fast.rule == "nets.VBUS.max_slew"  # 4 V in 50 ms is 80 V/s
    assert evaluate(limits, state, SetVoltage("VBUS", 8.0), 10.11).verdict.allowed


def test_total_power_checked_on_whole_state(limits):
    state = live(
        limits,
        SetVoltage("VLOGIC", 5.0),
        SetCurrentLimit("VLOGIC", 0.4),
        SetOutput("VLOGIC", True),
        SetVoltage("VBUS", 4.0),
        SetCurrentLimit("VBUS", 0.5),
        SetOutput("VBUS", True),
        now=0.0,
    )
    for i, volts in enumerate((8.0, 12.0, 16.0, 20.0, 24.0), start=1):
        state = live(limits, SetVoltage("VBUS", volts), now=float(i), state=state)  # 4 V/s
    state = evaluate(limits, state, SetVoltage("VBUS", 24.0), 10.0).state
    assert state.net("VBUS").voltage == 24.0  # 2 W + 12 W live
    state = live(
        limits,
        SetVoltage("MOTOR", 3.0),
        SetCurrentLimit("MOTOR", 0.6),
        SetOutput("MOTOR", True),
        now=20.0,
        state=state,
    )
    state = evaluate(limits, state, SetVoltage("MOTOR", 6.0), 21.0).state
    assert state.net("MOTOR").voltage == 6.0  # 17.6 W
    # 9 V is well inside MOTOR's own limit (12 V), but the whole bench would draw 19.4 W.
    verdict = evaluate(limits, state, SetVoltage("MOTOR", 9.0), 22.0).verdict
    assert verdict.rule == "rules.max_total_power"
    assert "19.4 W" in verdict.reason


def test_power_relay_not_switched_under_load(limits):
    state = live(
        limits,
        SetRelay("K1", True),
        SetVoltage("VLOGIC", 5.0),
        SetCurrentLimit("VLOGIC", 0.3),
        SetOutput("VLOGIC", True),
    )
    assert evaluate(limits, state, SetRelay("K1", False), 0.0).verdict.rule == "hot-switch"


def test_refusal_leaves_state_unchanged(limits):
    state = BenchState()
    decision = evaluate(limits, state, SetVoltage("VBUS", 99.0), 0.0)
    assert decision.state is state


def test_the_state_says_when_an_output_last_went_on_apart_from_setpoint_changes():
    """``on_at`` moves only when an output goes from off to on; ``changed_at`` also moves
    with every live setpoint change (the monitor tells the two apart)."""
    from interlock.limits import BenchState, NetState
    from interlock.limits.requests import apply

    state = BenchState(nets={"N": NetState(voltage=1.0, current_limit=0.1)})
    on = apply(state, SetOutput("N", True), 10.0).net("N")
    assert (on.on_at, on.changed_at) == (10.0, 10.0)
    stepped = apply(state.with_net("N", on), SetVoltage("N", 1.5), 11.0).net("N")
    assert (stepped.on_at, stepped.changed_at) == (10.0, 11.0)
    limited = apply(state.with_net("N", stepped), SetCurrentLimit("N", 0.2), 12.0).net("N")
    assert (limited.on_at, limited.changed_at) == (10.0, 11.0)
    again = apply(state.with_net("N", limited), SetOutput("N", True), 13.0).net("N")
    assert again.on_at == 10.0  # already on: not a new turn-on
    off = apply(state.with_net("N", again), SetOutput("N", False), 14.0).net("N")
    back = apply(state.with_net("N", off), SetOutput("N", True), 15.0).net("N")
    assert back.on_at == 15.0
