"""The controller: the state machine that composes the parts, and the public API.

Every commanded change goes: limit engine -> journal (request, verdict,
command intent) -> send -> read back -> engine again. Going live on a net is
preceded by safe-to-mate and the settings read back with the output off;
any doubt trips to a latched fault: outputs off in power-off order, relays
open, verified. The parts, one module each, none reaching into another's
fields or the Controller's:

- :mod:`.gate`: the fault latch and the actuation gate (who may still send);
- :mod:`.commanded`: what the bench has been told to be;
- :mod:`.actuation`: decide, journal, send, read back (ramps, relays, outputs);
- :mod:`.energising`: what comes before a net goes live, and after it settles;
- :mod:`.arming`: start-up findings, arming, reset's checks, a clean stop;
- :mod:`.monitor` and :mod:`.supervisor`: the watchers, in threads of their own;
- :mod:`.safe_state`: the safe-state procedure.

Threads: API calls are serialised by ``_operation`` (a ramp holds it for its
decision and each step's exchanges, not for the waits between them); the
monitor and the relay-board supervisor run in their own threads and may trip
at any time, waiting at most for an exchange under way. Every actuating
exchange passes the gate: once a trip has begun, no operation can send
another command, so an operation racing an emergency stop cannot
re-energise what the stop just turned off.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from interlock.config import Configuration, power_off_channels
from interlock.controller import stop_first
from interlock.controller.actuation import Actuation
from interlock.controller.arming import Arming, limits_summary
from interlock.controller.commanded import Commanded
from interlock.controller.energising import Energising
from interlock.controller.gate import Gate, Latched
from interlock.controller.instruments import BenchInstruments, NetPort
from interlock.controller.machine import SAFE_STATES, ControllerState
from interlock.controller.monitor import Monitor, NetReading
from interlock.controller.safe_state import (
    OffPlan,
    SafeStateReport,
    drive_safe,
    power_off_steps,
)
from interlock.controller.side_by_side import SideBySide
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
from interlock.limits import SAFE_STATE, BenchState, NetState, Verdict, is_finite_number
from interlock.limits.measurements import Finding

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
        # The safe state's off commands to the supplies of one power-off step, at once.
        self._off_side_by_side = SideBySide(
            "interlock-safe-state", len(self.instruments.supplies) - 1
        )
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
        self._arming = Arming(
            journal=journal,
            instruments=self.instruments,
            actuation=self._actuation,
            commanded=self._commanded,
            limits=lambda: self.limits,
            bench=self.bench,
            trip=self.trip,
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
            journal_failed=self.journal_failed,
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
                "measured": self._reading(net, commanded),
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
            "journal": self.journal.condition(),
            "nets": nets,
            "relays": {r: r in self.commanded.closed_relays for r in sorted(self.bench.relays)},
        }

    def _reading(self, net: str, commanded: NetState) -> dict[str, Any] | None:
        """The net's last reading with its age, if nothing was commanded to it since; else None.

        A reading from before the net's last change (a setpoint, a ramp step, its output
        turned off, an arm or a trip) says nothing of the net now: a safety display
        shows no reading rather than a stale one. An off net's reading is the
        instrument's reading of the off output, when one was asked for since.
        """
        reading = self.monitor.reading(net)
        if reading is None or reading.commanded != commanded:
            return None
        return {
            "voltage": reading.voltage,
            "current": reading.current,
            "at": reading.at,
            "age": round(max(0.0, self.clock() - reading.at), 3),
            "output": commanded.output,
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
            raise FaultLatched.on_bench(self.bench.name, self.fault_cause)
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
        with stop_first.stopping(), self.journal.waiting_at_most(TRIP_JOURNAL_WAIT_S):
            return self._trip(cause, detail, who, finding)

    def journal_failed(self, detail: str) -> SafeStateReport | None:
        """The journal cannot be written: trip, unless a fault is latched already.

        Every trip drives the safe state, so the latched one has (or is driving it
        now). Seen again, by another thread a moment later (a client's change and the
        monitor's commit fail on the same full disk), it is the same fault: driving
        the safe state again would only send more off commands that the journal
        cannot take. It waits for that trip to be over, so that a client hears of the
        failure with the bench safe, and stages one record of each failure it had not
        told (behind a fault of another cause). None when nothing is tripped by this
        call.
        """
        with stop_first.stopping(), self.journal.waiting_at_most(TRIP_JOURNAL_WAIT_S):
            latched = self._gate.latch(f"journal: {detail}")
            if latched.first:
                self._gate.first_told(detail)
                return self._tripped("journal", detail, None, None, latched)
            self._gate.wait_settled(TRIP_SETTLE_WAIT_S)
            if self._gate.first_told(detail):  # once: the monitor sees it each try
                with contextlib.suppress(JournalError):
                    self.journal.fault("journal", detail, first=False, durable=False)
                self._notify("fault", cause="journal", detail=detail, first=False)
            return None

    def _trip(
        self, cause: str, detail: str, who: str | None, finding: Finding | None
    ) -> SafeStateReport:
        latched = self._gate.latch(f"{cause}: {detail}")
        return self._tripped(cause, detail, who, finding, latched)

    def _tripped(
        self, cause: str, detail: str, who: str | None, finding: Finding | None, latched: Latched
    ) -> SafeStateReport:
        """The trip once its fault is latched (``latched.first``: by this call)."""
        try:
            return self._drive_tripped(cause, detail, who, finding, first=latched.first)
        finally:
            if latched.first:
                self._gate.settled(latched.number)

    def _drive_tripped(
        self, cause: str, detail: str, who: str | None, finding: Finding | None, *, first: bool
    ) -> SafeStateReport:
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
                side_by_side=self._off_side_by_side,
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
            steps=power_off_steps(
                power_off_channels(self.bench, self.limits.power_off),
                instruments.supplies,
                self.configuration.profile.power_off_steps
                or [(net,) for net in self.limits.power_off],
            ),
            all_supplies=tuple(instruments.supplies),
            board=instruments.board,
            units=tuple(instruments.units.values()),
            trusted=instruments.trusted,
            identify=instruments.verify_identity,
            relays_of=instruments.relays_of,
        )

    def emergency_stop(self, who: str, client: str = "") -> SafeStateReport:
        """Anyone may stop. Journaled, then the trip."""
        with stop_first.stopping(), self.journal.waiting_at_most(TRIP_JOURNAL_WAIT_S):
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
                if self.instruments.trusted(self.instruments.board.name):
                    self.supervisor.start()
                cause = self.instruments.failure_cause(failures)
                self.trip(cause, "; ".join(str(f) for f in failures))
                raise failures[0]
            # Fed from here: the board's watchdog is armed by its first frame.
            self.supervisor.start(quiet=True)
            previous_stop = self._arming.previous_stop()
            there = self._arming.found()
            board_state = self.instruments.board.get_state()
            self._arming.program_board()
            # Every finding is named in the one fault: a reset clears the supplies'
            # trips and the board's latch, the evidence of what happened before we came.
            found = there.energised + there.tripped + there.coupled
            if board_state.estop_active or board_state.trip_cause is not None:
                latched = "E-stop open" if board_state.estop_active else board_state.trip_cause
                found.append(f"relay board latched {latched}")
            if found:
                cause = (
                    "found-energised"
                    if there.energised
                    else "found-coupled"
                    if there.coupled
                    else "found-tripped"  # a trip, or the board's latch alone
                )
                self.trip(cause, f"{'; '.join(found)} before we connected{previous_stop}")
            # Started after the start-up findings, so they are reported first and once.
            if self.fault_cause is not None:
                self.supervisor.mark_seen("relay-board", "estop")
            self.supervisor.start()
            self.monitor.start()
            if self.fault_cause is not None:
                return
            self._transition("connect")

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
            self._off_side_by_side.close()
            if self.state != "disconnected":
                # Its own stop done, the service gives the panels back to the bench's people.
                panels = self._give_panels_back("controller closing")
                unclean = self._arming.release(report, self.fault_cause)
                with contextlib.suppress(JournalError, StateError):
                    if unclean is None:
                        self._transition("disconnect", stop="clean", **panels)
                    else:
                        self._transition("disconnect", stop="unclean", why=unclean, **panels)
            self.instruments.close()

    # -- operator actions ----------------------------------------------------------

    def arm(self, operator: str, *, confirm: str | None = None, client: str = "") -> None:
        """Pin the limits, check the DUT and that all is off, program the protections."""
        with self._operation:
            self.journal.try_again_now()  # the operator's action gets the journal's answer now
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
                fresh = self._arming.pin(self.configuration)
            except ConfigError:
                self.journal.end_run()
                raise
            self.configuration, self.limits = fresh, fresh.limits
            self.journal.config(
                {"bench": self.bench.path, "profile": self.configuration.profile.path},
                limits=limits_summary(self.limits),
                operator=operator,
            )
            try:
                self._arming.verify_identities("arming")
                self._arming.program_board()
                self._energising.check_dut_identity()
                self._arming.verify_all_off()
                self._arming.program_protection()
                self._arming.lock_panels(True, "arm")
            except (InstrumentError, FaultLatched) as error:
                if not isinstance(error, IdentityMismatch) and self.fault_cause is None:
                    self.trip("arming", str(error))
                self.journal.end_run()
                raise
            except BaseException:
                self.journal.end_run()
                raise
            self._transition("arm", operator=operator)

    def disarm(self, operator: str, client: str = "") -> None:
        with self._operation:
            self.journal.operator(operator, "disarm", client=client)
            self._require("armed")
            # Safe means safe: relays a script left closed are opened and verified.
            report = self.safe_state("disarm")
            if not report.verified:
                self.trip("disarm", "safe state not verified: " + "; ".join(report.unverified))
                raise FaultLatched(f"disarm could not verify the safe state: {report.unverified}")
            panels = self._give_panels_back("disarm")
            self._transition("disarm", operator=operator, **panels)
            self.journal.end_run()

    def _give_panels_back(self, purpose: str) -> dict[str, list[str]]:
        """Unlock the supplies' front panels after a stop (never before: a stop comes first);
        what failed, as details for the state change's journal entry."""
        problems = self._arming.lock_panels(False, purpose)
        for problem in problems:
            log.warning("%s", problem)
        return {"panels_locked": problems} if problems else {}

    def reset(self, operator: str, client: str = "") -> None:
        """Clear a latched fault after verifying the safe state. Never energises."""
        with self._operation:
            self.journal.try_again_now()  # the operator's action gets the journal's answer now
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
            self._arming.program_board()
            self._arming.clear_protection_trips()
            found = self._arming.found()
            energised = found.energised + found.coupled  # trips: cleared just now
            if energised:
                self.safe_state("reset found: " + "; ".join(energised))
                raise StateError("reset refused, found: " + "; ".join(energised))
            for hook in self.before_reset:
                hook(operator, self.fault_cause)
            panels = self._give_panels_back("reset")
            self._gate.clear()
            self.commanded = SAFE_STATE
            self.supervisor.clear_seen()
            self.monitor.ensure_running()
            self.supervisor.ensure_running()
            self._transition("reset", operator=operator, **panels)
            self.journal.end_run()

    # -- script actions ------------------------------------------------------------

    def _request(self, who: str, client: str, action: str, **details: Any) -> Pending:
        # Journal what was asked even when it is not a number JSON can hold (NaN, inf):
        # the limit engine then refuses it under its rule, on the record.
        shown = {
            k: repr(v) if isinstance(v, float) and not is_finite_number(v) else v
            for k, v in details.items()
        }
        return self.journal.request(who, client, action, durable=False, **shown)

    def _guarded(self, request_seq: Pending, action: Callable[..., Any], *args: Any) -> Any:
        """Run ``action(*args)``: a state error is a journaled refusal; instrument trouble,
        a journal that cannot be written and any error no part is meant to raise trip."""
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
            self.journal_failed(str(error))
            raise
        except Exception as error:
            # Not an error any part is meant to raise (a defect): what was recorded may
            # not be what the instruments hold, so the bench goes safe.
            self.trip("internal", f"{type(error).__name__}: {error}")
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
            taken, was = self.clock(), self.commanded.net(net)
            measured = self.instruments.supplies[port.supply].measure([port.channel])[0]
            volts, amps = measured.volts, measured.amps
            self.journal.measurement(net, voltage=volts, current=amps, durable=False)
            self.monitor.note_reading(net, NetReading(volts, amps, taken, was))
            return {"voltage": volts, "current": amps}

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
# A journal failure seen behind a trip under way waits at most this long for it to be
# over: longer than any safe state takes; a trip that hangs is the board's watchdog's.
TRIP_SETTLE_WAIT_S = 30.0


__all__ = ["Controller"]
