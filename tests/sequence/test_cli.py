"""``interlock run``: exit codes and output lines."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import interlock.commands.run as run_command
from interlock.cli import main
from interlock.config import load_configuration
from interlock.journal import JournalReader
from interlock.sequence import bind, load_sequence
from interlock.sequence.runner import FAULT, RunReport, StepResult
from interlock.service.runtime import Service
from interlock.service.server import ServiceThread
from tests.sequence.conftest import EXAMPLE, ROOT, WRONG_PROFILE, bench_copy
from tests.service.conftest import stop_simulators
from tests.terminal import in_a_terminal


class Terminal(io.StringIO):
    """A stdin that is a terminal, with the operator's answers in it."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def bench(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # paths in the output are shown relative to the repository
    return str(bench_copy(tmp_path))


@pytest.fixture
def short_bench(monkeypatch):
    """A bench copy in a short directory: a Unix socket path holds at most 107 bytes."""
    monkeypatch.chdir(ROOT)
    directory = Path(tempfile.mkdtemp(prefix="ilk-seq-", dir="/tmp"))
    yield bench_copy(directory)
    stop_simulators(directory)  # the service started one: it outlives the service
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def nothing_started(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a bench was started")

    monkeypatch.setattr(run_command, "in_process_service", refuse)
    monkeypatch.setattr(run_command, "service_client", refuse)


def test_the_example_runs_end_to_end_in_process(bench, capsys):
    assert main(["run", str(EXAMPLE), "--bench", bench, "--yes", "--in-process"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "bench sim-bench-01 [simulation]"
    assert "step  1/28  operator: The MDB-24 is seated in the fixture and the lid is closed" in out
    assert "answered yes by --yes" in out
    assert "step 10/28  ramp VBUS to 26 V" in out
    assert "refused as expected" in out
    assert (
        "by nets.VBUS.max_voltage (profiles/mdb24.toml: nets.VBUS.max_voltage): "
        "26 V is above the maximum of 25 V" in out
    )
    # The reading with the digits it has (24.0003 V, say): the window shows what passes.
    assert re.search(r"\n      2[34]\.?\d* V: PASS \(window 23\.8 V \.\. 24\.2 V\)", out), out
    assert "live: VLOGIC 5 V" in out
    assert "summary   PASS: MDB-24 power-up" in out
    assert "  steps         28 of 28 run" in out
    assert "  measurements  6 of 6 passed" in out
    assert lines[-1] == "exit 0"


def test_the_wrong_profile_is_refused(bench, capsys, nothing_started):
    assert main(["run", str(WRONG_PROFILE), "--bench", bench]) == 3
    captured = capsys.readouterr()
    assert captured.out.startswith("bench sim-bench-01 [simulation]\n")
    assert "LimitViolation: refused by sequence.profile" in captured.err
    assert 'written for "SNB-5", but bench sim-bench-01 is set up for "MDB-24"' in captured.err
    assert main(["run", str(WRONG_PROFILE), "--bench", bench, "--dry-run"]) == 3


def test_a_bad_sequence_is_a_config_error(bench, capsys, write_sequence, tmp_path):
    path = write_sequence('[[steps]]\naction = "set"\nnet = "VBUS"\nvoltage = "12"\n')
    assert main(["run", str(path), "--bench", bench]) == 2
    err = capsys.readouterr().err
    assert "ConfigError: " in err
    assert f"{path.name}: step 1.voltage: expected a voltage" in err
    assert main(["run", str(tmp_path / "nowhere.toml"), "--bench", bench]) == 2
    assert "nowhere.toml: file not found" in capsys.readouterr().err


def test_a_run_with_violations_is_not_started(bench, capsys, write_sequence, nothing_started):
    path = write_sequence('[[steps]]\naction = "set"\nnet = "VBUS"\nvoltage = "30 V"\n')
    assert main(["run", str(path), "--bench", bench, "--yes"]) == 3
    out = capsys.readouterr().out
    assert "  step 1: nets.VBUS.max_voltage (profiles/mdb24.toml: nets.VBUS.max_voltage)" in out
    assert "not run: the dry run finds violations; nothing was sent" in out


def test_prompts_without_a_terminal_need_yes(bench, capsys, monkeypatch, nothing_started):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["run", str(EXAMPLE), "--bench", bench]) == 2
    assert "1 operator prompt(s) and no terminal to answer them" in capsys.readouterr().err


def test_an_operator_who_declines_stops_the_run(bench, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    assert main(["run", str(EXAMPLE), "--bench", bench, "--in-process"]) == 1
    out = capsys.readouterr().out
    assert "Confirm and continue? [y/N]" in out
    assert "stopped at step 1: the operator declined" in out
    assert "  steps         1 of 28 run, stopped" in out


def test_a_bench_that_is_not_simulated_is_not_run_in_process(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    path = bench_copy(tmp_path)
    text = path.read_text().replace('"simulation"', '"engineering"', 1)
    path.write_text(text[: text.index("[simulation]")])
    assert main(["run", str(EXAMPLE), "--bench", str(path), "--yes", "--in-process"]) == 2
    err = capsys.readouterr().err
    assert "bench.environment: bench sim-bench-01 is not a simulation bench (engineering)" in err


def test_the_example_runs_through_the_service(short_bench, capsys):
    """The default target: the bench's service (here in a thread, to read its ground truth)."""
    with ServiceThread(Service(short_bench)) as served:
        assert main(["run", str(EXAMPLE), "--bench", str(short_bench), "--yes"]) == 0
        truth = served.service.simulator.truth()
        state = served.service.controller.state
    out = capsys.readouterr().out
    assert f"target    the controller service of sim-bench-01 on {short_bench.parent}" in out
    assert "starting one in the background" not in out
    assert "refused as expected" in out and out.endswith("exit 0\n")
    assert state == "safe"
    assert truth["nets"]["VBUS"]["max_voltage"] == pytest.approx(24.0, abs=0.2)
    assert truth["nets"]["VBUS"]["max_voltage"] < 25.0
    assert truth["contacts"] == []


def test_the_run_id_is_printed_at_start_and_in_the_summary_and_reports_written(
    bench, capsys, tmp_path
):
    xml, data = tmp_path / "junit.xml", tmp_path / "result.json"
    argv = ["run", str(EXAMPLE), "--bench", bench, "--yes", "--in-process"]
    assert main([*argv, "--report", str(xml), "--report", str(data)]) == 0
    lines = capsys.readouterr().out.splitlines()
    started = next(line for line in lines if line.startswith("run       "))
    run_id = started.split()[1]
    assert started == f"run       {run_id} (`interlock postmortem {run_id} --out DIR`)"
    assert lines.index(started) < lines.index(next(x for x in lines if x.startswith("step  1/")))
    assert f"  run           {run_id}" in lines
    assert lines[-3:] == [f"report    {xml}", f"report    {data}", "exit 0"]  # exit last
    assert json.loads(data.read_text())["run_id"] == run_id
    assert f'<property name="run_id" value="{run_id}" />' in xml.read_text()


def test_a_report_of_no_known_format_is_a_usage_error(bench, capsys, nothing_started):
    with pytest.raises(SystemExit) as exited:
        main(["run", str(EXAMPLE), "--bench", bench, "--report", "out.txt"])
    assert exited.value.code == 2
    assert ".xml (JUnit) or .json" in capsys.readouterr().err


def test_a_failed_measurement_is_shown_against_its_window(bench, capsys, write_sequence):
    steps = (
        '[[steps]]\naction = "set"\nnet = "VLOGIC"\ncurrent_limit = "250 mA"\n'
        '[[steps]]\naction = "set"\nnet = "VLOGIC"\nvoltage = "5 V"\n'
        '[[steps]]\naction = "output"\nnet = "VLOGIC"\nstate = "on"\n'
        '[[steps]]\naction = "measure"\nnet = "VLOGIC"\nquantity = "voltage"\nmax = "4.5 V"\n'
    )
    assert main(["run", str(write_sequence(steps)), "--bench", bench, "--in-process"]) == 1
    out = capsys.readouterr().out
    shown = re.search(r"\n      (\S+ V): FAIL \(window <= 4\.5 V\)", out)
    assert shown, out
    assert f"    FAIL step 4: measure VLOGIC voltage <= 4.5 V: measured {shown.group(1)}" in out


def test_a_fault_is_said_once_in_the_summary(capsys):
    configuration = load_configuration(ROOT / "bench.toml")
    sequence = bind(load_sequence(EXAMPLE), configuration)
    cause = "monitor: VBUS: 0.2 V, commanded 24 V (regulation lost: short or overload?)"
    report = RunReport(
        sequence,
        results=[
            StepResult(
                sequence.steps[0],
                FAULT,
                detail=f"FaultLatched: bench sim-bench-01 is in a latched fault: {cause}"
                f" (bench fault: {cause})",
            )
        ],
        fault=cause,
        run_id="20260314T093000Z-abcdef",
    )
    run_command._print_summary(report)
    out = capsys.readouterr().out
    assert out.count("regulation lost") == 2  # the step's detail holds it twice: said once
    assert "  fault at step 1: FaultLatched" in out
    assert "bench fault:" not in out.replace("(bench fault:", "")


SOAK = (
    '[[steps]]\naction = "set"\nnet = "VLOGIC"\ncurrent_limit = "250 mA"\n'
    '[[steps]]\naction = "set"\nnet = "VLOGIC"\nvoltage = "5 V"\n'
    '[[steps]]\naction = "output"\nnet = "VLOGIC"\nstate = "on"\n'
    '[[steps]]\nlabel = "soak"\naction = "wait"\nduration = "60 s"\n'
    '[[steps]]\naction = "output"\nnet = "VLOGIC"\nstate = "off"\n'
)


def powered_down_after_the_interrupt(journal: Path, run_id: str) -> None:
    """VLOGIC powered down through the interlock after the run's last note, and no trip."""
    with JournalReader(journal) as reader:
        entries = list(reader.entries(run=run_id))
    requests = [
        (entry.payload.get("action"), entry.payload.get("net"), entry.payload.get("value"))
        for entry in entries
        if entry.kind == "request"
    ]
    assert requests.index(("output", "VLOGIC", False)) > requests.index(("note", None, None))
    assert requests[-1] == ("output", "VLOGIC", False) or ("set", None, False) in requests
    trips = [e.payload for e in entries if e.kind == "state" and e.payload.get("to") == "fault"]
    assert trips == []


@pytest.mark.parametrize(("stop", "said"), [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")])
def test_ctrl_c_or_sigterm_powers_down_prints_the_summary_and_exits_130(
    short_bench, write_sequence, stop, said
):
    """SIGTERM, as a CI system cancelling the job sends, stops the run as Ctrl-C does."""
    sequence = write_sequence(SOAK)
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "interlock", "run", str(sequence)),
            *("--bench", str(short_bench), "--in-process"),
            *("--report", str(short_bench.parent / "r.json")),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen = []
        for line in process.stdout:  # the wait has begun: VLOGIC is live
            seen.append(line)
            if "wait 60 s" in line:
                break
        else:
            raise AssertionError("".join(seen) + process.stderr.read())
        process.send_signal(stop)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    lines = "".join(seen).splitlines() + out.splitlines()
    assert "summary   INTERRUPTED: test" in lines
    assert f"  steps         3 of 5 run, interrupted ({said})" in lines  # the 4th was cut short
    assert f"  interrupted   by {said}: the bench was powered down through the interlock" in lines
    assert lines[-2:] == [f"report    {short_bench.parent / 'r.json'}", "exit 130"]
    result = json.loads((short_bench.parent / "r.json").read_text())
    assert result["interrupted"] is True and result["exit_code"] == 130
    assert result["interrupted_by"] == said
    # Powered down through the interlock, after the interrupt: the journal says so.
    powered_down_after_the_interrupt(short_bench.parent / "journal.sqlite", result["run_id"])


@pytest.mark.parametrize("first", [None, signal.SIGTERM])
def test_a_run_whose_terminal_closes_powers_the_bench_down_and_leaves_no_fault(
    short_bench, write_sequence, first
):
    """The remote session running a sequence ends (SIGHUP; a session manager sends SIGTERM
    first) while a net is live: the run stops as by Ctrl-C, through the bench's service,
    which is left safe, not tripped on a lost lease; the report is written though its
    terminal is gone."""
    sequence = write_sequence(SOAK)
    report = short_bench.parent / "r.json"
    with ServiceThread(Service(short_bench)) as served:
        argv = ("-m", "interlock", "run", str(sequence), "--bench", str(short_bench))
        with in_a_terminal(*argv, "--report", str(report), ready=b"wait 60 s") as run:
            assert served.service.controller.state == "live"
            if first is not None:
                run.process.send_signal(first)
            assert run.hang_up(timeout=60) == 130
        status = served.service.controller.status()
        truth = served.service.simulator.truth()
    assert (status["state"], status["fault"]) == ("safe", None)
    assert not truth["supplies"]["psu"]["1"]["output"]
    result = json.loads(report.read_text())
    # Two signals at once are handled in the order of their numbers: SIGHUP first.
    assert result["exit_code"] == 130
    assert result["interrupted_by"] in (("SIGHUP", "SIGTERM") if first else ("SIGHUP",))
    powered_down_after_the_interrupt(short_bench.parent / "journal.sqlite", result["run_id"])


def test_sigterm_at_any_moment_of_a_run_leaves_the_bench_safe_and_untripped(short_bench):
    """The example (28 steps: ramps, relays, outputs, measurements, a refusal) run through
    the bench's service, SIGTERM sent at moments spread over its whole length (as long as
    a first run without a signal took, however loaded the machine): each time the run
    stops between two requests and powers down through the interlock, and the bench is
    left safe, with no fault, no lease and nothing forced. The steps that were under way
    when it came are counted: the sweep must have met many of them."""
    report = short_bench.parent / "r.json"
    argv = [
        *(sys.executable, "-m", "interlock", "run", str(EXAMPLE)),
        *("--bench", str(short_bench), "--yes", "--report", str(report)),
    ]
    trials = 10
    length = 0.0  # from the first step to the end, measured by the first run
    cut_at: list[int] = []
    with ServiceThread(Service(short_bench)) as served:
        for trial in range(trials + 1):
            process = subprocess.Popen(
                argv,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            try:
                assert process.stdout is not None
                seen = []
                for line in process.stdout:  # the steps begin
                    seen.append(line)
                    if line.startswith("step  1/"):
                        break
                began = time.monotonic()
                if trial > 0:
                    time.sleep(length * (trial - 0.5) / trials)
                    process.send_signal(signal.SIGTERM)
                out = "".join(seen) + process.communicate(timeout=60)[0]
                if trial == 0:
                    length = time.monotonic() - began
            finally:
                if process.poll() is None:
                    process.kill()
                    process.communicate()
            status = served.service.controller.status()
            assert (status["state"], status["fault"]) == ("safe", None), out
            assert served.service.status()["lease"] is None, out
            result = json.loads(report.read_text())
            assert result["safe_state_forced"] is None, out
            if process.returncode == 130:
                assert result["interrupted_by"] == "SIGTERM", out
                cut_at.append(len([s for s in result["steps"] if s["outcome"] != "not run"]))
            else:  # the first run, or one over before the signal came (then maybe killed
                # by it, once done: nothing held any more)
                assert process.returncode in (0, -signal.SIGTERM), out
                assert out.rstrip().endswith("exit 0"), out
        truth = served.service.simulator.truth()
    assert truth["contacts"] == []
    assert len(set(cut_at)) >= 5, cut_at  # interrupted at many different steps
