"""The pytest plugin: the example suite in examples/pytest_bench, and tests that misbehave."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from interlock.errors import SimulatorError
from interlock.journal import JournalReader
from tests.service.conftest import ROOT, assert_bench_safe
from tests.terminal import in_a_terminal
from tests.waiting import until

EXAMPLE = ROOT / "examples" / "pytest_bench"
ROGUE = Path(__file__).with_name("rogue_bench_tests.py")


def run_pytest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *args,
            "-rA",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:schemathesis",  # not needed there, and slow to import
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def pytest_in(
    directory: Path, environment: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """pytest run in ``directory`` with exactly ``environment``, as a team runs its own suite."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )


def outcomes(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return {
        line.split("::")[-1].split()[0]: line.split()[0]
        for line in result.stdout.splitlines()
        if line.startswith(("PASSED ", "FAILED ", "ERROR ", "SKIPPED ")) and "::" in line
    }


def test_the_example_suite_passes_and_misbehaving_tests_leave_the_bench_safe(served):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(EXAMPLE / "test_mdb24_power.py"),
            str(ROGUE),
            "-rA",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:schemathesis",  # not needed there, and slow to import
            "--interlock-bench",
            str(served.bench_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    outcomes = {
        line.split("::")[-1].split()[0]: line.split()[0]
        for line in result.stdout.splitlines()
        if line.startswith(("PASSED ", "FAILED ", "ERROR ")) and "::" in line
    }
    examples = {name: "PASSED" for name in _test_names(EXAMPLE / "test_mdb24_power.py")}
    assert outcomes == {
        **examples,
        "test_breaks_while_live": "FAILED",
        "test_closes_its_client_while_live": "PASSED",
    }, result.stdout + result.stderr
    assert result.returncode == 1

    assert_bench_safe(served.truth())
    status = served.service.status()
    assert status["lease"] is None
    # The last test gave the lease back with a net live: the service tripped the bench.
    assert status["state"] == "fault"
    assert "lease released with VLOGIC still live" in status["fault"]
    with JournalReader(served.service.settings.journal) as reader:
        entries = list(reader.entries())
    leases = [e.payload["event"] for e in entries if e.payload.get("action") == "lease"]
    assert leases.count("granted") == leases.count("released") == len(examples) + 2
    faults = [e.payload["cause"] for e in entries if e.kind == "fault"]
    assert faults[0] == "lease"  # the only fault is the one the rogue test asked for


def test_the_fault_example_passes_on_the_simulated_bench(served):
    result = run_pytest(
        str(EXAMPLE / "test_faults.py"), "--interlock-bench", str(served.bench_path)
    )
    assert outcomes(result) == {
        name: "PASSED" for name in _test_names(EXAMPLE / "test_faults.py")
    }, result.stdout + result.stderr
    assert result.returncode == 0
    # The short it injected happened, was caught, and was cleared; the bench is safe.
    changes = served.simulator.history("VBUS").changes
    seen = [(c.kind, c.detail) for c in changes if c.kind in ("fault-injected", "protection-trip")]
    assert seen[:2] == [("fault-injected", "short:VBUS"), ("protection-trip", "psu CH2 OCP")]
    assert served.simulator.faults() == []
    assert served.service.status()["state"] == "safe"
    assert_bench_safe(served.truth())


def test_bench_sim_on_a_real_bench_says_there_is_none(sim_bench_factory, serve_bench):
    sim = sim_bench_factory()
    served = serve_bench(environment="engineering", name="eng-bench-03", resources=sim.resources)
    client = served.client("viewer")
    with pytest.raises(SimulatorError, match="eng-bench-03 is a engineering bench: it has no"):
        client.sim.truth()


def _test_names(path: Path) -> list[str]:
    return [
        line.split("(")[0].removeprefix("def ")
        for line in path.read_text().splitlines()
        if line.startswith("def test_")
    ]


def test_each_test_report_carries_the_run_id_and_the_bench(served, tmp_path):
    junit = tmp_path / "junit.xml"
    result = run_pytest(
        str(EXAMPLE / "test_mdb24_power.py"),
        "--interlock-bench",
        str(served.bench_path),
        f"--junitxml={junit}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    from junitparser import JUnitXml, Properties

    cases = [case for suite in JUnitXml.fromfile(str(junit)) for case in suite]
    assert cases
    with JournalReader(served.service.settings.journal) as reader:
        runs = {run.run_id for run in reader.runs()}
    for case in cases:
        (properties,) = case.iterchildren(Properties)  # pytest puts them on the test case
        properties = {p.name: p.value for p in properties}
        assert properties["interlock_bench"] == "sim-bench-01"
        assert properties["interlock_environment"] == "simulation"
        assert properties["interlock_run"] in runs
        assert properties["interlock_bench_file"] == f"{served.bench_path} (given)"


def test_the_bench_is_found_by_the_environment_or_upward_or_said_missing(served, tmp_path):
    """Outside the checkout: $INTERLOCK_BENCH, else bench.toml here or above; else one line."""
    lost = tmp_path / "elsewhere"  # no bench.toml here nor above
    lost.mkdir()
    suite = served.directory / "deep" / "er"  # the served bench.toml is above it
    suite.mkdir(parents=True)
    (lost / "test_one.py").write_text(
        "def test_status(bench):\n    assert bench.status()['bench'] == 'sim-bench-01'\n"
    )
    (suite / "test_one.py").write_text(
        "def test_status(bench):\n    assert bench.status()['bench'] == 'sim-bench-01'\n"
    )

    clean = {k: v for k, v in os.environ.items() if k != "INTERLOCK_BENCH"}
    missing = pytest_in(lost, clean, "-q", "test_one.py")
    assert missing.returncode == 1
    assert "Traceback" not in missing.stdout and "interlock: bench.toml: no bench file" in (
        missing.stdout
    ), missing.stdout
    # pytest's own option is named, and the error is one, not one raised while handling another.
    assert "none given (--interlock-bench FILE)" in missing.stdout
    assert "During handling" not in missing.stdout
    found = pytest_in(
        lost, {**os.environ, "INTERLOCK_BENCH": str(served.bench_path)}, "-q", "test_one.py"
    )
    assert found.returncode == 0, found.stdout + found.stderr
    upward = pytest_in(suite, clean, "-q", "test_one.py")
    assert upward.returncode == 0, upward.stdout + upward.stderr


def test_a_bench_in_a_latched_fault_errors_each_test_at_its_set_up_saying_why(served, tmp_path):
    served.client("viewer").estop()
    (tmp_path / "test_two.py").write_text(
        "def test_one(bench):\n    bench.set_voltage('VLOGIC', 1.0)\n\n"
        "def test_two(bench):\n    bench.set_voltage('VLOGIC', 1.0)\n"
    )
    environment = {**os.environ, "INTERLOCK_BENCH": str(served.bench_path)}
    result = pytest_in(tmp_path, environment, "-rA", "test_two.py")
    assert outcomes(result) == {"test_one": "ERROR", "test_two": "ERROR"}, result.stdout
    # Each error says it in a line of its own (pytrace off: the line alone, no frames).
    # The short summary repeats it after "ERROR ... - Failed:", cut or not by the
    # terminal's width, so only the errors' own lines are counted.
    said = [line for line in result.stdout.splitlines() if line.startswith("interlock: bench")]
    assert len(said) == 2, result.stdout
    assert all(
        line.startswith("interlock: bench sim-bench-01 is in a latched fault: estop")
        and "`interlock reset`" in line
        for line in said
    ), said
    assert "Traceback" not in result.stdout
    assert served.controller.state == "fault"  # never reset by the fixture


def start_pytest(directory: Path, bench: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", *args],
        cwd=directory,
        env={**os.environ, "INTERLOCK_BENCH": str(bench)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def signal_when(process: subprocess.Popen[str], marker: Path, stop: int) -> str:
    """Send ``stop`` once ``marker`` exists; the session's output."""
    try:
        assert until(lambda: marker.exists() or process.poll() is not None, 60)
        assert process.poll() is None, process.communicate()[0]
        process.send_signal(stop)
        return process.communicate(timeout=60)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def assert_safe_not_tripped(served, out: str) -> None:
    status = served.service.status()
    assert (status["state"], status["fault"], status["lease"]) == ("safe", None, None), out
    assert_bench_safe(served.truth())


LIVE_VLOGIC = (
    "    bench.set_current_limit('VLOGIC', 0.25)\n"
    "    bench.set_voltage('VLOGIC', 5.0)\n"
    "    bench.output_on('VLOGIC')\n"
)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_session_stopped_by_a_signal_returns_the_bench_to_safe_not_to_a_fault(
    served, tmp_path, stop
):
    """A CI system cancelling the job (SIGTERM), a session that ends (SIGHUP), Ctrl-C, while
    a test holds a net live: the session stops, and the fixture's teardown returns the
    bench to safe, instead of a process killed leaving it tripped on its lost lease."""
    live = tmp_path / "live"
    (tmp_path / "test_soak.py").write_text(
        "import pathlib, time\n\n"
        "def test_soak(bench):\n" + LIVE_VLOGIC + f"    pathlib.Path({str(live)!r}).touch()\n"
        "    time.sleep(60)\n\n"
        "def test_after(bench):\n"
        "    bench.set_voltage('VLOGIC', 1.0)\n"
    )
    process = start_pytest(tmp_path, served.bench_path, "test_soak.py")
    out = signal_when(process, live, stop)
    assert process.returncode == pytest.ExitCode.INTERRUPTED, out
    assert "test_after" not in out.replace("def test_after", "")  # never started
    assert_safe_not_tripped(served, out)


def test_a_signal_during_another_fixtures_teardown_lets_every_teardown_finish(served, tmp_path):
    """SIGTERM while a fixture built on the bench powers down in its teardown: that
    teardown and the bench fixture's run whole, then the session ends."""
    tearing = tmp_path / "tearing"
    (tmp_path / "test_powered.py").write_text(
        "import pathlib, time\nimport pytest\n\n"
        "@pytest.fixture\n"
        "def powered(bench):\n" + LIVE_VLOGIC + "    yield bench\n"
        f"    pathlib.Path({str(tearing)!r}).touch()\n"
        "    time.sleep(1)\n"
        "    bench.output_off('VLOGIC')\n"
        "    pathlib.Path('off').touch()\n\n"
        "def test_one(powered):\n    pass\n\n"
        "def test_two(powered):\n    pass\n"
    )
    process = start_pytest(tmp_path, served.bench_path, "test_powered.py", "--junitxml=r.xml")
    out = signal_when(process, tearing, signal.SIGTERM)
    assert process.returncode == pytest.ExitCode.INTERRUPTED, out
    assert "stopped by SIGTERM" in out
    assert (tmp_path / "off").exists()  # the fixture's own teardown went on to its end
    assert "test_two" not in out.replace("def test_two", "")
    assert_safe_not_tripped(served, out)
    # The test's report is whole: the run id that the post-mortem needs is in it.
    assert 'name="interlock_run"' in (tmp_path / "r.xml").read_text()


def test_a_test_that_takes_the_interrupt_itself_still_ends_the_session(served, tmp_path):
    """A test body that catches KeyboardInterrupt (a sequence run inside a test does):
    the signal still ends the session once the bench is back to safe."""
    live = tmp_path / "live"
    (tmp_path / "test_catches.py").write_text(
        "import pathlib, time\n\n"
        "def test_catches(bench):\n" + LIVE_VLOGIC + "    try:\n"
        f"        pathlib.Path({str(live)!r}).touch()\n"
        "        time.sleep(60)\n"
        "    except KeyboardInterrupt:\n"
        "        pass\n\n"
        "def test_after(bench):\n"
        "    bench.set_voltage('VLOGIC', 1.0)\n"
    )
    process = start_pytest(tmp_path, served.bench_path, "test_catches.py")
    out = signal_when(process, live, signal.SIGTERM)
    assert process.returncode == pytest.ExitCode.INTERRUPTED, out
    assert "test_after" not in out.replace("def test_after", "")
    assert_safe_not_tripped(served, out)


def test_a_session_in_a_terminal_that_closes_leaves_the_bench_safe_and_exits_interrupted(
    served, tmp_path
):
    """pytest in a remote session that ends, its output captured (it writes to a copy of
    the terminal): every descriptor on the terminal goes to /dev/null, so pytest ends as
    interrupted rather than failing on the terminal that is gone."""
    live = tmp_path / "live"
    (tmp_path / "test_soak.py").write_text(
        "import pathlib, time\n\n"
        "def test_soak(bench):\n" + LIVE_VLOGIC + f"    pathlib.Path({str(live)!r}).touch()\n"
        "    time.sleep(60)\n"
    )
    argv = ("-m", "pytest", "-p", "no:cacheprovider", str(tmp_path / "test_soak.py"))
    environment = {"INTERLOCK_BENCH": str(served.bench_path)}
    with in_a_terminal(*argv, ready=b"test_soak.py", environment=environment) as session:
        assert until(lambda: live.exists() or session.process.poll() is not None, 60)
        assert session.hang_up(timeout=60) == pytest.ExitCode.INTERRUPTED
    assert_safe_not_tripped(served, "")
