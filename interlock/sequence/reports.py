"""A run's result as files a CI system and a reviewer read: JUnit XML and JSON.

``write_report(report, path)`` picks the format by the file's extension
(``.xml``: JUnit, ``.json``: JSON). Both hold the run id (the journal's, for
``interlock postmortem RUN``), the bench and its environment class, the
profile with its hash, and every step of the sequence: its number (1-based,
as everywhere), label and description, outcome, the measured value against
its window, the refusal with its rule and where it is defined, and any
fault. A step the run never reached is listed as skipped.

JUnit: one ``<testsuite>`` per run, one ``<testcase>`` per step; a failed
measurement, a refusal, an allowed-but-expected-refused step and a declined
prompt are ``<failure>``, a fault an ``<error>``, an unreached step
``<skipped>``; the run's facts are ``<properties>``.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from interlock.errors import InvalidArgument
from interlock.exits import MEANINGS
from interlock.sequence.dryrun import ALLOWED_UNEXPECTEDLY, REFUSED, REFUSED_AS_EXPECTED
from interlock.sequence.model import QUANTITIES, Step
from interlock.sequence.runner import DECLINED, FAIL, FAULT, RunReport, StepResult

JUNIT = ".xml"
JSON = ".json"
FORMATS = (JUNIT, JSON)

NOT_RUN = "not run"
_FAILURES = (FAIL, REFUSED, ALLOWED_UNEXPECTEDLY, DECLINED)


def report_format(path: str | Path) -> str:
    """The format a report file asks for by its extension; InvalidArgument otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InvalidArgument(
            f"--report {path}: the format is chosen by the extension: .xml (JUnit) or .json"
        )
    return suffix


def write_report(report: RunReport, path: str | Path) -> Path:
    path = Path(path)
    text = junit_xml(report) if report_format(path) == JUNIT else json_text(report)
    path.write_text(text, encoding="utf-8")
    return path


# -- one model for both -------------------------------------------------------------------


def result_dict(report: RunReport) -> dict[str, Any]:
    """The whole run as plain data (what the JSON report holds)."""
    sequence = report.sequence
    results = {result.step.index: result for result in report.results}
    return {
        "run_id": report.run_id,
        "bench": report.bench,
        "environment": report.environment,
        "profile": report.profile,
        "sequence": {"name": sequence.name, "path": sequence.shown_path},
        "verdict": verdict_word(report),
        "exit_code": report.exit_code,
        "exit_meaning": MEANINGS.get(report.exit_code, ""),
        "interrupted": report.interrupted,
        "interrupted_by": report.interrupted_by or None,
        "started": datetime.fromtimestamp(report.started, UTC).isoformat().replace("+00:00", "Z")
        if report.started
        else None,
        "elapsed_s": round(report.elapsed, 3),
        "fault": report.fault,
        "safe_state_forced": report.safe_state_forced,
        "steps": [_step_dict(step, results.get(step.index)) for step in sequence.steps],
    }


def verdict_word(report: RunReport) -> str:
    if report.interrupted:
        return "INTERRUPTED"
    return {0: "PASS", 1: "FAIL", 3: "REFUSED", 4: "FAULT"}.get(report.exit_code, "?")


def _step_dict(step: Step, result: StepResult | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "number": step.number,
        "label": step.label or None,
        "action": step.action,
        "description": step.describe(),
        "outcome": result.outcome if result is not None else NOT_RUN,
    }
    if step.expect_refused:
        entry["expect"] = "refused"
    if step.action == "measure":
        value = result.value if result is not None else None
        entry["measurement"] = {
            "quantity": step.quantity,
            "value": _finite_or_text(value),
            "shown": step.shown(value) if value is not None else None,
            "unit": QUANTITIES[step.quantity or "voltage"].symbol,
            "min": step.minimum,
            "max": step.maximum,
            "window": step.window(),
        }
    if result is None:
        return entry
    entry["at_s"] = round(result.at, 3)
    entry["elapsed_s"] = round(result.elapsed, 3)
    if not result.verdict.allowed:
        entry["refusal"] = {
            "rule": result.verdict.rule,
            "where": result.verdict.where,
            "reason": result.verdict.reason,
        }
    if result.detail:
        entry["detail"] = result.detail
    return entry


def _finite_or_text(value: float | None) -> float | str | None:
    # JSON has no NaN nor infinity: a reading that was one says so in words.
    if value is None or math.isfinite(value):
        return value
    return repr(value)


def json_text(report: RunReport) -> str:
    return json.dumps(result_dict(report), indent=2, ensure_ascii=False) + "\n"


# -- JUnit XML -------------------------------------------------------------------------------


def junit_xml(report: RunReport) -> str:
    data = result_dict(report)
    steps = data["steps"]
    failures = sum(1 for step in steps if step["outcome"] in _FAILURES)
    errors = sum(1 for step in steps if step["outcome"] == FAULT)
    skipped = sum(1 for step in steps if step["outcome"] == NOT_RUN)
    suites = ET.Element("testsuites", name="interlock")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=report.sequence.name,
        tests=str(len(steps)),
        failures=str(failures),
        errors=str(errors),
        skipped=str(skipped),
        time=f"{report.elapsed:.3f}",
        timestamp=(data["started"] or "").removesuffix("Z"),
        hostname=report.bench,
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("run_id", data["run_id"] or ""),
        ("bench", report.bench),
        ("environment", report.environment),
        ("profile", report.profile.get("name", "")),
        ("profile_path", report.profile.get("path", "")),
        ("profile_sha256", report.profile.get("sha256", "")),
        ("sequence_path", data["sequence"]["path"]),
        ("verdict", data["verdict"]),
        ("exit_code", str(report.exit_code)),
    ):
        ET.SubElement(properties, "property", name=name, value=str(value))
    total = len(steps)
    for step in steps:
        _testcase(suite, report.sequence.name, step, total)
    end = []
    if report.interrupted:
        end.append(
            f"interrupted ({report.interrupted_by or 'Ctrl-C'}): the bench was powered down "
            "through the interlock"
        )
    if report.fault:
        end.append(f"bench fault: {report.fault}")
    if report.safe_state_forced:
        end.append(f"safe state forced: {report.safe_state_forced}")
    if end:
        ET.SubElement(suite, "system-err").text = "\n".join(end)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, "unicode") + "\n"


def _testcase(suite: ET.Element, classname: str, step: dict[str, Any], total: int) -> None:
    title = f"step {step['number']}/{total}: {step['description']}"
    if step["label"]:
        title += f" [{step['label']}]"
    case = ET.SubElement(
        suite,
        "testcase",
        name=title,
        classname=classname,
        time=f"{step.get('elapsed_s', 0.0):.3f}",
    )
    outcome = step["outcome"]
    measurement = step.get("measurement")
    refusal = step.get("refusal")
    text = []
    if measurement is not None and measurement["value"] is not None:
        text.append(f"measured {measurement['shown']}, window {measurement['window']}")
    if refusal is not None:
        text.append(f"refused by {refusal['rule']} ({refusal['where']}): {refusal['reason']}")
    if step.get("detail"):
        text.append(step["detail"])
    message = "; ".join(text) or outcome
    if outcome == NOT_RUN:
        ET.SubElement(case, "skipped", message="not reached: the run stopped before it")
    elif outcome == FAULT:
        ET.SubElement(case, "error", message=message, type="fault").text = message
    elif outcome in _FAILURES:
        ET.SubElement(case, "failure", message=message, type=outcome).text = message
    elif text:
        # A pass, or a refusal the sequence expects: what was seen, for the reader.
        word = "refused as expected" if outcome == REFUSED_AS_EXPECTED else outcome
        ET.SubElement(case, "system-out").text = f"{word}: {message}"


__all__ = [
    "FORMATS",
    "JSON",
    "JUNIT",
    "NOT_RUN",
    "json_text",
    "junit_xml",
    "report_format",
    "result_dict",
    "verdict_word",
    "write_report",
]
