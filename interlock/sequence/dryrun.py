"""The dry run: every step checked against the pinned limits, nothing sent.

The commanded state is carried forward with the pure limit engine, starting
from what :meth:`Controller.arm` leaves (every net at 0 V with its current
limit at the profile's ``max_current``, outputs off, relays open). Each step
is turned into exactly the requests the controller would make for it:

- a voltage is planned by the engine's :func:`~interlock.limits.ramps.plan_voltage`,
  as the controller plans it: the target checked first, a ramp on a live net
  bounded, then its steps (at most ``max_step``, ``step_interval`` apart), the
  whole refused if any step is refused, as the controller refuses it before
  sending the first;
- going live first opens the net's power relay if closed, measures the
  DUT's identity again when no net is live yet (closes and opens the ID
  net's sense relay), closes and opens its sense relay (safe-to-mate),
  closes the power relay, then turns the output on and waits the settle time;
- a wait advances the clock.

One check is a measurement-time rule's, predicted: a live net at 0 V draws
no current, so the controller's monitor would certainly trip on its current
window; the dry run refuses it under ``nets.NET.live_min_current``, as the
engine's :func:`~interlock.limits.measurements.check_live_at_zero` says.

The clock is simulated, so slew checks see the time the real run would
take, and the dry run itself takes none. No instrument, simulator or
service is touched: this module imports nothing that does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from interlock.config import Configuration
from interlock.limits import (
    ALLOWED,
    BUILT_IN,
    BenchState,
    NetState,
    Request,
    SetCurrentLimit,
    SetOutput,
    SetRelay,
    SetVoltage,
    Verdict,
    describe,
    evaluate,
)
from interlock.limits.measurements import check_live_at_zero
from interlock.limits.ramps import plan_voltage
from interlock.sequence.model import Sequence, Step

OK = "ok"
REFUSED = "refused"  # a violation: the run would stop here
REFUSED_AS_EXPECTED = "refused as expected"
ALLOWED_UNEXPECTEDLY = "allowed, expected refused"  # a violation too


@dataclass(frozen=True)
class StepCheck:
    """What the dry run found for one step."""

    step: Step
    outcome: str
    verdict: Verdict  # the interlock's verdict (ALLOWED for steps that ask for nothing)
    at: float  # simulated seconds since arming when the step starts

    @property
    def is_violation(self) -> bool:
        return self.outcome in (REFUSED, ALLOWED_UNEXPECTEDLY)


@dataclass
class DryRunReport:
    sequence: Sequence
    checks: list[StepCheck] = field(default_factory=list)
    duration: float = 0.0  # simulated seconds the steps would take, at least

    @property
    def violations(self) -> list[StepCheck]:
        return [check for check in self.checks if check.is_violation]

    @property
    def expected_refusals(self) -> list[StepCheck]:
        return [check for check in self.checks if check.outcome == REFUSED_AS_EXPECTED]

    @property
    def ok(self) -> bool:
        return not self.violations


def armed_state(configuration: Configuration) -> BenchState:
    """What Controller.arm leaves: 0 V, current limit at max_current, all off, relays open."""
    return BenchState(
        nets={
            net: NetState(voltage=0.0, current_limit=limits.max_current)
            for net, limits in configuration.limits.nets.items()
        }
    )


class CommandedBench:
    """The commanded state and a simulated clock, moved only by the limit engine."""

    def __init__(
        self, configuration: Configuration, state: BenchState | None = None, now: float = 0.0
    ) -> None:
        self.configuration = configuration
        self.limits = configuration.limits
        self.state = armed_state(configuration) if state is None else state
        self.now = now

    def apply(self, step: Step) -> Verdict:
        """Check one step; if allowed, carry the state (and clock) forward."""
        match step.action:
            case "set" if step.current_limit is not None:
                return self._all_at_once([SetCurrentLimit(step.net, step.current_limit)])
            case "set" | "ramp":
                return self._set_voltage(step.net, step.voltage)
            case "relay":
                return self._all_at_once([SetRelay(step.relay, bool(step.closed))])
            case "output" if step.on:
                return self._go_live(step.net)
            case "output":
                return self._all_at_once([SetOutput(step.net, False)])
            case "wait":
                self.now += step.duration or 0.0
        return ALLOWED

    def _all_at_once(self, requests: list[Request], settle: float = 0.0) -> Verdict:
        """Requests made one after the other; the first refusal refuses them all."""
        planned = self.state
        for request in requests:
            decision = evaluate(self.limits, planned, request, self.now)
            if not decision.verdict.allowed:
                return decision.verdict
            planned = decision.state
        self.state = planned
        self.now += settle
        return ALLOWED

    def _set_voltage(self, net: str, volts: float) -> Verdict:
        plan = plan_voltage(self.limits, self.state, SetVoltage(net, volts), self.now)
        if not plan.verdict.allowed:
            return plan.verdict
        verdict = self._dead_live_net(plan.state, net)
        if not verdict.allowed:
            return verdict
        self.state, self.now = plan.state, self.now + plan.duration
        return ALLOWED

    def _dead_live_net(self, state: BenchState, net: str) -> Verdict:
        """The engine's prediction of the monitor's current window for a live net at
        0 V, as a refusal: a real run would find out the hard way."""
        finding = check_live_at_zero(self.limits, state, net)
        if finding is None:
            return ALLOWED
        return Verdict(False, finding.rule, finding.where, finding.problem)

    def _go_live(self, net: str) -> Verdict:
        verdict = evaluate(self.limits, self.state, SetOutput(net, True), self.now).verdict
        if not verdict.allowed or self.state.net(net).output:
            return verdict
        wiring = self.configuration.bench.wiring.get(net)
        if wiring is None or wiring.power_relay is None:
            return Verdict(False, "wiring", BUILT_IN, f"{net} has no power relay on this bench")
        requests: list[Request] = []
        if wiring.power_relay in self.state.closed_relays:
            requests.append(SetRelay(wiring.power_relay, False))
        identity = self.configuration.profile.identity
        if identity is not None and not self.state.live_nets:
            # The first net to go live has the DUT's identity measured again first.
            id_wiring = self.configuration.bench.wiring.get(identity.net)
            if id_wiring is not None and id_wiring.sense_relay is not None:
                requests += [
                    SetRelay(id_wiring.sense_relay, True),
                    SetRelay(id_wiring.sense_relay, False),
                ]
        if wiring.sense_relay is not None:  # safe-to-mate routes the meter to the net
            requests += [SetRelay(wiring.sense_relay, True), SetRelay(wiring.sense_relay, False)]
        requests += [SetRelay(wiring.power_relay, True), SetOutput(net, True)]
        planned = self.state
        for request in requests:
            decision = evaluate(self.limits, planned, request, self.now)
            if not decision.verdict.allowed:
                return replace(
                    decision.verdict,
                    reason=f"{decision.verdict.reason} (going live: {describe(request)})",
                )
            planned = decision.state
        verdict = self._dead_live_net(planned, net)
        if not verdict.allowed:
            return verdict
        self.state = planned
        self.now += self.limits.nets[net].settle_time
        return ALLOWED


def judge(step: Step, verdict: Verdict, sequence: Sequence) -> tuple[str, Verdict]:
    """The outcome of a step given the interlock's verdict and what the sequence expects."""
    if verdict.allowed and step.expect_refused:
        return ALLOWED_UNEXPECTEDLY, Verdict(
            False,
            "sequence.expect",
            sequence.where(f"{step.key}.expect"),
            "the sequence expects the interlock to refuse this step, but it is allowed: "
            "the sequence or the profile is not what its author thought",
        )
    if verdict.allowed:
        return OK, verdict
    return (REFUSED_AS_EXPECTED if step.expect_refused else REFUSED), verdict


def dry_run(sequence: Sequence, configuration: Configuration) -> DryRunReport:
    """Check every step of a bound sequence; list every violation. Sends nothing.

    After a refused step the state is left as it was (the interlock changes
    nothing it refuses) and checking goes on, so one dry run shows them all.
    """
    bench = CommandedBench(configuration)
    report = DryRunReport(sequence)
    for step in sequence.steps:
        at = bench.now
        outcome, verdict = judge(step, bench.apply(step), sequence)
        report.checks.append(StepCheck(step, outcome, verdict, at))
    report.duration = bench.now
    return report
