"""Random sequences of requests (in and out of limits), injected faults and
operator actions against a controller on the simulated bench.

Invariants, checked against the simulator's ground truth, not against what
the controller believes:

- no DUT net ever sees more than its profile allows;
- no forbidden relay combination is ever closed at the board;
- every line an instrument received had its journal intent written first;
- after any fault, every output is off.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from interlock.errors import InterlockError
from interlock.sim.bench import SimulatedBench

from .support import ROOT, assert_all_outputs_off, assert_safety_invariants, close_rig, make_rig

NETS = ["VLOGIC", "VBUS", "MOTOR"]
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

voltages = st.one_of(
    st.sampled_from([0.0, 3.0, 4.0, 5.0, 5.5, 5.6, 8.0, 12.0, 12.1, 24.0, 25.0, 26.0, -1.0]),
    st.floats(-2.0, 30.0, allow_nan=False),
)
currents = st.one_of(
    st.sampled_from([0.1, 0.3, 0.4, 0.5, 0.6, 0.61, 1.0, 0.0]),
    st.floats(-0.5, 2.0, allow_nan=False),
)


def _sim_factory(**kwargs):
    sim = SimulatedBench(kwargs.pop("bench"), ports="free", **kwargs)
    sim.start()
    return sim


class ControllerMachine(RuleBasedStateMachine):
    # No preconditions on the controller's state: it changes on its own (the
    # monitor trips), and rule choice must not depend on timing. Operator
    # actions are simply attempted; the controller refuses what is not allowed.

    def __init__(self):
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.rig = make_rig(_sim_factory, Path(self.tmp.name), bench=ROOT / "bench.toml")
        self.ctl = self.rig.controller

    def teardown(self):
        try:
            assert_safety_invariants(self.rig)
        finally:
            close_rig(self.rig)
            self.rig.sim.stop()
            self.tmp.cleanup()

    def attempt(self, action, *args, **kwargs):
        # Refusals, faults and state errors are the interlock doing its job.
        with contextlib.suppress(InterlockError):
            action(*args, **kwargs)

    @rule(net=st.sampled_from(NETS), volts=voltages)
    def set_voltage(self, net, volts):
        self.attempt(self.ctl.set_voltage, net, volts)

    @rule(net=st.sampled_from(NETS), amps=currents)
    def set_current_limit(self, net, amps):
        self.attempt(self.ctl.set_current_limit, net, amps)

    @rule(net=st.sampled_from(NETS))
    def output_on(self, net):
        self.attempt(self.ctl.output_on, net)

    @rule(net=st.sampled_from(NETS))
    def output_off(self, net):
        self.attempt(self.ctl.output_off, net)

    @rule(relay=st.sampled_from(RELAYS), closed=st.booleans())
    def set_relay(self, relay, closed):
        self.attempt(self.ctl.set_relay, relay, closed)

    @rule()
    def power_up_logic(self):
        self.attempt(self.rig.power_up_logic)

    @rule(fault=st.sampled_from(FAULTS))
    def inject(self, fault):
        if fault not in self.rig.sim.faults():
            self.rig.sim.inject(fault)

    @rule()
    def clear_faults(self):
        self.rig.sim.clear()

    @rule()
    def emergency_stop(self):
        self.ctl.emergency_stop("tester")

    @rule()
    def reset(self):
        self.attempt(self.ctl.reset, "operator")

    @rule()
    def arm(self):
        self.attempt(self.ctl.arm, "operator")

    @rule()
    def disarm(self):
        self.attempt(self.ctl.disarm, "operator")

    @invariant()
    def outputs_off_after_a_fault(self):
        if self.ctl.state == "fault":
            assert_all_outputs_off(self.rig)

    @invariant()
    def nothing_beyond_limits(self):
        from .support import assert_no_forbidden_relays, assert_truth_within_limits

        assert_truth_within_limits(self.rig)
        assert_no_forbidden_relays(self.rig)


ControllerMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("INTERLOCK_STATEFUL_EXAMPLES", "25")),
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
test_controller_stateful = ControllerMachine.TestCase
