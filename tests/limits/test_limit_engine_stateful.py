"""Stateful exploration: no sequence of requests, from the safe state, ever
leads the commanded state outside the limits or breaks a rule."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from interlock.limits import SAFE_STATE, SetVoltage, evaluate, ramp_steps, step_interval

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
        """A ramp planned by the engine's helper is accepted step by step when spaced right."""
        live = [n for n in self.state.live_nets if n in self.limits.nets]
        if not live:
            return
        net = data.draw(st.sampled_from(sorted(live)))
        limits = self.limits.nets[net]
        target = data.draw(st.floats(limits.min_voltage, limits.max_voltage))
        previous = self.state.net(net).voltage
        for step in ramp_steps(limits, previous, target):
            assert abs(step - previous) <= limits.max_step * (1 + 1e-9)
            self.now += step_interval(limits, step - previous) * 1.001 + 1e-9
            decision = evaluate(self.limits, self.state, SetVoltage(net, step), self.now)
            if not decision.verdict.allowed:
                # Only whole-state rules (power, relays) may stop a well-spaced ramp.
                assert not decision.verdict.rule.endswith(("max_step", "max_slew")), decision
                return
            self.state = decision.state
            previous = step

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
