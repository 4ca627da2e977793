"""Stateful exploration: no sequence of requests, from the safe state, ever
leads the commanded state outside the limits or breaks a rule."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from interlock.limits import SAFE_STATE, SetVoltage, evaluate
from interlock.limits.ramps import plan_voltage

from .strategies import pinned_limits, requests, state_violations, transition_violations


class LimitEngineMachine(RuleBasedStateMachine):
    @initialize(limits=pinned_limits())
    def pin(self, limits):
        self.limits = limits
        self.state = SAFE_STATE
        self.now = 0.0

    @rule(data=st.data(), wait=st.floats(0.0, 2.0))
    def request(self, data, wait):
        self.now += wait
        request = data.draw(requests(self.limits, self.state))
        decision = evaluate(self.limits, self.state, request, self.now)
        if decision.verdict.allowed:
            problems = transition_violations(
                self.limits, self.state, request, self.now, decision.state
            )
            assert not problems, f"allowed {request}: {problems}"
        else:
            assert decision.verdict.rule and decision.verdict.where
        self.state = decision.state

    @rule(data=st.data())
    def ramp(self, data):
        """A ramp planned by the engine is accepted step by step at its planned times."""
        live = [n for n in self.state.live_nets if n in self.limits.nets]
        if not live:
            return
        net = data.draw(st.sampled_from(sorted(live)))
        limits = self.limits.nets[net]
        target = data.draw(st.floats(limits.min_voltage, limits.max_voltage))
        plan = plan_voltage(self.limits, self.state, SetVoltage(net, target), self.now)
        if not plan.verdict.allowed:
            # Only whole-state rules (power, relays) and the plan's bounds may refuse a
            # ramp inside the net's range: never its own steps.
            assert not plan.verdict.rule.endswith(("max_step", "max_slew")), plan.verdict
            return
        previous = self.state.net(net).voltage
        for step in plan.steps:
            assert abs(step.request.volts - previous) <= limits.max_step
            self.now += step.delay
            decision = evaluate(self.limits, self.state, step.request, self.now)
            assert decision.verdict.allowed, decision.verdict
            self.state, previous = decision.state, step.request.volts
        assert self.state.net(net).voltage == target

    @invariant()
    def state_within_limits(self):
        if hasattr(self, "state"):
            assert not state_violations(self.limits, self.state)


LimitEngineMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_limit_engine_stateful = LimitEngineMachine.TestCase
