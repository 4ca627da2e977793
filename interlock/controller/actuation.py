"""Actuation: every change sent to an instrument, decided by the engine first.

Each change goes: the limit engine's verdict (journaled), the command's
intent (journaled by the driver before it is sent), the exchange under the
gate with the commanded state recorded in the same hold, the read-back put
to the engine (:func:`~interlock.limits.measurements.check_readback`), and a
trip on any finding. Voltages are reached by the engine's plans
(:mod:`interlock.limits.ramps`), each step decided again when it is sent;
relays are switched and their contacts polled until they follow the coils.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from interlock.controller.commanded import Commanded
from interlock.controller.gate import Gate
from interlock.controller.instruments import BenchInstruments
from interlock.errors import FaultLatched, InstrumentError, JournalError, ReadbackMismatch
from interlock.journal import Journal, Pending
from interlock.limits import (
    BenchState,
    Decision,
    NetState,
    PinnedLimits,
    Request,
    SetCurrentLimit,
    SetOutput,
    SetRelay,
    SetVoltage,
    Verdict,
    describe,
    evaluate,
    went_on,
)
from interlock.limits.measurements import (
    check_contacts,
    check_output,
    check_protection_armed,
    check_range,
    check_readback,
)
from interlock.limits.ramps import VoltagePlan, at_step, continue_ramp, plan_voltage
from interlock.protocols import PowerSupply

log = logging.getLogger(__name__)


@dataclass
class Ramp:
    """A voltage request under way: its plan, what it was decided from, what it left."""

    seq: Pending
    net: str
    plan: VoltagePlan
    limits: PinnedLimits  # the limits it was decided under
    start: BenchState  # the whole state it was decided from
    left: NetState  # the net as this ramp last left it
    sent: int = 0  # steps sent so far

    @property
    def live(self) -> bool:
        return self.start.net(self.net).output


class Actuation:
    def __init__(
        self,
        *,
        journal: Journal,
        instruments: BenchInstruments,
        gate: Gate,
        commanded: Commanded,
        limits: Callable[[], PinnedLimits],
        clock: Callable[[], float],
        trip: Callable[..., object],
        notify: Callable[..., None],
    ) -> None:
        self._journal = journal
        self._instruments = instruments
        self._gate = gate
        self._commanded = commanded
        self._limits = limits
        self._clock = clock
        self._trip = trip
        self._notify = notify

    # -- deciding ------------------------------------------------------------------

    def verdict_on(self, request: Request) -> Verdict:
        """The engine's verdict on ``request`` now, not journaled."""
        return evaluate(self._limits(), self._commanded.state, request, self._clock()).verdict

    def decide(self, seq: Pending | None, request: Request) -> Decision:
        """The engine's verdict on one request, journaled (staged: it goes with the command)."""
        internal = {} if seq is not None else {"internal": describe(request)}
        decision = evaluate(self._limits(), self._commanded.state, request, self._clock())
        if not decision.verdict.allowed:
            self.refuse(seq, decision.verdict, **internal)
        self._journal.verdict(True, request=seq, durable=False, **internal)
        return decision

    def refuse(self, seq: Pending | None, verdict: Verdict, **details: Any) -> None:
        """Journal a refusal (durably, before the caller hears of it), then raise it."""
        self.record_refusal(seq, verdict, **details)
        verdict.raise_if_refused()

    def record_refusal(self, seq: Pending | None, verdict: Verdict, **details: Any) -> None:
        self._journal.verdict(
            False,
            request=seq,
            rule=verdict.rule,
            where=verdict.where,
            reason=verdict.reason,
            durable=False,
            **details,
        )
        # On the record before the caller hears of it: a journal that cannot take it trips
        # the bench (the caller's JournalError). Once tripped, the caller hears the
        # refusal itself (for the latched fault, say), and it waits staged for the record.
        try:
            self._journal.flush()
        except JournalError:
            if self._gate.cause is None:
                raise
        self._notify("refused", rule=verdict.rule, where=verdict.where, reason=verdict.reason)

    # -- voltages ------------------------------------------------------------------

    def plan(self, seq: Pending, net: str, volts: float) -> Ramp:
        """The whole ramp to ``volts``, decided before its first step is sent."""
        limits, held = self._limits(), self._commanded.state
        plan = plan_voltage(limits, held, SetVoltage(net, volts), self._clock())
        if not plan.verdict.allowed:
            self.refuse(seq, plan.verdict)
        self._journal.verdict(True, request=seq, steps=len(plan.steps), durable=False)
        return Ramp(seq, net, plan, limits, held, held.net(net))

    def ramp_step(self, ramp: Ramp, index: int) -> None:
        """Send one step of a decided ramp, decided again now, and read it back."""
        step, net = ramp.plan.steps[index], ramp.net
        held, limits = self._commanded.state, self._limits()
        if index == 0 and held is ramp.start and limits is ramp.limits and not ramp.live:
            # The plan's decision stands only for the first step when nothing it was made
            # from has changed: the very same state and limits, and a net that is off,
            # whose check does not depend on the time.
            decision = step.decision
        else:
            decision = continue_ramp(
                ramp.limits, limits, ramp.left, held, step.request, self._clock()
            )
            if not decision.verdict.allowed:  # time or state moved under us: stop here
                self.refuse(ramp.seq, at_step(decision.verdict, index, len(ramp.plan.steps)))
        psu, channel = self._supply(net)
        setpoint = step.request.volts
        before = held.net(net)
        if before.output:
            self._commanded.set_window(net, before.voltage, setpoint)
        with self._gate.actuating():
            readback = psu.program_voltage(channel, setpoint, net=net)
            self._commanded.set(decision.state)
        ramp.sent, ramp.left = index + 1, self._commanded.net(net)
        self.expect(net, "voltage", setpoint, readback)
        if self._commanded.net(net).output:
            self._commanded.set_window(net, setpoint, setpoint)

    # -- current limits --------------------------------------------------------------

    def set_current_limit(self, seq: Pending, net: str, amps: float) -> None:
        decision = self.decide(seq, SetCurrentLimit(net, amps))
        psu, channel = self._supply(net)
        with self._gate.actuating():
            live = self._commanded.net(net).output
            readback = psu.program_current_limit(channel, amps, net=net)
            self._commanded.set(decision.state)
            if live:
                # A limit below what the DUT draws trips the supply's over-current
                # protection. Read now, the gate still held: this trip, with its cause,
                # comes before the monitor's (which waits for the gate).
                reading = psu.poll([channel])[0]
                self._journal.measurement(
                    net, voltage=reading.volts, current=reading.amps, durable=False
                )
                if reading.tripped:
                    detail = (
                        f"{net}: the supply's protection tripped at the new current limit "
                        f"of {amps:g} A (the DUT drew more)"
                    )
                    self._trip("protection", detail)
                    raise FaultLatched(detail)
        self.expect(net, "current_limit", amps, readback)

    # -- protections, at arming --------------------------------------------------------

    def program(self, net: str, quantity: str, value: float) -> None:
        """Program one setting (``voltage``, ``current_limit``, ``ovp``) and read it back."""
        psu, channel = self._supply(net)
        program = {
            "voltage": psu.program_voltage,
            "current_limit": psu.program_current_limit,
            "ovp": psu.program_ovp,
        }[quantity]
        with self._gate.actuating():
            readback = program(channel, value, net=net)
        self.expect(net, quantity, value, readback)

    def select_range(self, net: str) -> None:
        """Select the net's output range (pinned from its limits) and read it back."""
        psu, channel = self._supply(net)
        with self._gate.actuating():
            readback = psu.select_range(channel, self._limits().supply_ranges[net], net=net)
        finding = check_range(self._limits(), net, readback)
        if finding is not None:
            self._trip("readback", finding.problem, finding=finding)
            raise ReadbackMismatch(self._instruments.ports[net].supply or "bench", finding.problem)

    def arm_protection(self, net: str) -> None:
        """Arm the net's over-current protection; it must read back armed."""
        psu, channel = self._supply(net)
        with self._gate.actuating():
            armed = psu.enable_ocp(channel, net=net)
        finding = check_protection_armed(net, armed)
        if finding is not None:
            self._trip("readback", finding.problem, finding=finding)
            raise ReadbackMismatch(self._instruments.ports[net].supply or "bench", finding.problem)

    # -- relays --------------------------------------------------------------------------

    def switch_relay(self, relay: str, closed: bool, seq: Pending | None = None) -> None:
        decision = self.decide(seq, SetRelay(relay, closed))
        if decision.state.closed_relays == self._commanded.state.closed_relays:
            return
        unit = self._instruments.unit_of(relay)
        if unit in self._instruments.units:
            self._switch_unit(unit, relay, closed, decision)
            return
        board = self._instruments.board
        mask = self._instruments.mask(decision.state.closed_relays)
        with self._gate.actuating():
            # The board's driver journals what it sends before it goes out.
            board.set_relays(mask, relay=relay, quantity="relay", value=closed)
            self._commanded.set(decision.state)
        self._await_contacts(mask)

    def _switch_unit(self, name: str, relay: str, closed: bool, decision) -> None:  # type: ignore[no-untyped-def]
        """A relay of a switch unit without the board's contact sense: its commanded state
        is all it reports, read back by its driver (a mismatch is a ProtocolError)."""
        unit = self._instruments.units[name]
        wanted = self._instruments.unit_channels(name, decision.state.closed_relays)
        with self._gate.actuating():
            state = unit.set_relays(wanted, relay=relay, quantity="relay", value=closed)
            self._commanded.set(decision.state)
        self._journal.readback(
            name,
            "GET",
            ",".join(map(str, sorted(state.commanded))) or "-",
            quantity="relay",
            expected=sorted(wanted),
            ok=state.commanded == wanted,
        )

    def _await_contacts(self, mask: int) -> None:
        """The auxiliary contacts must follow the coils, or the relay is not where we think."""
        board = self._instruments.board
        settle_time = self._instruments.board_model.contact_settle_time
        deadline = self._clock() + settle_time
        while True:
            self._gate.raise_if_latched()
            state = board.get_state()
            finding = check_contacts(
                mask,
                state.commanded_mask,
                state.contacts_mask,
                self._instruments.relay_channels,
                settle_time,
            )
            late = finding is not None and self._clock() > deadline
            if finding is None or late:
                self._journal.readback(
                    board.name,
                    "GET",
                    f"C={state.contacts_mask:X}",
                    quantity="relay",
                    expected=mask,
                    ok=finding is None,
                )
            if finding is None:
                return
            if late:
                self._trip("contact-sense", finding.problem, finding=finding)
                raise ReadbackMismatch(
                    board.name, f"contacts {state.contacts_mask:X}, commanded {mask:X}"
                )
            time.sleep(0.002)

    # -- outputs ---------------------------------------------------------------------------

    def output_on(self, seq: Pending, net: str) -> None:
        """Turn a net's output on, its relay closed and its settings read back already."""
        decision = self.decide(seq, SetOutput(net, True))
        commanded = self._commanded.net(net)
        psu, channel = self._supply(net)
        self._commanded.set_window(net, commanded.voltage, commanded.voltage)
        with self._gate.actuating():
            on = psu.set_output(channel, True, net=net)
            # Settling from now: the output is known on only once the exchange is over.
            self._commanded.set(went_on(decision.state, net, self._clock()))
            if not on:  # tripped here, the gate held: before the monitor's trip, if any
                finding = check_output(
                    net,
                    True,
                    on,
                    tripped=_tripped_now(psu, channel),
                    limit=commanded.current_limit,
                )
                self._trip("readback", f"{net}: {finding.problem}", finding=finding)
                raise ReadbackMismatch(
                    self._instruments.ports[net].supply,
                    f"{net} output did not turn on: {finding.problem}",
                )

    def output_off(self, seq: Pending, net: str) -> bool:
        """Turn a net's output off; False if it was off already."""
        decision = self.decide(seq, SetOutput(net, False))
        if not self._commanded.net(net).output:
            return False
        psu, channel = self._supply(net)
        with self._gate.actuating():
            # Recorded off before the line goes out (as the safe state does): a monitor
            # pass reading the output between the exchange and the record would see it
            # off while commanded on, and trip on a change that was asked for. Should
            # it stay on, the readback below trips.
            self._commanded.set(decision.state)
            off = not psu.set_output(channel, False, net=net)
        self._commanded.drop_window(net)
        finding = check_output(net, False, not off)
        if finding is not None:
            self._trip("readback", f"{net}: {finding.problem}", finding=finding)
            raise ReadbackMismatch(
                self._instruments.ports[net].supply, f"{net} output did not turn off"
            )
        return True

    # -- read back ---------------------------------------------------------------------------

    def expect(self, net: str, quantity: str, commanded: float, readback: float) -> None:
        """A setting read back: the engine's readback rule, or a trip."""
        finding = check_readback(self._limits(), net, quantity, commanded, readback)
        if finding is not None:
            self._trip("readback", finding.problem, finding=finding)
            raise ReadbackMismatch(self._instruments.ports[net].supply or "bench", finding.problem)

    def _supply(self, net: str) -> tuple[PowerSupply, int]:
        port = self._instruments.ports[net]
        return self._instruments.supplies[port.supply], port.channel


def _tripped_now(psu: PowerSupply, channel: int) -> bool:
    """Whether the supply says a channel's protection tripped (an output that reads
    off right after ``OUTP ON``: why, as far as the supply says)."""
    try:
        return psu.poll([channel])[0].tripped
    except InstrumentError:
        return False  # the trip that follows says it was off; its cause is unknown
