"""The real run: a bound sequence, step by step, through a :class:`~.target.Target`.

Before anything is sent the sequence is dry run; a run whose dry run finds a
violation is not started (nothing would be gained by energising a board to
stop halfway). The bench must then be exactly as arming leaves it, since
that is what the dry run assumed: the runner arms it itself, or accepts a
bench armed by an operator and untouched since.

Outcomes:

- a step the interlock refuses stops the run (exit 3), unless the step says
  ``expect = "refused"``: then the refusal is the expected result, it is
  reported with its rule and reason, and the run goes on. A step expected to
  be refused but allowed stops the run too (exit 3).
- a measurement outside its window is recorded and the run goes on; the
  interlock, not the sequence, keeps the board safe (exit 1 at the end).
- an operator who declines a prompt stops the run (exit 1).
- a fault (instrument, readback, monitor, E-stop) stops the run (exit 4);
  the controller has already driven the bench safe.
- Ctrl-C (KeyboardInterrupt) stops the run; the bench is powered down as
  below and the report, marked ``interrupted``, is returned (exit 130). Given
  ``stops`` (:mod:`interlock.interrupts`, as ``interlock run`` does), Ctrl-C,
  SIGTERM and SIGHUP stop it between two requests: between two steps, in a
  wait or at a prompt, never while a request's reply is awaited nor once the
  power-down has begun.

Each step is marked in the run's journal before it begins (a ``note`` with
its number), so that the post-mortem shows the steps on its time axis; the
run's id is the journal's, given by the service once the bench is armed.

However the run ends, whatever is still live is powered down through the
interlock, in the profile's power-off order, then every relay is opened; if
that is refused or fails, the target's safe state is forced. The library
never prints: progress goes to a :class:`RunObserver`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from interlock.config import Configuration
from interlock.errors import (
    ConfigError,
    FaultLatched,
    InterlockError,
    LimitViolation,
    StateError,
)
from interlock.exits import (
    EXIT_FAULT,
    EXIT_INTERRUPTED,
    EXIT_MEASUREMENT_FAILED,
    EXIT_PASS,
    EXIT_REFUSED,
)
from interlock.interrupts import Stops
from interlock.journal.entries import FAILED_NOTE_PREFIX
from interlock.limits import ALLOWED, Verdict
from interlock.sequence.dryrun import (
    ALLOWED_UNEXPECTEDLY,
    OK,
    REFUSED,
    armed_state,
    dry_run,
    judge,
)
from interlock.sequence.model import ACTUATING, Sequence, Step
from interlock.sequence.target import Target
from interlock.units import CURRENT, VOLTAGE, format_quantity

PASS = "pass"
FAIL = "fail"
FAULT = "fault"
DECLINED = "declined"

# How often a wait looks at the bench: a fault during a wait ends it at once.
WAIT_POLL = 0.05


@dataclass(frozen=True)
class StepResult:
    step: Step
    outcome: str  # ok, refused, refused as expected, allowed..., pass, fail, fault, declined
    verdict: Verdict = ALLOWED
    value: float | None = None  # a measure step's reading, SI
    detail: str = ""
    live: dict[str, dict[str, float]] = field(default_factory=dict)  # net -> measured, after
    at: float = 0.0  # when it began, s from the run's start
    elapsed: float = 0.0  # how long it took, s

    @property
    def stops(self) -> bool:
        return self.outcome in (REFUSED, ALLOWED_UNEXPECTEDLY, FAULT, DECLINED)


@dataclass
class RunReport:
    sequence: Sequence
    results: list[StepResult] = field(default_factory=list)
    fault: str | None = None  # the bench's latched fault at the end, if any
    safe_state_forced: str | None = None  # why the orderly power-down gave way to a safe state
    elapsed: float = 0.0
    run_id: str | None = None  # the journal's run, as the service names it once armed
    bench: str = ""
    environment: str = ""
    profile: dict[str, str] = field(default_factory=dict)  # name, path, sha256 (as pinned)
    started: float = 0.0  # wall time (time.time()) of the first step
    interrupted: bool = False  # stopped by Ctrl-C, or by a signal standing for it
    interrupted_by: str = ""  # "Ctrl-C", "SIGTERM", "SIGHUP" (interlock.interrupts)

    @property
    def completed(self) -> bool:
        return len(self.results) == len(self.sequence.steps) and not self.results[-1].stops

    def count(self, *outcomes: str) -> int:
        return sum(1 for result in self.results if result.outcome in outcomes)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.fault or self.count(FAULT):
            return EXIT_FAULT
        if self.count(REFUSED, ALLOWED_UNEXPECTEDLY):
            return EXIT_REFUSED
        if self.count(FAIL, DECLINED):
            return EXIT_MEASUREMENT_FAILED
        return EXIT_PASS


class RunObserver(Protocol):
    def run_started(self, report: RunReport) -> None: ...
    def step_started(self, step: Step, total: int) -> None: ...
    def step_finished(self, result: StepResult, total: int) -> None: ...


class _Silent:
    def run_started(self, report: RunReport) -> None:
        pass

    def step_started(self, step: Step, total: int) -> None:
        pass

    def step_finished(self, result: StepResult, total: int) -> None:
        pass


def _marker(step: Step, total: int) -> str:
    """A step's marker in the journal: its number and what it does (bounded, as a note is)."""
    text = f"step {step.number}/{total}: {step.describe()}"
    if step.label:
        text += f" [{step.label}]"
    return _bounded(text)


def _bounded(text: str) -> str:
    """A note's text within the 200 characters the service takes."""
    return text if len(text) <= 200 else text[:199] + "…"


class SequenceRunner:
    """Runs one bound sequence on one target. ``confirm(step)`` answers operator prompts."""

    def __init__(
        self,
        sequence: Sequence,
        configuration: Configuration,
        target: Target,
        *,
        operator: str,
        confirm: Callable[[Step], bool],
        observer: RunObserver | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        stops: Stops | None = None,
    ) -> None:
        self.sequence = sequence
        # Where a signal may stop the run: before it arms, between two steps, in a wait, at
        # a prompt; never in a request, nor in the power-down (see interlock.interrupts).
        self.stops = stops or Stops()
        self.configuration = configuration
        self.target = target
        self.operator = operator
        self.confirm = confirm
        self.observer = observer or _Silent()
        self.sleep = sleep
        self.clock = clock

    def preflight(self) -> None:
        """Refuse to start a run whose dry run already finds a violation."""
        report = dry_run(self.sequence, self.configuration)
        if report.violations:
            first = report.violations[0]
            raise LimitViolation(
                f"the dry run finds {len(report.violations)} violation(s), the first at step "
                f"{first.step.number} ({first.step.describe()}): {first.verdict.reason}; "
                "nothing was sent (see --dry-run)",
                first.verdict.rule or "",
                first.verdict.where or "",
            )

    def run(self) -> RunReport:
        self.preflight()
        self.stops.stop_here()  # a signal while the service started: nothing armed yet
        armed_here = self._arm()
        report = self._new_report()
        self.observer.run_started(report)
        started = self.clock()
        total = len(self.sequence.steps)
        try:
            for step in self.sequence.steps:
                self.stops.stop_here()
                self.observer.step_started(step, total)
                began = self.clock()
                result = self._execute(step)
                result = replace(result, at=began - started, elapsed=self.clock() - began)
                report.results.append(result)
                self.observer.step_finished(result, total)
                if result.stops:
                    break
        except KeyboardInterrupt as interrupt:
            # Ctrl-C, or a signal for it: power down as at any end, then report what was
            # done (exit 130).
            report.interrupted = True
            report.interrupted_by = getattr(interrupt, "by", "Ctrl-C")
        finally:
            report.elapsed = self.clock() - started
            self._finish(report, armed_here)
        return report

    def _new_report(self) -> RunReport:
        status = self.target.status()
        profile = self.configuration.profile
        return RunReport(
            self.sequence,
            run_id=status.get("run") or None,
            bench=self.configuration.bench.name,
            environment=self.configuration.bench.environment,
            profile={
                "name": profile.name,
                "path": profile.shown_path,
                "sha256": profile.sha256,
            },
            started=time.time(),
        )

    # -- arming ----------------------------------------------------------------

    def _arm(self) -> bool:
        """Arm the bench, or accept it armed and untouched; True if armed here."""
        status = self.target.status()
        if status.get("fault"):
            # A fault, as the operator commands say it (exit 4): an operator's reset first.
            raise FaultLatched.on_bench(status["bench"], status["fault"])
        if status["state"] == "safe":
            self.target.arm(self.operator)
            return True
        if status["state"] != "armed":
            raise StateError(
                f"bench {status['bench']} is {status['state']}: a sequence starts from an armed "
                "bench with everything off"
            )
        differences = self._differences_from_armed(status)
        if differences:
            raise StateError(
                f"bench {status['bench']} is armed but not as arming leaves it "
                f"({'; '.join(differences)}): the dry run would not describe this run; "
                "disarm and arm it again"
            )
        return False

    def _differences_from_armed(self, status: dict[str, Any]) -> list[str]:
        expected = armed_state(self.configuration)
        found = []
        for net, want in expected.nets.items():
            have = status["nets"].get(net, {})
            if have.get("output"):
                found.append(f"{net} is live")
            if abs(have.get("setpoint", 0.0) - want.voltage) > 1e-9:
                found.append(f"{net} set to {format_quantity(have.get('setpoint', 0.0), VOLTAGE)}")
            if abs(have.get("current_limit", 0.0) - want.current_limit) > 1e-9:
                limit = format_quantity(have.get("current_limit", 0.0), CURRENT)
                found.append(f"{net} current limit {limit}")
        closed = sorted(r for r, is_closed in status.get("relays", {}).items() if is_closed)
        if closed:
            found.append(f"relays closed: {', '.join(closed)}")
        return found

    # -- steps -----------------------------------------------------------------

    def _execute(self, step: Step) -> StepResult:
        try:
            self.target.note(_marker(step, len(self.sequence.steps)), step.number)
            if step.action in ACTUATING:
                return self._actuate(step)
            if step.action == "measure":
                return self._measure(step)
            if step.action == "wait":
                return self._wait(step)
            if step.action == "prompt":
                with self.stops.interruptible():
                    accepted = self.confirm(step)
                return StepResult(step, OK if accepted else DECLINED, live=self._live())
        except ConfigError:
            raise
        except InterlockError as error:
            return StepResult(step, FAULT, detail=self._fault_detail(error))
        raise AssertionError(f"unknown action {step.action!r}")  # the loader admits none

    def _actuate(self, step: Step) -> StepResult:
        target = self.target
        try:
            match step.action:
                case "set" if step.current_limit is not None:
                    target.set_current_limit(step.net, step.current_limit)
                case "set" | "ramp":
                    target.set_voltage(step.net, step.voltage)
                case "relay":
                    target.set_relay(step.relay, bool(step.closed))
                case "output" if step.on:
                    target.output_on(step.net)
                case "output":
                    target.output_off(step.net)
            verdict = ALLOWED
        except LimitViolation as refusal:
            verdict = Verdict(False, refusal.rule, refusal.where, refusal.reason)
        outcome, verdict = judge(step, verdict, self.sequence)
        return StepResult(step, outcome, verdict, live=self._live())

    def _measure(self, step: Step) -> StepResult:
        reading = self.target.measure(step.net)
        value = reading[step.quantity]
        outcome = PASS if step.passes(value) else FAIL
        if outcome == FAIL:
            # Right after its measurement, so the post-mortem marks the reading that failed.
            text = f"{FAILED_NOTE_PREFIX}{_marker(step, len(self.sequence.steps))}"
            self.target.note(_bounded(f"{text}: measured {step.shown(value)}"), step.number)
        return StepResult(step, outcome, value=value, live=self._live())

    def _wait(self, step: Step) -> StepResult:
        deadline = self.clock() + (step.duration or 0.0)
        while (remaining := deadline - self.clock()) > 0:
            with self.stops.interruptible():
                self.sleep(min(remaining, WAIT_POLL))
            fault = self.target.status().get("fault")
            if fault:
                return StepResult(step, FAULT, detail=f"the bench faulted during the wait: {fault}")
        return StepResult(step, OK, live=self._live())

    def _live(self) -> dict[str, dict[str, float]]:
        """Every live net measured now (the monitor's last reading may predate the step)."""
        nets = self.target.status().get("nets", {})
        return {net: self.target.measure(net) for net, info in nets.items() if info.get("output")}

    def _fault_detail(self, error: InterlockError) -> str:
        try:
            fault = self.target.status().get("fault")
        except InterlockError:
            fault = None
        text = f"{type(error).__name__}: {error}"
        return f"{text} (bench fault: {fault})" if fault and fault not in text else text

    # -- the end -------------------------------------------------------------------

    def _finish(self, report: RunReport, armed_here: bool) -> None:
        try:
            self._power_down()
            status = self.target.status()
            report.fault = status.get("fault")
            if armed_here and status["state"] == "armed":
                self.target.disarm(self.operator)
            return
        except InterlockError as error:
            report.safe_state_forced = f"{type(error).__name__}: {error}"
        try:
            self.target.safe_state(f"sequence {self.sequence.name}: power-down failed")
            report.fault = self.target.status().get("fault")
        except InterlockError as error:
            # Out of reach: the service drives the bench safe when the run's lease ends;
            # say so rather than hide the run's own report.
            report.safe_state_forced += f"; the stop failed too: {type(error).__name__}: {error}"
            report.fault = report.fault or "unknown: the bench could not be reached"

    def _power_down(self) -> None:
        """Live nets off in power-off order, then every relay open: all through the interlock."""
        status = self.target.status()
        if status.get("fault") or status["state"] not in ("armed", "live"):
            return  # a fault has already driven the bench safe
        limits = self.configuration.limits
        for net in limits.power_off:
            if not status["nets"].get(net, {}).get("output"):
                continue
            # Relays that must be open before this net changes (their own nets are off by now).
            for rule in limits.open_before_change:
                if rule.net == net:
                    for relay in sorted(rule.relays):
                        if status["relays"].get(relay):
                            self.target.set_relay(relay, False)
            self.target.output_off(net)
            status = self.target.status()
        for relay, closed in sorted(self.target.status()["relays"].items()):
            if closed:
                self.target.set_relay(relay, False)
