"""Random sequences of requests (in and out of limits, over the whole float range),
injected faults and operator actions against a controller on the simulated bench.

Most steps happen with a net live: one rule brings nets up in the power-on
order at setpoints inside their live windows (after clearing the simulator's
faults and resetting and arming as needed), values are drawn legal as often as
from the whole float range, and faults are injected while nets are live and in
the middle of ramps.

Invariants, checked against the simulator's ground truth, not against what
the controller believes:

- no DUT net ever sees more than its profile allows (a break-out box rewired
  while live excepted: see :func:`assert_truth_within_limits`);
- no forbidden relay combination is ever closed at the board;
- every line an instrument received had its journal intent written first;
- after any fault, every output is off.

What a run exercised (steps, faults, steps with a net live, refusals by rule) is
counted and printed (``pytest -s``); the run fails if it stopped reaching live
states. ``INTERLOCK_STATEFUL_EXAMPLES`` sets the number of examples of the
default run; the ``slow`` run makes at least 10,000 steps.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from interlock.dialects import dialects
from interlock.errors import FaultLatched, InterlockError, LimitViolation, StateError
from interlock.limits import SetVoltage
from interlock.limits.ramps import plan_voltage
from interlock.sim.bench import SimulatedBench

from .support import (
    ROOT,
    assert_all_outputs_off,
    assert_intents_before_commands,
    assert_no_forbidden_relays,
    close_rig,
    make_rig,
    net_tolerance,
)

NETS = ["VLOGIC", "VBUS", "MOTOR"]  # the profile's power-on order
RELAYS = [f"K{i}" for i in range(1, 9)]
FAULTS = [
    "short:VLOGIC",
    "short:VBUS",
    "open:MOTOR",
    "open:VLOGIC",
    "estop",
    "weld:K3",
    "noise:psu=0.3",
    "ignore-setpoint:psu",
    "swap:VBUS,MOTOR",
    "drop:dmm",
]
# Per net, setpoints and current limits a live net holds without tripping anything:
# inside the profile, inside the current window the monitor expects of the simulated
# DUT's load (VLOGIC 33 ohm, VBUS 120 ohm, MOTOR 24 ohm), and with the current limit
# above what the load draws (a limit below it trips the supply's protection).
LIVE_WINDOW = {
    "VLOGIC": ((2.0, 5.5), (0.25, 0.4)),
    "VBUS": ((3.0, 25.0), (0.25, 0.5)),
    "MOTOR": ((1.5, 9.0), (0.45, 0.6)),
}
UP_AT = {"VLOGIC": 5.0, "VBUS": 4.0, "MOTOR": 3.0}  # going live: at most max_step from 0 V

anything = st.floats()  # NaN, infinities, subnormals, 1e308, -0.0: the whole range


def volts(net: str) -> st.SearchStrategy[float]:
    low, high = LIVE_WINDOW[net][0]
    return st.one_of(st.floats(low, high), st.floats(low, high), anything)


def amps(net: str) -> st.SearchStrategy[float]:
    low, high = LIVE_WINDOW[net][1]
    return st.one_of(st.floats(low, high), st.floats(low, high), anything)


nets = st.sampled_from(NETS)
relays = st.sampled_from(RELAYS)
# Current limits to bring every net up with; a request's bring-up first, or none.
up = st.tuples(*(st.floats(*LIVE_WINDOW[net][1]) for net in NETS))
recover = st.one_of(st.none(), up)


@dataclass
class Tally:
    """What the runs exercised, across every example of one test."""

    steps: int = 0
    live_steps: int = 0  # steps taken with at least one net live
    faults: int = 0  # faults injected into the simulator, and emergency stops
    mid_ramp_faults: int = 0
    trips: int = 0  # steps that ended with the bench tripped
    examples: int = 0
    outcomes: Counter = field(default_factory=Counter)  # refusals by rule, and the rest

    def summary(self) -> str:
        share = self.live_steps / self.steps if self.steps else 0.0
        refusals = ", ".join(f"{rule} {n}" for rule, n in self.outcomes.most_common())
        return (
            f"{self.examples} examples, {self.steps} steps, {self.faults} faults injected "
            f"({self.mid_ramp_faults} mid-ramp), {self.trips} trips, {self.live_steps} steps "
            f"with a net live ({share:.0%}); outcomes: {refusals}"
        )


TALLY = Tally()


def assert_truth_within_limits(rig, rewired: set[tuple[str, str]]) -> None:
    """No DUT net ever saw more than its profile allows (plus the readback tolerance).

    A ``swap`` fault injected with nets live rewires the break-out box behind the
    interlock's back, after safe-to-mate: from then on each net of the pair may be
    fed by the other's supply, at the other's limits (and its protection), which no
    interlock can see. For those two nets the higher of their limits is the bound.
    """
    limits = rig.limits
    for net, record in rig.truth()["nets"].items():
        if net not in limits.nets:
            continue
        feeds = {net} | {a if b == net else b for a, b in rewired if net in (a, b)}
        volts = max(limits.nets[n].max_voltage + net_tolerance(limits, n) for n in feeds)
        amps = max(limits.nets[n].max_current * 1.01 + 1e-3 for n in feeds)
        assert record["max_voltage"] <= volts, f"{net} saw {record['max_voltage']} V"
        assert record["max_current"] <= amps, f"{net} carried {record['max_current']} A"


# Every supply dialect but the default bench's own, which the tests above run on.
OTHER_SUPPLY_DIALECTS = sorted(
    n for n, d in dialects().items() if d.kind == "supply" and n != "keysight-e36300"
)


def _sim_factory(**kwargs):
    sim = SimulatedBench(kwargs.pop("bench"), ports="free", **kwargs)
    sim.start()
    return sim


class ControllerMachine(RuleBasedStateMachine):
    BENCH = ROOT / "bench.toml"  # a subclass swaps the motor net's supply (per dialect)

    # No preconditions on the controller's state: it changes on its own (the
    # monitor trips), and rule choice must not depend on timing. Operator
    # actions are simply attempted; the controller refuses what is not allowed.

    def __init__(self):
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        # Armed by the first step: a trip while arming (the board's watchdog, on a loaded
        # machine) is then one more outcome, not an error of the test.
        self.rig = make_rig(_sim_factory, Path(self.tmp.name), bench=self.BENCH, arm=False)
        self.ctl = self.rig.controller
        self.tripped = False
        self.rewired: set[tuple[str, str]] = set()  # swap faults injected
        TALLY.examples += 1

    def teardown(self):
        try:
            assert_truth_within_limits(self.rig, self.rewired)
            assert_no_forbidden_relays(self.rig)
            assert_intents_before_commands(self.rig)
        finally:
            close_rig(self.rig)
            self.rig.sim.stop()
            self.tmp.cleanup()

    def step(self, recover: tuple[float, ...] | None = None) -> None:
        """Count a step. A request that finds nothing live is, half the time, made after
        the bench is brought up again: rules are switched off at random per example
        (swarm testing), so recovery must not hang on the power-up rules alone."""
        if recover is not None and not self.ctl.commanded.live_nets:
            self.bring_up(len(NETS), recover)
        TALLY.steps += 1
        TALLY.live_steps += bool(self.ctl.commanded.live_nets)

    def attempt(self, action, *args, **kwargs) -> None:
        # Refusals, faults and state errors are the interlock doing its job.
        try:
            action(*args, **kwargs)
        except LimitViolation as refusal:
            TALLY.outcomes[refusal.rule] += 1
        except (FaultLatched, StateError) as error:
            TALLY.outcomes[type(error).__name__] += 1
        except InterlockError as error:
            TALLY.outcomes[f"tripped ({type(error).__name__})"] += 1
        else:
            TALLY.outcomes["done"] += 1

    # -- bringing nets up: most steps should find something live ---------------------

    def bring_up(self, count: int, current_limits: tuple[float, ...]) -> None:
        """The bench as an operator and a script leave it: faults cleared, reset and armed
        if need be, then nets live in the power-on order at setpoints in their windows.
        (Everything is drawn beforehand: what is drawn must not depend on the bench.)"""
        self.rig.sim.clear()
        if self.ctl.state == "fault":
            self.attempt(self.ctl.reset, "operator")
        if self.ctl.state == "safe":
            self.attempt(self.ctl.arm, "operator")
        for net, amps in zip(NETS[:count], current_limits, strict=False):
            if self.ctl.commanded.net(net).output:
                continue
            self.attempt(self.ctl.set_current_limit, net, amps)
            self.attempt(self.ctl.set_voltage, net, UP_AT[net])
            self.attempt(self.ctl.output_on, net)

    @initialize(current_limits=up)
    def start_live(self, current_limits):
        """Every example starts with every net live, as a sequence would have them."""
        self.step()
        self.bring_up(len(NETS), current_limits)

    @rule(count=st.integers(1, 3), current_limits=up)
    def power_up(self, count, current_limits):
        self.step()
        self.bring_up(count, current_limits)

    @rule(current_limits=up)
    def power_up_all(self, current_limits):
        """Every net: bringing nets up weighs twice as much as any other rule."""
        self.step()
        self.bring_up(len(NETS), current_limits)

    # -- requests, legal as often as not --------------------------------------------------

    @rule(net=nets, data=st.data(), recover=recover)
    def set_voltage(self, net, data, recover):
        self.step(recover)
        self.attempt(self.ctl.set_voltage, net, data.draw(volts(net)))

    @rule(net=nets, data=st.data(), recover=recover)
    def set_current_limit(self, net, data, recover):
        self.step(recover)
        self.attempt(self.ctl.set_current_limit, net, data.draw(amps(net)))

    @rule(net=nets, on=st.booleans(), recover=recover)
    def output(self, net, on, recover):
        self.step(recover)
        self.attempt(self.ctl.output_on if on else self.ctl.output_off, net)

    @rule(relay=relays, closed=st.booleans(), recover=recover)
    def set_relay(self, relay, closed, recover):
        self.step(recover)
        self.attempt(self.ctl.set_relay, relay, closed)

    @rule(net=nets, pause=st.sampled_from([0.0, 0.02, 0.06]), recover=recover)
    def measure(self, net, pause, recover):
        """Time passes with nets live: the monitor polls meanwhile."""
        self.step(recover)
        time.sleep(pause)
        self.attempt(self.ctl.measure, net)

    @rule(action=st.sampled_from(["reset", "arm", "disarm"]))
    def operator(self, action):
        self.step()
        self.attempt(getattr(self.ctl, action), "operator")

    # -- faults: while live, and in the middle of ramps ----------------------------------

    @rule(
        fault=st.sampled_from([*FAULTS, "estop-request"]),
        mid_ramp=st.booleans(),
        order=st.permutations(NETS),
        pause=st.sampled_from([0.0, 0.01, 0.05, 0.12]),
        recover=recover,
    )
    def inject(self, fault, mid_ramp, order, pause, recover):
        """A fault, or an emergency stop; half of them once a ramp is under way in another
        thread (as another client's): the first net in ``order`` that can ramp now (what
        is drawn does not depend on the bench; what is done with it does)."""
        self.step(recover)
        ramps = [ramp for ramp in map(self.far_ramp, order) if ramp is not None]
        if not mid_ramp or not ramps:
            self.disturb(fault)
            return
        net, target = ramps[0]
        ramp = threading.Thread(target=self.attempt, args=(self.ctl.set_voltage, net, target))
        ramp.start()
        time.sleep(pause)
        under_way = ramp.is_alive()
        TALLY.mid_ramp_faults += self.disturb(fault) and under_way
        ramp.join(30)
        assert not ramp.is_alive(), "a ramp outlived a fault by 30 s"

    def far_ramp(self, net: str) -> tuple[str, float] | None:
        """A ramp of ``net`` to the far end of its window, if live and the engine allows
        it in more than one step now."""
        state = self.ctl.commanded
        (low, high), held = LIVE_WINDOW[net][0], state.net(net).voltage
        target = low if held > (low + high) / 2 else high
        if not state.net(net).output:
            return None
        plan = plan_voltage(self.ctl.limits, state, SetVoltage(net, target), time.monotonic())
        return (net, target) if plan.verdict.allowed and len(plan.steps) > 1 else None

    def disturb(self, fault: str) -> bool:
        """Inject ``fault`` (or request an emergency stop); False if it was there already."""
        if fault == "estop-request":
            self.ctl.emergency_stop("tester")
        elif fault in self.rig.sim.faults():
            return False
        else:
            if fault.startswith("swap:"):
                self.rewired.add(tuple(fault.removeprefix("swap:").split(",")))
            self.rig.sim.inject(fault)
        TALLY.faults += 1
        return True

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def outputs_off_after_a_fault(self):
        if self.ctl.state == "fault":
            assert_all_outputs_off(self.rig)
        tripped = self.ctl.fault_cause is not None
        TALLY.trips += tripped and not self.tripped
        self.tripped = tripped

    @invariant()
    def nothing_beyond_limits(self):
        assert_truth_within_limits(self.rig, self.rewired)
        assert_no_forbidden_relays(self.rig)


def run(examples: int, steps: int, machine: type = ControllerMachine) -> None:
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        ),
    )


def test_controller_stateful():
    TALLY.__init__()
    run(int(os.environ.get("INTERLOCK_STATEFUL_EXAMPLES", "10")), 40)
    print(f"\ncontroller stateful run: {TALLY.summary()}")
    assert TALLY.live_steps >= TALLY.steps / 2, TALLY.summary()
    assert TALLY.faults and TALLY.trips, TALLY.summary()


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_controller_stateful_long():
    """At least 10,000 steps, with faults while live and in the middle of ramps."""
    TALLY.__init__()
    while TALLY.steps < 10_000:  # an example may end before its last step: run on
        run(100, 50)
    print(f"\ncontroller stateful run (slow): {TALLY.summary()}")
    assert TALLY.live_steps >= TALLY.steps / 2, TALLY.summary()
    assert TALLY.mid_ramp_faults, TALLY.summary()


def _machine_on(name: str, bench: Path) -> type:
    return type(f"ControllerMachine_{name}", (ControllerMachine,), {"BENCH": bench})


def _machine_for(dialect: str, directory: Path) -> type:
    from tests.dialects.support import motor_bench

    return _machine_on(dialect, motor_bench(directory, dialect))


def _machine_with_switch(kind: str, directory: Path) -> type:
    from tests.dialects.test_switch_units import KINDS, two_units

    return _machine_on(kind, two_units(directory, KINDS[kind]))


SWITCH_KINDS = ["daq970a", "numato"]  # beside the RB8 (the default bench's only unit)
# The default run's short runs: per dialect and per switch kind, a few examples of a few
# steps each (the whole set about 20 s on a quiet machine); the long runs are slow.
QUICK_EXAMPLES = int(os.environ.get("INTERLOCK_STATEFUL_QUICK_EXAMPLES", "2"))
QUICK_STEPS = 10


@pytest.mark.parametrize("dialect", OTHER_SUPPLY_DIALECTS)
def test_controller_stateful_short_per_supply_dialect(dialect, tmp_path):
    """The machine with the motor net on each other supply dialect's twin: faults,
    protection, readback, safe-to-mate, start-up and the safe state, briefly."""
    TALLY.__init__()
    run(QUICK_EXAMPLES, QUICK_STEPS, _machine_for(dialect, tmp_path))
    print(f"\ncontroller stateful run on {dialect} (short): {TALLY.summary()}")
    assert TALLY.steps and TALLY.live_steps, TALLY.summary()


@pytest.mark.parametrize("kind", SWITCH_KINDS)
def test_controller_stateful_short_per_switch_kind(kind, tmp_path):
    """The machine on a bench whose motor relay and the meter's routes are on another
    kind of switch unit beside the RB8."""
    TALLY.__init__()
    run(QUICK_EXAMPLES, QUICK_STEPS, _machine_with_switch(kind, tmp_path))
    print(f"\ncontroller stateful run with a {kind} (short): {TALLY.summary()}")
    assert TALLY.steps and TALLY.live_steps, TALLY.summary()


@pytest.mark.slow  # about 25 s a dialect: run with -m slow beside the long runs
@pytest.mark.parametrize("dialect", OTHER_SUPPLY_DIALECTS)
def test_controller_stateful_per_supply_dialect(dialect, tmp_path):
    """The same machine with the motor net on each other supply dialect's twin (few
    examples here; the long runs are slow)."""
    TALLY.__init__()
    examples = int(os.environ.get("INTERLOCK_STATEFUL_DIALECT_EXAMPLES", "3"))
    run(examples, 25, _machine_for(dialect, tmp_path))
    print(f"\ncontroller stateful run on {dialect}: {TALLY.summary()}")
    # Too few examples to be sure of drawing a fault: the slow run asserts trips.
    assert TALLY.live_steps, TALLY.summary()


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("dialect", OTHER_SUPPLY_DIALECTS)
def test_controller_stateful_per_supply_dialect_long(dialect, tmp_path):
    TALLY.__init__()
    machine = _machine_for(dialect, tmp_path)
    while TALLY.steps < 3_000:
        run(50, 50, machine)
    print(f"\ncontroller stateful run on {dialect} (slow): {TALLY.summary()}")
    assert TALLY.live_steps >= TALLY.steps / 2 and TALLY.trips, TALLY.summary()


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("kind", SWITCH_KINDS)
def test_controller_stateful_per_switch_kind_long(kind, tmp_path):
    TALLY.__init__()
    machine = _machine_with_switch(kind, tmp_path)
    while TALLY.steps < 3_000:
        run(50, 50, machine)
    print(f"\ncontroller stateful run with a {kind} (slow): {TALLY.summary()}")
    assert TALLY.live_steps >= TALLY.steps / 2 and TALLY.trips, TALLY.summary()
