"""Energising: what comes before a net goes live, and the check after it settles.

Going live is: the net's power relay open; the DUT's identity measured again
when no net is live yet; safe-to-mate (the meter routed to the net, its
supply disconnected: stray voltage, then resistance); the supply's settings
(and its output range, where it has several) read back with the output still
off; the relay closed; the output on
(:meth:`~interlock.controller.actuation.Actuation.output_on`); and, once the
settle time has passed, the measurement put to the engine's live envelope.
Every measurement is the engine's to judge; a finding trips the bench.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from interlock.controller.actuation import Actuation
from interlock.controller.commanded import Commanded
from interlock.controller.gate import Gate
from interlock.controller.instruments import BenchInstruments
from interlock.errors import ConfigError, FaultLatched, IdentityMismatch, ReadbackMismatch
from interlock.journal import Journal, Pending
from interlock.limits import PinnedLimits, SetOutput
from interlock.limits.measurements import (
    Finding,
    check_coupling,
    check_dut_identity,
    check_identity_stray,
    check_live,
    check_mate_resistance,
    check_mate_stray,
    check_off_before_live,
    check_range,
)


class Energising:
    def __init__(
        self,
        *,
        journal: Journal,
        instruments: BenchInstruments,
        actuation: Actuation,
        gate: Gate,
        commanded: Commanded,
        limits: Callable[[], PinnedLimits],
        dut: Callable[[], str],
        bench_file: str,
        trip: Callable[..., object],
        wait: Callable[[float], None],
    ) -> None:
        self._journal = journal
        self._instruments = instruments
        self._actuation = actuation
        self._gate = gate
        self._commanded = commanded
        self._limits = limits
        self._dut = dut  # the DUT's name, as the pinned profile gives it
        self._bench_file = bench_file
        self._trip = trip
        self._wait = wait

    def turn_on(self, seq: Pending, net: str) -> bool:
        """Everything up to the output on; False if the net was live already."""
        verdict = self._actuation.verdict_on(SetOutput(net, True))
        if not verdict.allowed:
            self._actuation.refuse(seq, verdict)
        if self._commanded.net(net).output:
            self._journal.verdict(True, request=seq, note="already live", durable=False)
            self._journal.flush()
            return False
        port = self._instruments.ports[net]
        if port.power_relay in self._commanded.state.closed_relays:
            self._actuation.switch_relay(port.power_relay, False)
        if not self._commanded.live_nets:
            self.recheck_dut_identity()
        self.check_safe_to_mate(net)
        self._read_back_before_live(net)
        self._actuation.switch_relay(port.power_relay, True)
        self._actuation.output_on(seq, net)
        return True

    def settle(self, net: str) -> None:
        """After the settle time, the net's measurement inside its live envelope."""
        limits = self._limits()
        self._wait(limits.nets[net].settle_time)
        port = self._instruments.ports[net]
        reading = self._instruments.supplies[port.supply].poll([port.channel])[0]
        self._journal.measurement(
            net, voltage=reading.volts, current=reading.amps, phase="settled", durable=False
        )
        finding = check_live(
            limits,
            net,
            reading.volts,
            reading.amps,
            tripped=reading.tripped,
            protected=reading.protected,
            window=self._commanded.window(net),
        )
        if finding is not None:
            self._trip("live-window", f"{net}: {finding.problem}", finding=finding)
            raise FaultLatched(f"{net} did not come up inside its window: {finding.problem}")

    def _read_back_before_live(self, net: str) -> None:
        """What the supply really holds, output still off and relay still open: an output
        turned on behind our back must not reach the DUT when the relay closes."""
        port = self._instruments.ports[net]
        limits = self._limits()
        ranged = net in limits.supply_ranges  # switched behind our back since arming?
        supply = self._instruments.supplies[port.supply]
        held = supply.settings([port.channel], ranges=ranged, coupling=True)[0]
        commanded = self._commanded.net(net)
        finding = check_off_before_live(
            net, output=held.output, tripped=held.tripped, protected=True
        )
        if finding is not None:
            self._trip("readback", finding.problem, finding=finding)
            raise ReadbackMismatch(port.supply, f"{net} not off before going live")
        finding = check_coupling(port.supply, port.channel, held.coupled)
        if finding is not None:  # set at its panel since arming (a supply without a lock)
            self._trip("readback", finding.problem, finding=finding)
            raise ReadbackMismatch(port.supply, f"{net}: {finding.problem}")
        if ranged:
            finding = check_range(limits, net, held.range)
            if finding is not None:
                self._trip("readback", finding.problem, finding=finding)
                raise ReadbackMismatch(port.supply, finding.problem)
        expect = self._actuation.expect
        expect(net, "voltage", commanded.voltage, held.voltage)
        expect(net, "current_limit", commanded.current_limit, held.current_limit)
        if held.ovp is not None:  # a supply without a programmable level reports none
            expect(net, "ovp", limits.ovp_levels[net], held.ovp)
        finding = check_off_before_live(net, output=False, tripped=False, protected=held.ocp)
        if finding is not None:
            self._trip("readback", finding.problem, finding=finding)
            raise ReadbackMismatch(port.supply, f"{net} over-current protection is off")

    # -- the DUT's identity ---------------------------------------------------------------

    def check_dut_identity(self) -> None:
        """The DUT's ID resistor, measured and journaled; IdentityMismatch if it is not
        the one the pinned profile names."""
        limits = self._limits()
        identity = limits.identity
        if identity is None:
            return
        measured = self._measure_routed(
            identity.net,
            purpose="dut-identity",
            stray=lambda volts: check_identity_stray(limits, volts),
        )
        check = check_dut_identity(limits, measured["resistance"])
        name = self._dut()
        extra = {} if check.ok else {"rule": check.finding.rule, "where": check.finding.where}
        self._journal.identity(
            "dut", expected=check.expected, seen=check.seen, ok=check.ok, profile=name, **extra
        )
        if not check.ok:
            raise IdentityMismatch("dut", f"{name} ({check.expected})", check.seen)

    def recheck_dut_identity(self) -> None:
        """The first net to go live (after arming, or after every net was off) is
        preceded by measuring the DUT's identity again: a board swapped while the
        bench stood armed and dark must not be energised as the one pinned."""
        try:
            self.check_dut_identity()
        except IdentityMismatch as error:
            self._trip("dut-identity", f"before going live: {error}")
            raise FaultLatched(f"the DUT changed since arming: {error}") from error

    # -- safe-to-mate --------------------------------------------------------------------

    def check_safe_to_mate(self, net: str) -> None:
        """Measure the net with its supply disconnected: stray voltage, then resistance."""
        limits = self._limits()
        measured = self._measure_routed(
            net,
            purpose="safe-to-mate",
            stray=lambda volts: check_mate_stray(limits, net, volts),
        )
        finding = check_mate_resistance(limits, net, measured["resistance"])
        if finding is not None:
            self._trip("safe-to-mate", finding.problem, finding=finding)
            raise FaultLatched(f"safe-to-mate failed: {finding.problem}")

    def _measure_routed(
        self, net: str, *, purpose: str, stray: Callable[[float], Finding | None]
    ) -> dict[str, float]:
        """Route the DMM to ``net``, measure stray voltage then resistance, un-route."""
        port = self._instruments.ports.get(net)
        meter = self._instruments.meter
        if port is None or port.sense_relay is None or meter is None:
            raise ConfigError(
                self._bench_file,
                f"wiring.{net}.sense_relay",
                f"{net} cannot be measured: no DMM route",
            )
        self._actuation.switch_relay(port.sense_relay, True)
        try:
            volts = meter.measure_voltage(net=net, purpose=purpose)
            self._journal.measurement(net, voltage=volts, purpose=purpose)
            finding = stray(volts)
            if finding is not None:
                self._trip(purpose, finding.problem, finding=finding)
                raise FaultLatched(f"{purpose} failed: {finding.problem}")
            resistance = meter.measure_resistance(net=net, purpose=purpose)
            # An open circuit is an overload (inf), which JSON cannot hold.
            finite = math.isfinite(resistance)
            self._journal.measurement(
                net, resistance=resistance if finite else None, overload=not finite, purpose=purpose
            )
        finally:
            if self._gate.cause is None:
                self._actuation.switch_relay(port.sense_relay, False)
        return {"voltage": volts, "resistance": resistance}
