"""Real runs on the simulated bench, judged by its ground truth."""

from __future__ import annotations

import getpass
import math
import threading

import pytest

from interlock.config import load_configuration
from interlock.errors import LimitViolation, StateError
from interlock.journal import JournalReader
from interlock.sequence import SequenceRunner, bind, in_process_service, load_sequence
from interlock.sequence.dryrun import REFUSED, REFUSED_AS_EXPECTED
from interlock.sequence.runner import DECLINED, FAIL, FAULT, PASS
from tests.sequence.conftest import EXAMPLE, ROOT_BENCH

POWER_UP = """
[[steps]]
action = "set"
net = "VLOGIC"
current_limit = "250 mA"
[[steps]]
action = "set"
net = "VLOGIC"
voltage = "5 V"
[[steps]]
action = "output"
net = "VLOGIC"
state = "on"
[[steps]]
action = "set"
net = "VBUS"
current_limit = "300 mA"
[[steps]]
action = "set"
net = "VBUS"
voltage = "4 V"
[[steps]]
action = "output"
net = "VBUS"
state = "on"
"""


@pytest.fixture(scope="module")
def configuration():
    return load_configuration(ROOT_BENCH)


class Recorder:
    def __init__(self) -> None:
        self.started: list[int] = []
        self.finished = []
        self.run_ids: list[str | None] = []

    def run_started(self, report):
        self.run_ids.append(report.run_id)

    def step_started(self, step, total):
        self.started.append(step.number)

    def step_finished(self, result, total):
        self.finished.append(result)


def run(sequence_path, configuration, sim, tmp_path, *, confirm=lambda step: True, bypass=False):
    sequence = bind(load_sequence(sequence_path), configuration)
    recorder = Recorder()
    with in_process_service(
        configuration, simulator=sim, journal_path=tmp_path / "journal.sqlite"
    ) as target:
        runner = SequenceRunner(
            sequence, configuration, target, operator="tester", confirm=confirm, observer=recorder
        )
        if bypass:  # a refusal the dry run could not foresee
            runner.preflight = lambda: None
        report = runner.run()
        state = target.status()["state"]
    return report, recorder, state


def assert_within_limits_and_off(truth, configuration):
    for net, limits in configuration.limits.nets.items():
        seen = truth["nets"][net]
        assert seen["max_voltage"] <= limits.max_voltage, net
        assert seen["max_current"] <= limits.max_current, net
        assert seen["voltage"] == pytest.approx(0.0, abs=0.05), net
    assert truth["contacts"] == []


def test_the_example_passes_and_no_net_goes_beyond_its_limit(configuration, sim_bench, tmp_path):
    report, recorder, state = run(EXAMPLE, configuration, sim_bench, tmp_path)
    assert report.exit_code == 0, [(r.step.number, r.outcome, r.detail) for r in report.results]
    assert report.completed and len(report.results) == 28
    assert recorder.started == list(range(1, 29))
    refused = report.results[9]
    assert refused.outcome == REFUSED_AS_EXPECTED
    assert refused.verdict.rule == "nets.VBUS.max_voltage"
    assert report.count(PASS) == 6 and report.count(FAIL) == 0
    # Live values after the bus ramp: the bus measured at its new setpoint.
    assert refused.live["VBUS"]["voltage"] == pytest.approx(24.0, abs=0.2)
    assert state == "safe"  # disarmed again by the runner
    truth = sim_bench.truth()
    assert truth["nets"]["VBUS"]["max_voltage"] == pytest.approx(24.0, abs=0.2)
    assert truth["nets"]["MOTOR"]["max_voltage"] == pytest.approx(12.0, abs=0.1)
    assert_within_limits_and_off(truth, configuration)


def test_a_violation_found_by_the_dry_run_stops_the_run_before_anything_is_sent(
    configuration, sim_bench, tmp_path, write_sequence
):
    path = write_sequence(POWER_UP + '[[steps]]\naction = "ramp"\nnet = "VBUS"\nto = "26 V"\n')
    with pytest.raises(LimitViolation, match=r"nets\.VBUS\.max_voltage"):
        run(path, configuration, sim_bench, tmp_path)
    truth = sim_bench.truth()
    assert all(record["max_voltage"] == 0.0 for record in truth["nets"].values())
    assert not [line for line in sim_bench.ground_truth.lines("psu") if "OUTP ON" in line.upper()]


def test_an_unexpected_refusal_stops_the_run_and_powers_down(
    configuration, sim_bench, tmp_path, write_sequence
):
    steps = POWER_UP + '[[steps]]\naction = "ramp"\nnet = "VBUS"\nto = "26 V"\n'
    steps += '[[steps]]\naction = "wait"\nduration = "10 s"\n'
    report, recorder, state = run(
        write_sequence(steps), configuration, sim_bench, tmp_path, bypass=True
    )
    assert report.exit_code == 3
    last = report.results[-1]
    assert (last.step.number, last.outcome, last.verdict.rule) == (
        7,
        REFUSED,
        "nets.VBUS.max_voltage",
    )
    assert recorder.started == list(range(1, 8))  # the wait never began
    assert state == "safe"
    truth = sim_bench.truth()
    assert truth["nets"]["VBUS"]["max_voltage"] == pytest.approx(4.0, abs=0.1)
    assert_within_limits_and_off(truth, configuration)


def test_a_failed_measurement_is_recorded_and_the_run_goes_on(
    configuration, sim_bench, tmp_path, write_sequence
):
    steps = POWER_UP + (
        '[[steps]]\naction = "measure"\nnet = "VLOGIC"\nquantity = "voltage"\nmin = "5.2 V"\n'
        '[[steps]]\naction = "measure"\nnet = "VBUS"\nquantity = "current"\nmax = "50 mA"\n'
        '[[steps]]\naction = "output"\nnet = "VBUS"\nstate = "off"\n'
    )
    report, _, _ = run(write_sequence(steps), configuration, sim_bench, tmp_path)
    assert report.exit_code == 1
    assert [r.outcome for r in report.results[6:]] == [FAIL, PASS, "ok"]
    assert report.results[6].value == pytest.approx(5.0, abs=0.05)
    assert_within_limits_and_off(sim_bench.truth(), configuration)


def test_a_declined_prompt_stops_the_run_safely(configuration, sim_bench, tmp_path, write_sequence):
    steps = POWER_UP + '[[steps]]\naction = "prompt"\nmessage = "Is the fan running?"\n'
    steps += '[[steps]]\naction = "ramp"\nnet = "VBUS"\nto = "24 V"\n'
    asked = []
    report, _, state = run(
        write_sequence(steps),
        configuration,
        sim_bench,
        tmp_path,
        confirm=lambda step: asked.append(step.message) is not None,
    )
    assert asked == ["Is the fan running?"]
    assert report.exit_code == 1
    assert report.results[-1].outcome == DECLINED and len(report.results) == 7
    assert state == "safe"
    truth = sim_bench.truth()
    assert truth["nets"]["VBUS"]["max_voltage"] == pytest.approx(4.0, abs=0.1)
    assert_within_limits_and_off(truth, configuration)


def test_a_fault_stops_the_run(configuration, sim_bench_factory, tmp_path):
    sim = sim_bench_factory(faults=["open:MOTOR"])  # safe-to-mate finds the winding missing
    report, _, state = run(EXAMPLE, configuration, sim, tmp_path)
    assert report.exit_code == 4
    last = report.results[-1]
    assert (last.step.number, last.outcome) == (15, FAULT)
    assert "safe-to-mate" in last.detail
    assert report.fault and state == "fault"
    truth = sim.truth()
    assert truth["nets"]["MOTOR"]["max_voltage"] == 0.0
    assert_within_limits_and_off(truth, configuration)


def test_an_armed_bench_must_be_as_arming_left_it(configuration, sim_bench, tmp_path):
    sequence = bind(load_sequence(EXAMPLE), configuration)
    with in_process_service(
        configuration, simulator=sim_bench, journal_path=tmp_path / "journal.sqlite"
    ) as target:
        target.arm("operator")
        target.set_current_limit("VBUS", 0.3)
        runner = SequenceRunner(
            sequence, configuration, target, operator="tester", confirm=lambda step: True
        )
        with pytest.raises(StateError, match=r"VBUS current limit 300 mA"):
            runner.run()
        assert sim_bench.truth()["nets"]["VLOGIC"]["max_voltage"] == 0.0


def test_an_in_process_run_goes_through_a_service_and_leaves_nothing(
    configuration, sim_bench, tmp_path
):
    """The service's own checks, its lease and its journal: a bare controller had none."""
    journal = tmp_path / "journal.sqlite"
    before = {thread.name for thread in threading.enumerate()}
    with in_process_service(configuration, simulator=sim_bench, journal_path=journal) as target:
        status = target.status()
        assert status["you"]["role"] == "operator"  # the service says who is asking
        assert status["lease"]["who"] == getpass.getuser()  # the run holds the lease
        private = target.client.bench.service.socket.parent
        target.arm("tester")
        with pytest.raises(LimitViolation) as refused:
            target.set_voltage("VLOGIC", math.nan)  # the service's check, on the record
        assert refused.value.rule == "finite-value"
        assert target.status()["state"] == "armed"
    assert not private.exists()
    assert {thread.name for thread in threading.enumerate()} <= before
    with JournalReader(journal) as reader:
        verdicts = [e.payload for e in reader.entries() if e.kind == "verdict"]
    assert verdicts[-1]["rule"] == "finite-value"
    assert sim_bench.truth()["nets"]["VLOGIC"]["max_voltage"] == 0.0
