"""``interlock run SEQ``: run a sequence on the bench, or check it with ``--dry-run``.

The dry run checks every step against the pinned limits and sends nothing.
A real run is always preceded by the same check and starts only if it is
clean. Operator prompts are asked at a terminal; ``--yes`` answers them all
(printed as such); with no terminal and no ``--yes`` nobody could answer, so
the run is not started (exit 2) rather than stopped halfway with the board
live.

The run's id (the journal's, for ``interlock postmortem RUN``) is printed
when the run starts and in its summary; ``--report FILE`` writes the result
as JUnit XML (``.xml``) or JSON (``.json``), as many as asked for. Ctrl-C
stops the run: the bench is powered down through the interlock, the summary
says the run was interrupted, and the reports are written (exit 130). So do
SIGTERM (a job's end, a CI system cancelling it) and SIGHUP (the session's
end). Each stops the run between two requests (:mod:`interlock.interrupts`).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import getpass
import sys
from typing import Any

from interlock.commands.common import add_bench_argument, banner, bench_file
from interlock.config import Configuration, load_configuration
from interlock.config.reader import display_path
from interlock.errors import InvalidArgument
from interlock.exits import EXIT_PASS, EXIT_REFUSED, EXIT_USAGE
from interlock.interrupts import signals_interrupt
from interlock.limits import Verdict
from interlock.sequence import (
    DryRunReport,
    SequenceRunner,
    Step,
    StepResult,
    bind,
    dry_run,
    in_process_service,
    load_sequence,
)
from interlock.sequence.dryrun import ALLOWED_UNEXPECTEDLY, REFUSED, REFUSED_AS_EXPECTED
from interlock.sequence.reports import report_format, verdict_word, write_report
from interlock.sequence.runner import DECLINED, FAIL, FAULT, PASS, RunReport
from interlock.sequence.target import service_client
from interlock.units import CURRENT, DURATION, VOLTAGE, format_quantity

OUTCOME_WORDS = {ALLOWED_UNEXPECTEDLY: "ALLOWED, but the sequence expects a refusal"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a sequence on the bench (or check it with --dry-run)",
        description="Run a sequence of steps through the interlock, or dry run it.",
    )
    parser.add_argument("sequence", metavar="SEQ", help="sequence file (TOML)")
    add_bench_argument(parser)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check every step against the pinned limits; send nothing",
    )
    parser.add_argument(
        "--yes", action="store_true", help="answer yes to every operator prompt (unattended runs)"
    )
    parser.add_argument(
        "--report",
        action="append",
        default=[],
        metavar="FILE",
        type=_report_file,
        help="write the result to FILE too: JUnit XML (.xml) or JSON (.json), by its extension "
        "(repeatable): every step, verdict, measurement with its window, refusal with its rule, "
        "the run id, the bench, the profile and its hash",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="simulation benches only: run through a service hosted in this process, on a "
        "fresh simulated bench, instead of through the bench's service",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    configuration = load_configuration(bench_file(args))
    print(banner(configuration.bench), flush=True)
    sequence = load_sequence(args.sequence)
    profile = configuration.profile
    print(f"sequence  {sequence.name} ({sequence.shown_path}), written for {sequence.profile}")
    print(f"profile   {profile.name} ({profile.shown_path})")
    sequence = bind(sequence, configuration)  # a sequence for another DUT is refused here

    report = dry_run(sequence, configuration)
    if args.dry_run:
        _print_dry_run(report, every_step=True)
        return EXIT_PASS if report.ok else EXIT_REFUSED
    if not report.ok:
        _print_dry_run(report, every_step=False)
        print("not run: the dry run finds violations; nothing was sent")
        return EXIT_REFUSED
    print(
        f"dry run   {len(sequence.steps)} steps clean"
        f"{_expected_note(len(report.expected_refusals))}, at least "
        f"{format_quantity(round(report.duration, 2), DURATION)}"
    )
    if sequence.prompts and not args.yes and not sys.stdin.isatty():
        print(
            f"not run: {len(sequence.prompts)} operator prompt(s) and no terminal to answer them; "
            "run it at a terminal, or pass --yes to answer them all",
            file=sys.stderr,
        )
        return EXIT_USAGE
    # Until the reports are written: a signal after the run's end is noted, not obeyed.
    with (
        signals_interrupt() as stops,
        contextlib.redirect_stdout(_HungUpIsSilent(sys.stdout)),
        contextlib.redirect_stderr(_HungUpIsSilent(sys.stderr)),
    ):
        with _target(args, configuration) as target:
            console = _Console(yes=args.yes)
            runner = SequenceRunner(
                sequence,
                configuration,
                target,
                operator=getpass.getuser(),
                confirm=console.confirm,
                observer=console,
                stops=stops,
            )
            result = runner.run()
        _print_summary(result)
        for path in args.report:
            try:
                print(f"report    {write_report(result, path)}")
            except OSError as exc:
                raise InvalidArgument(f"--report {path}: cannot write it: {exc}") from exc
        print(f"exit {result.exit_code}")  # last: what the shell gets
    return result.exit_code


class _HungUpIsSilent:
    """``stream``, but what its terminal refuses once hung up (EIO) is dropped: written
    between the hang-up and its SIGHUP's handler (which points the terminal at /dev/null),
    a line of the summary must not end the run before its reports are written."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as error:
            if error.errno != errno.EIO:
                raise
            return len(text)  # the terminal is gone: nobody to say it to

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as error:
            if error.errno != errno.EIO:
                raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _report_file(text: str) -> str:
    try:
        report_format(text)
    except InvalidArgument as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _target(args: argparse.Namespace, configuration: Configuration):
    """The bench's service (started in the background for a simulation bench if none
    answers), or with --in-process a service of our own on a fresh simulated bench."""
    bench = configuration.bench
    if args.in_process:
        print(f"target    a service in this process, on a fresh simulated bench {bench.name}")
        print(f"journal   {display_path(bench.service.journal)}", flush=True)
        return in_process_service(configuration)
    from interlock.service.background import answers, log_path

    socket = bench.service.socket
    print(f"target    the controller service of {bench.name} on {display_path(socket)}")
    if not answers(socket) and bench.environment == "simulation":
        print(
            f"service   none answered: starting one in the background "
            f"(log {display_path(log_path(socket))}; it keeps running)"
        )
    sys.stdout.flush()
    return service_client(bench_file(args))


# --- output --------------------------------------------------------------------------


def _expected_note(count: int) -> str:
    return f" ({count} refusal{'s' if count != 1 else ''} expected)" if count else ""


def _verdict_line(verdict: Verdict) -> str:
    return f"{verdict.rule} ({verdict.where}): {verdict.reason}"


def _step_title(step: Step, total: int) -> str:
    width = len(str(total))
    title = f"step {step.number:>{width}}/{total}  {step.describe()}"
    return f"{title}  [{step.label}]" if step.label else title


def _print_dry_run(report: DryRunReport, *, every_step: bool) -> None:
    total = len(report.sequence.steps)
    print(f"dry run   {total} steps checked against the pinned limits; nothing sent")
    for check in report.checks:
        if not every_step and not check.is_violation:
            continue
        at = format_quantity(round(check.at, 3), DURATION)
        outcome = OUTCOME_WORDS.get(check.outcome, check.outcome)
        print(f"  {_step_title(check.step, total)}  @{at}: {outcome}")
        if not check.verdict.allowed:
            print(f"      by {_verdict_line(check.verdict)}")
    violations = report.violations
    print(
        f"dry run: {len(violations)} violation{'s' if len(violations) != 1 else ''}"
        f"{_expected_note(len(report.expected_refusals))}; the steps take at least "
        f"{format_quantity(round(report.duration, 2), DURATION)}"
    )
    for check in violations:
        print(f"  step {check.step.number}: {_verdict_line(check.verdict)}")


def _live_text(live: dict[str, dict[str, float]]) -> str:
    parts = []
    for net, measured in live.items():
        if "voltage" in measured and "current" in measured:
            volts, amps = measured["voltage"], measured["current"]
            parts.append(f"{net} {_short(volts, VOLTAGE)} {_short(amps, CURRENT)}")
        else:
            parts.append(f"{net} live")
    return ", ".join(parts)


def _short(value: float, dimension: Any) -> str:
    return format_quantity(float(f"{value:.4g}"), dimension)


class _Console:
    """Progress on stdout; operator prompts on the terminal (or answered by --yes)."""

    def __init__(self, *, yes: bool) -> None:
        self.yes = yes

    def confirm(self, step: Step) -> bool:
        if self.yes:
            print("      answered yes by --yes")
            return True
        try:
            answer = input("      Confirm and continue? [y/N] ")
        except EOFError:
            return False
        return answer.strip().lower() in ("y", "yes")

    def run_started(self, report: RunReport) -> None:
        if report.run_id:
            print(f"run       {report.run_id} (`interlock postmortem {report.run_id} --out DIR`)")
        else:
            print("run       no run id: the service gave none")
        sys.stdout.flush()

    def step_started(self, step: Step, total: int) -> None:
        print(_step_title(step, total), flush=True)

    def step_finished(self, result: StepResult, total: int) -> None:
        step, words = result.step, OUTCOME_WORDS.get(result.outcome, result.outcome)
        if result.outcome in (PASS, FAIL):
            words = f"{step.shown(result.value)}: {result.outcome.upper()} (window {step.window()})"
        line = f"      {words}"
        if result.live:
            line += f"   live: {_live_text(result.live)}"
        print(line)
        if not result.verdict.allowed:
            print(f"      by {_verdict_line(result.verdict)}")
        if result.detail:
            print(f"      {result.detail}")
        sys.stdout.flush()


def _print_summary(report: RunReport) -> None:
    total = len(report.sequence.steps)
    measured = report.count(PASS, FAIL)
    print()
    print(f"summary   {verdict_word(report)}: {report.sequence.name}")
    print(f"  run           {report.run_id or 'none'}")
    by = report.interrupted_by or "Ctrl-C"
    stopped = f", interrupted ({by})" if report.interrupted else ", stopped"
    print(
        f"  steps         {len(report.results)} of {total} run"
        + ("" if report.completed else stopped)
    )
    print(f"  measurements  {report.count(PASS)} of {measured} passed")
    for result in report.results:
        if result.outcome == FAIL and result.value is not None:
            step = result.step
            print(
                f"    FAIL step {step.number}: {step.describe()}: "
                f"measured {step.shown(result.value)}"
            )
    expected = report.count(REFUSED_AS_EXPECTED)
    if expected:
        print(f"  refusals      {expected} expected and seen")
    said = ""  # the fault, said once: a step's fault names the bench's latched one
    for result in report.results:
        if result.outcome in (REFUSED, ALLOWED_UNEXPECTEDLY):
            print(f"  stopped at step {result.step.number}: {_verdict_line(result.verdict)}")
        elif result.outcome == FAULT:
            print(f"  fault at step {result.step.number}: {result.detail}")
            said += result.detail
        elif result.outcome == DECLINED:
            print(f"  stopped at step {result.step.number}: the operator declined")
    if report.interrupted:
        print(f"  interrupted   by {by}: the bench was powered down through the interlock")
    if report.safe_state_forced:
        print(f"  safe state forced: {report.safe_state_forced}")
    elif report.fault and report.fault not in said:
        print(f"  bench fault: {report.fault}")
    print(f"  time          {format_quantity(round(report.elapsed, 2), DURATION)}")
