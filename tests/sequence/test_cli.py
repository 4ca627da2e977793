"""``interlock run``: exit codes and output lines."""

from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path

import pytest

import interlock.commands.run as run_command
from interlock.cli import main
from interlock.service.runtime import Service
from interlock.service.server import ServiceThread
from tests.sequence.conftest import EXAMPLE, ROOT, WRONG_PROFILE, bench_copy
from tests.service.conftest import stop_simulators


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
    assert "24 V: PASS (window 23.8 V .. 24.2 V)" in out
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
    assert f"{path.name}: steps[0].voltage: expected a voltage" in err
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
