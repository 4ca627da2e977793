"""A run's result for CI and for a reviewer: JUnit XML and JSON, each step marked in the journal.

A real run on the simulated bench (in-process service) with a passing and a
failing measurement, a refusal the sequence expects, a refusal it does not
(which stops the run) and a step never reached; the reports are read back
with a JUnit parser and ``json``, and checked against the journal.
"""

from __future__ import annotations

import json
import math
import re

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

from interlock.config import load_configuration
from interlock.journal import JournalReader
from interlock.journal.entries import FAILED_NOTE_PREFIX
from interlock.sequence import SequenceRunner, bind, in_process_service, load_sequence
from interlock.sequence.model import Step
from interlock.sequence.reports import junit_xml, report_format, result_dict, write_report
from interlock.sequence.runner import FAULT, RunReport, StepResult
from tests.sequence.conftest import ROOT_BENCH

STEPS = """
[[steps]]
action = "set"
net = "VLOGIC"
current_limit = "250 mA"
[[steps]]
label = "logic at 5 V"
action = "set"
net = "VLOGIC"
voltage = "5 V"
[[steps]]
action = "output"
net = "VLOGIC"
state = "on"
[[steps]]
action = "measure"
net = "VLOGIC"
quantity = "voltage"
min = "4.9 V"
max = "5.1 V"
[[steps]]
label = "a window no board meets"
action = "measure"
net = "VLOGIC"
quantity = "current"
max = "1 mA"
[[steps]]
action = "set"
net = "VLOGIC"
voltage = "9 V"
expect = "refused"
[[steps]]
action = "set"
net = "VLOGIC"
voltage = "9.5 V"
[[steps]]
action = "output"
net = "VLOGIC"
state = "off"
"""


@pytest.fixture(scope="module")
def configuration():
    return load_configuration(ROOT_BENCH)


@pytest.fixture
def run_report(configuration, sim_bench, tmp_path, write_sequence) -> RunReport:
    sequence = bind(load_sequence(write_sequence(STEPS)), configuration)
    with in_process_service(
        configuration, simulator=sim_bench, journal_path=tmp_path / "journal.sqlite"
    ) as target:
        runner = SequenceRunner(
            sequence, configuration, target, operator="tester", confirm=lambda step: True
        )
        runner.preflight = lambda: None  # a refusal the dry run would have stopped
        return runner.run()


def test_junit_xml_has_every_step_its_verdict_and_the_runs_facts(
    run_report, configuration, tmp_path
):
    path = write_report(run_report, tmp_path / "result.xml")
    xml = JUnitXml.fromfile(str(path))
    (suite,) = list(xml)
    assert suite.name == "test"
    properties = {p.name: p.value for p in suite.properties()}
    assert properties["run_id"] == run_report.run_id and run_report.run_id
    assert properties["bench"] == "sim-bench-01"
    assert properties["environment"] == "simulation"
    assert properties["profile"] == "MDB-24"
    assert properties["profile_sha256"] == configuration.profile.sha256
    assert properties["exit_code"] == "3"
    cases = list(suite)
    assert [case.name.split(":")[0] for case in cases] == [f"step {n}/8" for n in range(1, 9)]
    assert cases[1].name == "step 2/8: set VLOGIC to 5 V [logic at 5 V]"
    assert suite.tests == 8 and suite.failures == 2 and suite.errors == 0 and suite.skipped == 1
    assert cases[3].is_passed and "window 4.9 V .. 5.1 V" in cases[3].system_out
    (failure,) = cases[4].result
    assert isinstance(failure, Failure) and failure.type == "fail"
    assert "window <= 1 mA" in failure.message and "measured 1" in failure.message
    assert cases[5].is_passed and "refused as expected" in cases[5].system_out
    (refusal,) = cases[6].result
    assert isinstance(refusal, Failure) and refusal.type == "refused"
    assert "refused by nets.VLOGIC.max_voltage (" in refusal.message
    assert "mdb24.toml: nets.VLOGIC.max_voltage)" in refusal.message
    (skipped,) = cases[7].result
    assert isinstance(skipped, Skipped)


def test_json_has_every_step_with_measurements_windows_and_refusals(run_report, tmp_path):
    path = write_report(run_report, tmp_path / "result.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["run_id"] == run_report.run_id
    assert (data["bench"], data["verdict"], data["exit_code"]) == ("sim-bench-01", "REFUSED", 3)
    assert data["profile"]["name"] == "MDB-24" and len(data["profile"]["sha256"]) == 64
    steps = data["steps"]
    assert [step["number"] for step in steps] == list(range(1, 9))
    assert [step["outcome"] for step in steps] == [
        "ok",
        "ok",
        "ok",
        "pass",
        "fail",
        "refused as expected",
        "refused",
        "not run",
    ]
    window = steps[3]["measurement"]
    assert (window["quantity"], window["unit"], window["min"], window["max"]) == (
        "voltage",
        "V",
        4.9,
        5.1,
    )
    assert 4.9 <= window["value"] <= 5.1
    failed = steps[4]["measurement"]
    assert failed["max"] == 0.001 and failed["value"] > 0.001 and failed["unit"] == "A"
    assert steps[6]["refusal"]["rule"] == "nets.VLOGIC.max_voltage"
    assert steps[6]["refusal"]["where"].endswith("mdb24.toml: nets.VLOGIC.max_voltage")
    assert steps[5]["expect"] == "refused"
    assert all(step["at_s"] >= 0 for step in steps[:7]) and "at_s" not in steps[7]


def test_each_step_is_marked_in_the_runs_journal(run_report, tmp_path):
    with JournalReader(tmp_path / "journal.sqlite") as reader:
        notes = [
            entry.payload
            for entry in reader.entries(run=run_report.run_id)
            if entry.kind == "request" and entry.payload.get("action") == "note"
        ]
    markers = [note for note in notes if not note["text"].startswith(FAILED_NOTE_PREFIX)]
    assert [note["step"] for note in markers] == list(range(1, 8))  # the 8th never began
    assert markers[1]["text"] == "step 2/8: set VLOGIC to 5 V [logic at 5 V]"
    # The failed measurement is said right after its step's marker (and its reading).
    (failed,) = [note for note in notes if note not in markers]
    assert notes.index(failed) == notes.index(markers[4]) + 1 and failed["step"] == 5
    assert re.fullmatch(
        r"FAIL step 5/8: measure VLOGIC current <= 1 mA \[a window no board meets\]: "
        r"measured \d+\.\d+ mA",
        failed["text"],
    ), failed["text"]


def test_a_value_no_number_can_hold_is_said_in_words(configuration):
    sequence = bind(
        load_sequence(ROOT_BENCH.parent / "sequences" / "mdb24_power_up.toml"), configuration
    )
    measure = next(step for step in sequence.steps if step.action == "measure")
    report = RunReport(sequence, results=[StepResult(measure, "fail", value=math.nan)])
    data = result_dict(report)
    assert data["steps"][measure.index]["measurement"]["value"] == "nan"
    assert "measured nan V" in junit_xml(report)
    json.dumps(data, allow_nan=False)  # strict JSON: parses anywhere


def test_a_fault_is_a_junit_error(configuration):
    sequence = bind(
        load_sequence(ROOT_BENCH.parent / "sequences" / "mdb24_power_up.toml"), configuration
    )
    report = RunReport(
        sequence, results=[StepResult(sequence.steps[0], FAULT, detail="InstrumentTimeout: psu")]
    )
    suite = next(iter(JUnitXml.fromstring(junit_xml(report))))
    (error,) = next(iter(suite)).result
    assert isinstance(error, Error) and error.message == "InstrumentTimeout: psu"


@pytest.mark.parametrize("name", ["r.txt", "r", "r.junit"])
def test_the_format_is_chosen_by_extension(name):
    with pytest.raises(ValueError, match=r"\.xml \(JUnit\) or \.json"):
        report_format(name)


@pytest.mark.parametrize(
    ("value", "minimum", "maximum", "shown"),
    [
        (5.0000104, None, 5.00001, "5.0000104 V"),  # not "5 V: FAIL (window <= 5.00001 V)"
        (4.8999999, 4.9, 5.1, "4.8999999 V"),
        (5.0, 4.9, 5.1, "5 V"),
        (4.99994, 4.9, 5.1, "4.99994 V"),
        (5.1, 4.9, 5.1, "5.1 V"),  # on the end itself: inside, and shown as such
    ],
)
def test_a_measurement_is_shown_with_the_digits_that_tell_it_from_its_window(
    value, minimum, maximum, shown
):
    step = Step(0, "measure", net="VLOGIC", quantity="voltage", minimum=minimum, maximum=maximum)
    assert step.shown(value) == shown
