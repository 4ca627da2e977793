"""The controller: the part that says *no* before the damage.

Every commanded change goes: limit engine -> journal (request, verdict,
command intent) -> send -> read back -> compare. Going live on a net is
preceded by safe-to-mate (measure what is connected, supply disconnected),
setpoint programmed and read back with the output off, then output on,
settle, and the measured current inside its window. Any doubt trips to a
latched fault: outputs off in power-off order, relays open, verified.

Threads: API calls are serialised by ``_operation``; the monitor and the
relay-board supervisor run in their own threads and may trip at any time.
Every actuating exchange passes the *gate*: once a trip has begun, no
operation can send another command, so an operation racing an emergency
stop cannot re-energise what the stop just turned off.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from interlock.config import Configuration, load_configuration, power_off_channels
from interlock.controller.actuation import Actuation
from interlock.controller.commanded import Commanded
from interlock.controller.energising import Energising
from interlock.controller.gate import Gate
from interlock.controller.instruments import BenchInstruments, NetPort
from interlock.controller.machine import SAFE_STATES, ControllerState
from interlock.controller.monitor import Monitor
from interlock.controller.safe_state import (
    OffPlan,
    SafeStateReport,
    drive_safe,
    supplies_in_power_off_order,
)
from interlock.controller.supervisor import BoardSupervisor
from interlock.errors import (
    ConfigError,
    FaultLatched,
    IdentityMismatch,
    InstrumentError,
    JournalError,
    LimitViolation,
    StateError,
)
from interlock.journal import Journal, Pending
from interlock.limits import (
    SAFE_STATE,
    BenchState,
    NetState,
    Verdict,
)
from interlock.limits.measurements import (
    Finding,
    check_channel_off,
    check_off_voltage,
    check_relays_open,
)

log = logging.getLogger(__name__)


class Controller:
    """Owns the bench's instruments; the only way anything gets energised."""

    def __init__(
        self,
        configuration: Configuration,
        journal: Journal,
        *,
        resources: dict[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        monitor_period: float | None = None,
    ) -> None:
        self.configuration = configuration
        self.bench = configuration.bench
        self.limits = configuration.limits
        self.journal = journal
        self.clock = clock
        self.instruments = BenchInstruments(self.bench, journal, resources)
        self.machine = ControllerState()
        self._gate = Gate(journal)
        self._commanded = Commanded(self._gate)
        self.last_safe_state: SafeStateReport | None = None
        self._operation = threading.RLock()
        self._safe_lock = threading.Lock()
        self._listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self._actuation = Actuation(
            journal=journal,
            instruments=self.instruments,
            gate=self._gate,
            commanded=self._commanded,
            limits=lambda: self.limits,
            clock=clock,
            trip=self.trip,
            notify=self._notify,
        )
        self._energising = Energising(
            journal=journal,
            instruments=self.instruments,
            actuation=self._actuation,
            gate=self._gate,
            commanded=self._commanded,
            limits=lambda: self.limits,
            dut=lambda: self.configuration.profile.name,
            bench_file=self.bench.shown_path,
            trip=self.trip,
            wait=lambda seconds: self._wait(seconds),
        )
        # Called as hook(operator, fault) once a reset has found the bench safe, before
        # the fault clears: what the reset acknowledges is journaled first, or (raising)
        # the reset is refused. The service's journal-chain check hooks in here.
        self.before_reset: list[Callable[[str, str | None], None]] = []
        self.supervisor = BoardSupervisor(
            self.bench.service.heartbeat_period,
            board=self.instruments.board,
            relays_of=self.instruments.relays_of,
            trip=self.trip,
        )
        self.monitor = Monitor(
            monitor_period or self.bench.service.monitor_period,
            journal=journal,
            instruments=self.instruments,
            commanded=self._commanded,
            gate=self._gate,
            limits=lambda: self.limits,
            clock=clock,
            trip=self.trip,
            on_trip_failed=self.supervisor.stop_heartbeat,
        )
        # A board event (E-stop, trip, mismatch) is handled at once, not at the next heartbeat.
        self.instruments.board.on_event = self.supervisor.wake

    # -- observation ---------------------------------------------------------

    @property
    def state(self) -> str:
        return self.machine.state

    @property
    def fault_cause(self) -> str | None:
        """The first fault latched (``"cause: detail"``), until an operator's reset."""
        return self._gate.cause

    @property
    def commanded(self) -> BenchState:
        """What the bench has been commanded to be (the limit engine's view of it)."""
        return self._commanded.state

    @commanded.setter
    def commanded(self, state: BenchState) -> None:
        self._commanded.set(state)

    @property
    def ports(self) -> dict[str, NetPort]:
        return self.instruments.ports

    def add_listener(self, listener: Callable[[str, dict[str, Any]], None]) -> None:
        """``listener(event, details)`` is told of state changes, faults and refusals."""
        self._listeners.append(listener)

    def _notify(self, event: str, **details: Any) -> None:
        for listener in list(self._listeners):
            try:
                listener(event, details)
            except Exception:  # a broken listener must never stop the controller
                log.exception("listener failed on %s", event)

    def status(self) -> dict[str, Any]:
        nets = {}
        for net, port in self.ports.items():
            limits = self.limits.nets.get(net)
            commanded = self.commanded.net(net)
            nets[net] = {
                "supply": f"{port.supply} CH{port.channel}" if port.supply else None,
                "setpoint": commanded.voltage,
                "current_limit": commanded.current_limit,
                "output": commanded.output,
                "max_voltage": limits.max_voltage if limits else None,
                "max_current": limits.max_current if limits else None,
                "measured": self.monitor.last_measured.get(net),
            }
        return {
            "bench": self.bench.name,
            "environment": self.bench.environment,
            "state": self.state,
            "fault": self.fault_cause,
            "profile": {
                "name": self.configuration.profile.name,
                "path": self.configuration.profile.shown_path,
                "sha256": self.configuration.profile.sha256,
            },
            "run": self.journal.run_id,
            "nets": nets,
            "relays": {r: r in self.commanded.closed_relays for r in sorted(self.bench.relays)},
        }

    # -- state machine -------------------------------------------------------

    def _transition(self, trigger: str, *, durable: bool = True, **details: Any) -> None:
        source = self.state
        dest = self.machine.destination(trigger)
        self.journal.state(source, dest, trigger, durable=durable, **details)
        self.machine.fire(trigger)
        self._notify("state", source=source, dest=dest, trigger=trigger)

    def _require(self, *states: str) -> None:
        if self.fault_cause is not None:
            raise FaultLatched(f"bench {self.bench.name} is in a latched fault: {self.fault_cause}")
        if self.state not in states:
            raise StateError(f"not allowed while {self.state} (needs {' or '.join(states)})")

    # -- the gate and the trip -------------------------------------------------

    def trip(
        self, cause: str, detail: str, *, who: str | None = None, finding: Finding | None = None
    ) -> SafeStateReport:
        """Latch a fault and drive the bench safe. Safe to call from any thread, any time.

        ``finding``: the engine's rule the trip is for, journaled with it. No write of
        the trip waits for the journal longer than TRIP_JOURNAL_WAIT_S: what cannot
        be written by then is staged, and the trip goes on.
        """
        with self.journal.waiting_at_most(TRIP_JOURNAL_WAIT_S):
            return self._trip(cause, detail, who, finding)

    def _trip(
        self, cause: str, detail: str, who: str | None, finding: Finding | None
    ) -> SafeStateReport:
        first = self._gate.latch(f"{cause}: {detail}")
        extra = {"who": who} if who else {}
        if finding is not None:
            extra.update(rule=finding.rule, where=finding.where)
        try:
            # Staged: the safe state's first command writes it in the same commit.
            self.journal.fault(cause, detail, first=first, durable=False, **extra)
        except JournalError:
            log.exception("cannot journal fault %s: %s", cause, detail)
        report = self.safe_state(f"{cause}: {detail}")
        if self.state != "fault":
            # The state changes whatever the journal does: with the journal down (or
            # failing just now) its record is staged, for the next commit that succeeds.
            try:
                self._transition("trip", durable=not report.journal_down, cause=cause)
            except JournalError:
                log.exception("cannot journal the trip durably; staged")
                with contextlib.suppress(JournalError, StateError):
                    self._transition("trip", durable=False, cause=cause)
            except StateError:
                pass
        self._notify("fault", cause=cause, detail=detail, first=first)
        return report

    def safe_state(self, reason: str) -> SafeStateReport:
        """Outputs off in power-off order, relays open, verified; carries on past errors."""
        with self.supervisor.withheld(), self._safe_lock:
            # Commanded off before the first off command goes out; under the gate, so an
            # exchange in flight records what it did first.
            self._commanded.all_off()
            report = drive_safe(
                reason,
                self._off_plan(),
                self.journal,
                stop_heartbeat=self.supervisor.stop_heartbeat,
                state=lambda: self.state,
            )
            self.last_safe_state = report
        if self.state == "live" and self.fault_cause is None:
            # Driven safe without a fault (e.g. on request): nothing is live any more.
            with contextlib.suppress(JournalError, StateError):
                self._transition("deenergise", durable=not report.journal_down, reason=reason)
        return report

    def _off_plan(self) -> OffPlan:
        instruments = self.instruments
        return OffPlan(
            supplies=supplies_in_power_off_order(
                power_off_channels(self.bench, self.limits.power_off), instruments.supplies
            ),
            all_supplies=tuple(instruments.supplies),
            board=instruments.board,
            trusted=lambda name: name not in instruments.untrusted,
            identify=instruments.verify_identity,
            relays_of=instruments.relays_of,
        )

    def emergency_stop(self, who: str, client: str = "") -> SafeStateReport:
        """Anyone may stop. Journaled, then the trip."""
        with self.journal.waiting_at_most(TRIP_JOURNAL_WAIT_S):
            with contextlib.suppress(JournalError):
                self.journal.operator(who, "estop", client=client, durable=False)
            return self.trip("estop", f"emergency stop by {who}", who=who)

    # -- connect / close ---------------------------------------------------------

    def connect(self) -> None:
        """Open every instrument, check identities, read what is really there.

        Start-up never assumes: anything found energised is driven safe,
        journaled, and left latched for an operator.
        """
        with self._operation:
            if self.state != "disconnected":
                raise StateError(f"already connected ({self.state})")
            self.instruments.open()
            failures = self.instruments.verify_identities()
            if failures:
                # Instruments that are not who bench.toml says get no command at all,
                # not even "off": they may belong to another bench.
                if self.instruments.board.name not in self.instruments.untrusted:
                    self.supervisor.start()
                self.trip("identity", "; ".join(str(f) for f in failures))
                raise failures[0]
            previous_stop = self._previous_stop()
            energised, protection_trips = self._read_actual_state()
            board = self.instruments.board
            board_state = board.get_state()
            self._program_board()
            # Every finding is named in the one fault: a reset clears the supplies'
            # trips and the board's latch, the evidence of what happened before we came.
            found = energised + protection_trips
            if board_state.estop_active or board_state.trip_cause is not None:
                latched = "E-stop open" if board_state.estop_active else board_state.trip_cause
                found.append(f"relay board latched {latched}")
            if found:
                cause = "found-energised" if energised else "found-tripped"
                self.trip(cause, f"{'; '.join(found)} before we connected{previous_stop}")
            # Started after the start-up findings, so they are reported first and once.
            if self.fault_cause is not None:
                self.supervisor.mark_seen("relay-board", "estop")
            self.supervisor.start()
            self.monitor.start()
            if self.fault_cause is not None:
                return
            self._transition("connect")

    def _previous_stop(self) -> str:
        """How the last controller on this journal stopped, as a clause for a finding.

        A clean stop leaves a ``disconnect`` transition as its last state change;
        anything else (a crash, a kill, a power cut) leaves whatever came before.
        """
        try:
            last = self.journal.last(kind="state")
        except JournalError:
            return ""
        if last is None:
            return ""
        payload = last.payload
        when = f"{last.wall_time} (journal seq {last.seq})"
        if payload.get("trigger") == "disconnect":
            if payload.get("stop") == "clean":
                return f"; the last service stopped cleanly at {when}"
            return f"; the last service stopped at {when} with {payload.get('why', 'no reason')}"
        return (
            f"; the last service did not stop cleanly: its last state change was "
            f"{payload.get('trigger')} to {payload.get('to')} at {when}"
        )

    def _read_actual_state(self) -> tuple[list[str], list[str]]:
        """What is energised right now, whatever anyone believes, and which supply
        channels have a protection trip latched: one settings exchange per supply."""
        energised, tripped = [], []
        for name, channels in self.instruments.supply_channels().items():
            for channel, settings in zip(
                channels, self.instruments.supplies[name].settings(channels), strict=True
            ):
                for finding in check_channel_off(
                    name,
                    channel,
                    output=settings.output,
                    voltage=settings.voltage,
                    tripped=settings.tripped,
                ):
                    found = tripped if finding.rule == "all-off.protection" else energised
                    found.append(finding.problem)
        state = self.instruments.board.get_state()
        closed = check_relays_open(self.instruments.relays_of(state.commanded | state.contacts))
        if closed is not None:
            energised.append(closed.problem)
        return energised, tripped

    def _program_board(self) -> None:
        """The board's own rules: its watchdog and the profile's never-together pairs.

        Loaded at connect, again at arming (the profile may have changed) and at reset
        (a board that rebooted has forgotten them): the board's defence must match the
        limits in force.
        """
        board = self.instruments.board
        board.set_watchdog(self.bench.service.relay_watchdog)
        board.load_forbidden(self._forbidden_masks())

    def _forbidden_masks(self) -> list[int]:
        """The profile's never-together groups as the board's pairwise masks (defence in depth)."""
        masks = set()
        for group in self.limits.never_together:
            relays = sorted(group.relays)
            for i, a in enumerate(relays):
                for b in relays[i + 1 :]:
                    masks.add(self.instruments.mask({a, b}))
        return sorted(masks)

    def close(self) -> None:
        """Drive safe, stop supervising, leave the board cleanly, close every instrument.

        Only a stop that verified the safe state with no fault latched tells the
        board it is leaving (``release``): the board then opens its relays and
        disarms its watchdog, so the next start finds nothing latched. Any other
        stop leaves the board's watchdog to latch, and the next start to find it.
        """
        with self._operation:
            report = None
            if self.state != "disconnected":
                report = self.safe_state("controller closing")
            self.monitor.stop()
            self.supervisor.stop()
            if self.state != "disconnected":
                unclean = self._unclean_stop(report)
                with contextlib.suppress(JournalError, StateError):
                    if unclean is None:
                        self._transition("disconnect", stop="clean")
                    else:
                        self._transition("disconnect", stop="unclean", why=unclean)
            self.instruments.close()

    def _unclean_stop(self, report: SafeStateReport | None) -> str | None:
        """Release the board if this stop is clean; else why it is not."""
        board = self.instruments.board
        if self.fault_cause is not None:
            return f"fault latched: {self.fault_cause}"
        if report is None or not report.verified:
            unverified = "; ".join(report.unverified) if report else "not driven safe"
            return f"safe state not verified: {unverified}"
        if board.name in self.instruments.untrusted:
            return f"{board.name}: not the board bench.toml names"
        try:
            board.release()
        except InstrumentError as error:
            return f"the relay board did not take the release: {error}"
        return None

    # -- operator actions ----------------------------------------------------------

    def arm(self, operator: str, *, confirm: str | None = None, client: str = "") -> None:
        """Pin the limits, check the DUT and that all is off, program the protections."""
        with self._operation:
            try:
                self._require("safe")
                if self.bench.environment == "flight" and confirm != self.bench.name:
                    raise StateError(
                        f"bench {self.bench.name} is a flight bench: arming needs the bench "
                        "name typed as confirmation"
                    )
            except (StateError, FaultLatched) as error:
                self.journal.operator(operator, "arm", client=client, refused=str(error))
                raise
            # The run starts with the operator's action, so it is kept with the run.
            self.journal.begin_run()
            self.journal.operator(operator, "arm", client=client)
            try:
                self._pin_configuration()
            except ConfigError:
                self.journal.end_run()
                raise
            self.journal.config(
                {"bench": self.bench.path, "profile": self.configuration.profile.path},
                limits=self._limits_summary(),
                operator=operator,
            )
            try:
                self._verify_identities("arming")
                self._program_board()
                self._energising.check_dut_identity()
                self._verify_all_off()
                self._program_protection()
            except (InstrumentError, FaultLatched) as error:
                if not isinstance(error, IdentityMismatch) and self.fault_cause is None:
                    self.trip("arming", str(error))
                self.journal.end_run()
                raise
            except BaseException:
                self.journal.end_run()
                raise
            self._transition("arm", operator=operator)

    def _pin_configuration(self) -> None:
        """Re-read the files at arming: edits take effect now, never while armed."""
        fresh = load_configuration(self.bench.path, self.configuration.profile.path)
        if fresh.bench.sha256 != self.bench.sha256:
            raise ConfigError(
                self.bench.shown_path,
                "",
                "changed since the controller connected: restart it to use the new bench",
            )
        self.configuration = fresh
        self.limits = fresh.limits

    def _limits_summary(self) -> dict[str, dict[str, float]]:
        return {
            net: {
                "min_voltage": n.min_voltage,
                "max_voltage": n.max_voltage,
                "max_current": n.max_current,
                "max_step": n.max_step,
                "max_slew": n.max_slew,
                "live_min_current": n.live_min_current,
                "live_max_current": n.live_max_current,
            }
            for net, n in self.limits.nets.items()
        }

    def _verify_identities(self, when: str) -> None:
        """Every instrument, the relay board included, is who bench.toml says, now.

        A unit swapped behind an unbroken link (a LAN or GPIB gateway, a switch)
        answers on the same resource: only asking again finds it. One that is not
        who it should be is never commanded again (not even "off") until a reset
        identifies it, and the bench trips.
        """
        failures = self.instruments.verify_identities()
        if failures:
            self.trip("identity", f"at {when}: " + "; ".join(str(f) for f in failures))
            raise failures[0]

    def _verify_all_off(self) -> None:
        energised, tripped = self._read_actual_state()
        problems = energised + tripped
        for name, channels in self.instruments.supply_channels().items():
            readings = self.instruments.supplies[name].measure(channels)
            for channel, (volts, _amps) in zip(channels, readings, strict=True):
                net = self._net_of(name, channel)
                finding = check_off_voltage(self.limits, name, channel, net, volts)
                if finding is not None:
                    problems.append(finding.problem)
        if problems:
            raise InstrumentError("bench", "not everything is off: " + "; ".join(problems))

    def _program_protection(self) -> None:
        """Each channel: 0 V, current limit and OVP at the profile, OCP armed, all read back.

        With OCP armed the supply turns its output off itself when the load would
        pull it into current limiting (a short, an overload), before the monitor's
        next pass sees it; the interlock then trips on the protection it finds tripped.
        """
        nets = {}
        for net, limits in self.limits.nets.items():
            ovp = self._ovp_level(net)
            for quantity, value in (
                ("voltage", 0.0),
                ("current_limit", limits.max_current),
                ("ovp", ovp),
            ):
                self._actuation.program(net, quantity, value)
            self._actuation.arm_protection(net)
            nets[net] = NetState(voltage=0.0, current_limit=limits.max_current)
        self.commanded = BenchState(nets=nets)

    def _ovp_level(self, net: str) -> float:
        return self.limits.ovp_levels[net]

    def _clear_protection_trips(self) -> None:
        """Acknowledging a fault includes a supply's latched OVP/OCP (outputs stay off)."""
        for name, channels in self.instruments.supply_channels().items():
            psu = self.instruments.supplies[name]
            for channel, settings in zip(channels, psu.settings(channels), strict=True):
                if settings.tripped:
                    psu.clear_protection(channel, purpose="reset")

    def disarm(self, operator: str, client: str = "") -> None:
        with self._operation:
            self.journal.operator(operator, "disarm", client=client)
            self._require("armed")
            # Safe means safe: relays a script left closed are opened and verified.
            report = self.safe_state("disarm")
            if not report.verified:
                self.trip("disarm", "safe state not verified: " + "; ".join(report.unverified))
                raise FaultLatched(f"disarm could not verify the safe state: {report.unverified}")
            self._transition("disarm", operator=operator)
            self.journal.end_run()

    def reset(self, operator: str, client: str = "") -> None:
        """Clear a latched fault after verifying the safe state. Never energises."""
        with self._operation:
            self.journal.operator(operator, "reset", client=client, fault=self.fault_cause)
            if self.state != "fault":
                raise StateError(f"nothing to reset ({self.state})")
            board = self.instruments.board
            # A link lost earlier stays lost: start the board's session afresh.
            board.close()
            board.open()
            if board.get_state().estop_active:
                raise StateError("the E-stop is still pressed: release it before reset")
            # A broken session may have been a different instrument on reconnect: identify again.
            for instrument in self.instruments.all:
                if instrument is not board and not instrument.is_open:
                    instrument.open()
            failures = self.instruments.verify_identities()
            if failures:
                raise failures[0]
            board.reset_trip()
            self._program_board()
            self._clear_protection_trips()
            energised, _ = self._read_actual_state()  # trips: cleared just now
            if energised:
                self.safe_state("reset found energised: " + "; ".join(energised))
                raise StateError("reset refused, found energised: " + "; ".join(energised))
            for hook in self.before_reset:
                hook(operator, self.fault_cause)
            self._gate.clear()
            self.commanded = SAFE_STATE
            self.supervisor.clear_seen()
            self.monitor.ensure_running()
            self.supervisor.ensure_running()
            self._transition("reset", operator=operator)
            self.journal.end_run()

    # -- script actions ------------------------------------------------------------

    def _request(self, who: str, client: str, action: str, **details: Any) -> Pending:
        # Journal what was asked even when it is not a number JSON can hold (NaN, inf):
        # the limit engine then refuses it under its rule, on the record.
        shown = {
            k: repr(v) if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in details.items()
        }
        return self.journal.request(who, client, action, durable=False, **shown)

    def _guarded(self, request_seq: Pending, action: Callable[..., Any], *args: Any) -> Any:
        """Run ``action(*args)``: a state error is a journaled refusal; instrument trouble trips."""
        try:
            self._require("armed", "live")
        except (StateError, FaultLatched) as error:
            refusal = Verdict(False, "state", "controller", str(error))
            self._actuation.record_refusal(request_seq, refusal)
            raise
        try:
            return action(*args)
        except (LimitViolation, FaultLatched, StateError):
            raise
        except InstrumentError as error:
            self.trip("instrument", str(error))
            raise
        except JournalError as error:
            self.trip("journal", str(error))
            raise

    def set_voltage(self, net: str, volts: float, *, who: str = "script", client: str = "") -> None:
        """Program a setpoint; on a live net, ramp at the allowed slew, each step read back.

        The ramp is decided whole before its first step is sent. The operation
        lock is held for the decision and for each step's exchanges, not for the
        waits between steps: a measurement or an output turned off by another
        client waits for one step at most. Each step is decided again when it is
        sent; a ramp whose net another request changed meanwhile stops there.
        """
        with self._operation:
            seq = self._request(who, client, "set", net=net, quantity="voltage", value=volts)
            ramp = self._guarded(seq, self._actuation.plan, seq, net, volts)
            first = ramp.plan.steps[0]
            if first.delay <= 0:  # nothing to wait for: sent under the decision's hold
                self._wait(first.delay)
                self._guarded(seq, self._actuation.ramp_step, ramp, 0)
        for i in range(ramp.sent, len(ramp.plan.steps)):
            # Another request that changes the net ends the wait: this step then refuses.
            self._wait(
                ramp.plan.steps[i].delay,
                interrupted=lambda: self.commanded.net(ramp.net) != ramp.left,
            )
            with self._operation:
                self._guarded(seq, self._actuation.ramp_step, ramp, i)

    def set_current_limit(
        self, net: str, amps: float, *, who: str = "script", client: str = ""
    ) -> None:
        with self._operation:
            seq = self._request(who, client, "set", net=net, quantity="current_limit", value=amps)
            self._guarded(seq, self._actuation.set_current_limit, seq, net, amps)

    def set_relay(self, relay: str, closed: bool, *, who: str = "script", client: str = "") -> None:
        with self._operation:
            seq = self._request(who, client, "set", relay=relay, quantity="relay", value=closed)
            self._guarded(seq, self._actuation.switch_relay, relay, closed, seq)

    def output_on(self, net: str, *, who: str = "script", client: str = "") -> None:
        """Go live: safe-to-mate, setpoint read back with the output off, on, settle, check."""
        with self._operation:
            seq = self._request(who, client, "output", net=net, quantity="output", value=True)
            self._guarded(seq, self._go_live, seq, net)

    def _go_live(self, seq: Pending, net: str) -> None:
        if not self._energising.turn_on(seq, net):
            return  # live already
        if self.state == "armed":
            self._transition("energise", net=net)
        self._energising.settle(net)

    def output_off(self, net: str, *, who: str = "script", client: str = "") -> None:
        with self._operation:
            seq = self._request(who, client, "output", net=net, quantity="output", value=False)
            self._guarded(seq, self._output_off, seq, net)

    def _output_off(self, seq: Pending, net: str) -> None:
        if not self._actuation.output_off(seq, net):
            return
        if self.state == "live" and not self.commanded.live_nets:
            self._transition("deenergise", net=net)

    def measure(self, net: str) -> dict[str, float]:
        """Measured voltage and current of a net's supply channel."""
        with self._operation:
            port = self.ports.get(net)
            if port is None or port.supply is None:
                raise LimitViolation(f'unknown net "{net}"', "nets", self.limits.where("nets"))
            volts, amps = self.instruments.supplies[port.supply].measure([port.channel])[0]
            self.journal.measurement(net, voltage=volts, current=amps, durable=False)
            return {"voltage": volts, "current": amps}

    # -- procedures ------------------------------------------------------------------

    def _net_of(self, supply: str, channel: int) -> str | None:
        for port in self.ports.values():
            if port.supply == supply and port.channel == channel:
                return port.net
        return None

    def _wait(self, seconds: float, interrupted: Callable[[], bool] | None = None) -> None:
        """Sleep, but give up at once if a trip begins, or (early, without an error)
        once ``interrupted()`` says what the wait was for has changed."""
        deadline = self.clock() + seconds
        while True:
            self._gate.raise_if_latched()
            if interrupted is not None and interrupted():
                return
            remaining = deadline - self.clock()
            if remaining <= 0:
                return
            time.sleep(min(remaining, 0.005))

    @property
    def is_safe(self) -> bool:
        return self.state in SAFE_STATES


# A trip's own journal writes (a backlog flush, its state change) wait at most this long.
TRIP_JOURNAL_WAIT_S = 1.0


__all__ = ["Controller"]
