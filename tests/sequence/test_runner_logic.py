"""The runner's decisions, on a fake target whose interlock is the pure limit engine (fast)."""

from __future__ import annotations

import math
import signal

import pytest

from interlock.config import load_configuration
from interlock.errors import FaultLatched, InstrumentError, LimitViolation
from interlock.interrupts import Interrupted, Stops
from interlock.limits import SetCurrentLimit, SetOutput, SetRelay, SetVoltage, describe, evaluate
from interlock.sequence import SequenceRunner, armed_state, bind, load_sequence
from interlock.sequence.dryrun import ALLOWED_UNEXPECTEDLY
from interlock.sequence.runner import FAIL, FAULT, PASS
from tests.sequence.conftest import ROOT_BENCH

LIVE = """
[[steps]]
action = "set"
net = "VLOGIC"
voltage = "5 V"
[[steps]]
action = "output"
net = "VLOGIC"
state = "on"
[[steps]]
action = "set"
net = "VBUS"
voltage = "4 V"
[[steps]]
action = "output"
net = "VBUS"
state = "on"
[[steps]]
action = "output"
net = "MOTOR"
state = "on"
"""


class FakeTarget:
    """An interlock with no instruments: the limit engine decides, calls are recorded."""

    def __init__(self, configuration, readings=None):
        self.limits = configuration.limits
        self.wiring = configuration.bench.wiring
        self.state = armed_state(configuration)
        self.armed = False
        self.fault = None
        self.now = 0.0
        self.calls: list[str] = []
        self.notes: list[tuple[int | None, str]] = []
        self.readings = readings or {}
        self.fail_on: str | None = None  # a call (by its description) that raises
        self.fault_after: int | None = None  # status() calls before a fault appears

    def _do(self, request):
        text = describe(request)
        if self.fault:
            raise FaultLatched(self.fault)
        if self.fail_on and self.fail_on in text:
            raise InstrumentError("psu", f"no answer to {text}")
        self.now += 10.0  # every request long after the last: slew never matters here
        decision = evaluate(self.limits, self.state, request, self.now)
        if not decision.verdict.allowed:
            v = decision.verdict
            raise LimitViolation(v.reason, v.rule, v.where)
        self.state = decision.state
        self.calls.append(text)

    def arm(self, operator):
        self.armed = True
        self.calls.append("arm")

    def disarm(self, operator):
        self.armed = False
        self.calls.append("disarm")

    def set_voltage(self, net, volts):
        self._do(SetVoltage(net, volts))

    def set_current_limit(self, net, amps):
        self._do(SetCurrentLimit(net, amps))

    def set_relay(self, relay, closed):
        self._do(SetRelay(relay, closed))

    def output_on(self, net):
        self._do(SetRelay(self.wiring[net].power_relay, True))
        self._do(SetOutput(net, True))

    def output_off(self, net):
        self._do(SetOutput(net, False))

    def measure(self, net):
        return self.readings.get(net, {"voltage": self.state.net(net).voltage, "current": 0.1})

    def status(self):
        if self.fault_after is not None:
            self.fault_after -= 1
            if self.fault_after < 0:
                self.fault = "monitor: VBUS: regulation lost"
        live = self.state.live_nets
        return {
            "bench": "fake",
            "state": "fault"
            if self.fault
            else "live"
            if live
            else "armed"
            if self.armed
            else "safe",
            "fault": self.fault,
            "nets": {
                net: {
                    "output": s.output,
                    "setpoint": s.voltage,
                    "current_limit": s.current_limit,
                    "measured": None,
                }
                for net, s in self.state.nets.items()
            },
            "relays": {r: r in self.state.closed_relays for r in sorted(self.limits.relays)},
        }

    def note(self, text, step=None):
        self.notes.append((step, text))

    def safe_state(self, reason):
        self.calls.append("safe state")
        self.fault = self.fault or f"estop: {reason}"


@pytest.fixture(scope="module")
def configuration():
    return load_configuration(ROOT_BENCH)


def runner_for(write_sequence, configuration, steps, target, **options):
    sequence = bind(load_sequence(write_sequence(steps)), configuration)
    runner = SequenceRunner(
        sequence,
        configuration,
        target,
        operator="tester",
        confirm=lambda step: True,
        sleep=lambda seconds: None,
        **options,
    )
    runner.preflight = lambda: None  # what happens when the bench disagrees with the dry run
    return runner


def test_live_nets_left_by_a_sequence_are_powered_down_in_order(write_sequence, configuration):
    target = FakeTarget(configuration)
    report = runner_for(write_sequence, configuration, LIVE, target).run()
    assert report.exit_code == 0
    tail = target.calls[target.calls.index("turn MOTOR output on") + 1 :]
    # Power-off order; the bus may only change once the winding's relay is open.
    assert tail == [
        "turn MOTOR output off",
        "open relay K3",
        "turn VBUS output off",
        "turn VLOGIC output off",
        "open relay K1",
        "open relay K2",
        "disarm",
    ]


def test_a_step_expected_refused_but_allowed_stops_the_run(write_sequence, configuration):
    steps = LIVE + '[[steps]]\naction = "relay"\nrelay = "K8"\nstate = "closed"\n'
    steps += 'expect = "refused"\n[[steps]]\naction = "wait"\nduration = "1 s"\n'
    target = FakeTarget(configuration)
    report = runner_for(write_sequence, configuration, steps, target).run()
    assert report.exit_code == 3
    assert report.results[-1].outcome == ALLOWED_UNEXPECTEDLY
    assert report.results[-1].verdict.rule == "sequence.expect"
    assert "open relay K8" in target.calls  # opened again at the end


@pytest.mark.parametrize(
    ("reading", "outcome"),
    [(5.0, PASS), (4.8, FAIL), (math.nan, FAIL), (math.inf, FAIL), (5.1, PASS), (4.9, PASS)],
)
def test_measurements_pass_only_inside_their_window(
    write_sequence, configuration, reading, outcome
):
    steps = LIVE[: LIVE.index('[[steps]]\naction = "set"\nnet = "VBUS"')]
    steps += '[[steps]]\naction = "measure"\nnet = "VLOGIC"\nquantity = "voltage"\n'
    steps += 'min = "4.9 V"\nmax = "5.1 V"\n'
    target = FakeTarget(configuration, readings={"VLOGIC": {"voltage": reading, "current": 0.1}})
    report = runner_for(write_sequence, configuration, steps, target).run()
    assert report.results[-1].outcome == outcome
    assert report.exit_code == (0 if outcome == PASS else 1)


def test_a_fault_during_a_wait_ends_it(write_sequence, configuration):
    steps = LIVE + '[[steps]]\naction = "wait"\nduration = "1 h"\n'
    target = FakeTarget(configuration)
    target.fault_after = 40  # status() calls: a few per step, then the wait's polls
    clock = iter(range(10**6))
    runner = runner_for(
        write_sequence, configuration, steps, target, clock=lambda: float(next(clock))
    )
    report = runner.run()
    assert report.exit_code == 4
    assert report.results[-1].outcome == FAULT
    assert "during the wait" in report.results[-1].detail
    assert report.fault == "monitor: VBUS: regulation lost"


def test_an_instrument_error_is_a_fault(write_sequence, configuration):
    target = FakeTarget(configuration)
    target.fail_on = "turn MOTOR output on"
    report = runner_for(write_sequence, configuration, LIVE, target).run()
    assert report.exit_code == 4
    assert report.results[-1].outcome == FAULT
    assert "InstrumentError: psu: no answer to turn MOTOR output on" in report.results[-1].detail


def test_a_failed_power_down_forces_the_safe_state(write_sequence, configuration):
    target = FakeTarget(configuration)
    target.fail_on = "turn VLOGIC output off"
    report = runner_for(write_sequence, configuration, LIVE, target).run()
    assert [r.outcome for r in report.results] == ["ok"] * 5
    assert target.calls[-1] == "safe state"
    assert report.safe_state_forced == "InstrumentError: psu: no answer to turn VLOGIC output off"
    assert report.fault and report.exit_code == 4


class Signalling(FakeTarget):
    """A fake target that receives a signal in the middle of one of its calls."""

    def __init__(self, configuration, stops, during: str, sig=signal.SIGTERM):
        super().__init__(configuration)
        self.stops, self.during, self.sig = stops, during, sig

    def _do(self, request):
        if describe(request) == self.during:
            self.stops.handle(self.sig, None)  # as the handler runs: mid-request
        return super()._do(request)


def test_a_signal_during_a_request_stops_the_run_once_it_is_done_and_powers_down(
    write_sequence, configuration
):
    """The request under way when SIGTERM comes is carried out and answered; the run stops
    before the next step, and the power-down sees the net that request turned on."""
    stops = Stops()
    target = Signalling(configuration, stops, "turn VLOGIC output on")
    report = runner_for(write_sequence, configuration, LIVE, target, stops=stops).run()
    assert [r.outcome for r in report.results] == ["ok", "ok"]  # VBUS never set
    assert (report.interrupted, report.interrupted_by, report.exit_code) == (True, "SIGTERM", 130)
    assert target.calls[target.calls.index("turn VLOGIC output on") + 1 :] == [
        "turn VLOGIC output off",
        "open relay K1",
        "disarm",
    ]  # through the interlock: no safe state forced
    assert report.safe_state_forced is None


def test_a_signal_during_the_power_down_does_not_cut_it_short(write_sequence, configuration):
    stops = Stops()
    target = Signalling(configuration, stops, "turn VBUS output off")
    report = runner_for(write_sequence, configuration, LIVE, target, stops=stops).run()
    assert report.exit_code == 0 and not report.interrupted  # every step had run
    assert target.calls[-1] == "disarm" and report.safe_state_forced is None


def test_a_signal_during_a_wait_ends_it_at_once(write_sequence, configuration):
    stops = Stops()
    target = FakeTarget(configuration)
    steps = LIVE.split("[[steps]]")
    sequence = "[[steps]]".join(steps[:3]) + (
        '[[steps]]\naction = "wait"\nduration = "10 s"\n[[steps]]' + steps[3]
    )

    def sleep(seconds: float) -> None:
        stops.handle(signal.SIGHUP, None)  # the wait is where a signal interrupts at once

    runner = runner_for(write_sequence, configuration, sequence, target, stops=stops)
    runner.sleep = sleep
    report = runner.run()
    assert [r.step.action for r in report.results] == ["set", "output"]  # the wait cut short
    assert report.interrupted_by == "SIGHUP"
    assert target.calls[-1] == "disarm" and report.safe_state_forced is None


def test_a_signal_before_the_run_arms_nothing(write_sequence, configuration):
    """SIGTERM while the service started or the lease was taken: nothing is armed."""
    stops = Stops()
    stops.handle(signal.SIGTERM, None)  # noted: nothing was interruptible yet
    target = FakeTarget(configuration)
    runner = runner_for(write_sequence, configuration, LIVE, target, stops=stops)
    with pytest.raises(Interrupted):
        runner.run()
    assert target.calls == [] and not target.armed
