"""The post-mortem of a real run that trips: every quantity with its unit, and a plot
that tells the incident (its matplotlib artists, not its pixels)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rich_run import run_that_trips

from interlock.journal import JournalReader
from interlock.journal.postmortem import timeline_text

# What in a timeline is a number but no quantity: raw bytes sent and replies (quoted),
# queries, hashes, times of day, run ids, entry numbers, the seconds column (its header
# names its unit), process ids, relay masks, a ramp's step count, the summary's counts.
NOT_QUANTITIES = [
    r"'[^'\n]*'",
    r"readback .*? -> ",  # the query as sent
    r"\b[0-9a-f]{12,64}\b",
    r"\d{4}-\d\d-\d\dT[\d:.]+Z",
    r"\d{8}T\d{6}Z-[0-9a-f]+",
    r"#\d+(\.\.#\d+)?",
    r"^ +\+\d+\.\d{3}(?=  )",
    r"pid \d+",
    r"mask 0x[0-9a-f]+",
    r"\bsteps=\d+",
    r"\bstep \d+(/\d+)?",
    r"\d+ (requests?|commands?|readbacks?|measurements?|faults?|operator actions?|entries)\b",
    r"\(\d+( refused)?\)",
    r"\b[A-Z][A-Za-z]*-?\d+\b",  # names with digits: MDB-24, CH2, K7
    r"firmware=[^\],]*",
]
UNITS = r"([mµukM]?(V/s|V|A|W|Ohm|ohm|Ω|s)|%)"
NUMBER = re.compile(r"(?<![\w.+-])[-+]?\d+(\.\d+)?(e[-+]?\d+)?")


@pytest.fixture(scope="module")
def tripped_run(tmp_path_factory) -> tuple[str, list, Path]:
    directory = tmp_path_factory.mktemp("tripped")
    report, journal = run_that_trips(directory)
    outcomes = [(r.step.number, r.outcome, r.detail) for r in report.results]
    assert outcomes[-1][:2] == (11, "fault"), outcomes
    with JournalReader(journal) as reader:
        entries = list(reader.entries(run=report.run_id))
    return report.run_id, entries, directory


def test_every_quantity_in_the_timeline_carries_its_unit(tripped_run):
    run_id, entries, _ = tripped_run
    text = timeline_text(entries, run_id, report=None, chain_error=None)
    assert "Limits in force:" in text and "FAULT monitor: VBUS" in text
    bare = []
    for line in text.splitlines():
        stripped = line
        for pattern in NOT_QUANTITIES:
            stripped = re.sub(pattern, " ", stripped)
        for number in NUMBER.finditer(stripped):
            if not re.match(rf" ?{UNITS}(?![A-Za-z])", stripped[number.end() :]):
                bare.append((number.group(), line))
    assert not bare, "\n".join(f"{n!r} in: {line[:160]}" for n, line in bare[:20])
