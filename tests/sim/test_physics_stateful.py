"""Stateful exploration of the electrical model behind the instruments.

Random sequences of relay moves, supply settings, output switching and DUT
faults, with physical invariants checked after every step: no net is live
without a closed power path, no supply delivers more than its limit or holds
its output above its OVP level, currents add up, and the ground truth's
maxima are never below what a net carries now.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from interlock.config import load_bench
from interlock.sim.bench import SimulatedBench
from interlock.sim.dut import OPEN, SHORT_RESISTANCE, Load
from tests.sim.conftest import ROOT_BENCH

BENCH = load_bench(ROOT_BENCH)
RELAYS = sorted({r for w in BENCH.wiring.values() for r in (w.power_relay, w.sense_relay) if r})
NETS = sorted(BENCH.wiring)
POWER_RELAYS = {w.power_relay for w in BENCH.wiring.values() if w.power_relay}
EPS = 1e-9
# Round values near the interesting edges (limits, ranges) most of the time.
VOLTS = st.one_of(st.sampled_from([0.0, 1.0, 3.3, 5.0, 6.0, 12.0, 24.0, 25.0, 26.0]),
                  st.floats(0, 28, allow_nan=False))
AMPS = st.one_of(st.sampled_from([0.002, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0]),
                 st.floats(0, 5.5, allow_nan=False))


class BenchPhysics(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # Not started: the models and the electrical facade work without sockets.
        self.sim = SimulatedBench(BENCH, latency=0.0, seed=0)
        self.psu = self.sim.instruments["psu"]
        self.electrical = self.sim.electrical

    def scpi(self, line: str) -> str | None:
        return self.psu.execute(line)

    @rule(relay=st.sampled_from(RELAYS), closed=st.booleans())
    def move_relay(self, relay, closed):
        self.electrical.set_relay(relay, closed)

    @initialize(closed=st.lists(st.sampled_from(RELAYS), unique=True))
    def wire_up(self, closed):
        for relay in sorted(POWER_RELAYS | set(closed)):
            self.electrical.set_relay(relay, True)

    @rule(channel=st.integers(1, 3), volts=VOLTS, amps=AMPS, ovp=VOLTS, ocp=st.booleans(),
          on=st.booleans())
    def program(self, channel, volts, amps, ovp, ocp, on):
        # one line per setting: an out-of-range value must not stop the others
        for line in (f"VOLT {volts:.4f},(@{channel})", f"CURR {amps:.4f},(@{channel})",
                     f"VOLT:PROT {ovp:.4f},(@{channel})",
                     f"CURR:PROT:STAT {int(ocp)},(@{channel})",
                     f"OUTP:PROT:CLE (@{channel})", f"OUTP {int(on)},(@{channel})"):
            self.scpi(line)

    @rule(net=st.sampled_from(NETS), load=st.sampled_from([Load(SHORT_RESISTANCE), OPEN, None]))
    def change_load(self, net, load):
        self.electrical.override_load(net, load)

    @rule(pair=st.sampled_from([("VBUS", "MOTOR"), ("VLOGIC", "VBUS")]), swapped=st.booleans())
    def swap(self, pair, swapped):
        self.electrical.swap(*pair, swapped)

    @invariant()
    def no_live_net_without_a_closed_power_relay(self):
        if not (self.electrical.closed_relays() & POWER_RELAYS):
            for net in NETS:
                assert self.electrical.net_point(net).voltage == 0.0

    @invariant()
    def supplies_respect_their_settings(self):
        for number, out in self.psu.channels.items():
            point = self.electrical.terminal("psu", number)
            if out.output:
                assert point.current <= out.current + EPS
                assert point.voltage <= out.ovp + EPS
                assert point.voltage <= out.voltage + EPS or point.current == 0.0

    @invariant()
    def currents_add_up(self):
        solution = self.electrical._solution
        delivered = sum(point.current for point in solution.sources.values())
        drawn = sum(point.current for point in solution.nets.values())
        assert delivered == pytest.approx(drawn, rel=1e-9, abs=1e-9)

    @invariant()
    def truth_maxima_cover_the_present(self):
        for net in NETS:
            record = self.sim.ground_truth.net(net)
            assert record["max_voltage"] >= record["voltage"]
            assert record["max_current"] >= record["current"]

    @invariant()
    def the_model_never_raised(self):
        assert -300 not in self.psu.errors.codes()


TestBenchPhysics = BenchPhysics.TestCase
TestBenchPhysics.settings = settings(max_examples=40, stateful_step_count=20, deadline=None)
