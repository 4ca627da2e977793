"""The post-mortem of a real run that trips: every quantity with its unit, and a plot
that tells the incident (its matplotlib artists, not its pixels)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rich_run import run_that_trips

from interlock.journal import JournalReader
from interlock.journal.plot import plot_run
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
UNITS = r"([GMkmµun]?(V/s|V|A|W|Ohm|ohm|Ω|s)|%)"
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


def _gid(ax, gid: str) -> list:
    return [artist for artist in ax.get_children() if artist.get_gid() == gid]


def test_the_plot_tells_the_incident(tripped_run):
    run_id, entries, directory = tripped_run
    fig = plot_run(entries, directory / "nets.png", bench="sim-bench-01", run_id=run_id)
    assert (directory / "nets.png").read_bytes().startswith(b"\x89PNG")
    (fault,) = [e for e in entries if e.kind == "fault"]
    trip = fault.mono_time - entries[0].mono_time

    # The outcome and its cause, in words, at the top.
    title = fig.get_suptitle()
    assert f"FAULT at +{trip:.3f} s: monitor: VBUS: the supply's protection tripped" in title
    assert "1 refused, 1 failed measurement" in title

    # One row per net the run used: VLOGIC and VBUS, not MOTOR (only set safe at arming)
    # nor ID (only measured for the DUT's identity).
    rows = {ax.get_ylabel().split("\n")[0]: (ax, fig.axes[i + 1]) for i, ax in
            enumerate(fig.axes) if ax.get_ylabel().endswith("voltage (V)")}  # fmt: skip
    assert sorted(rows) == ["VBUS", "VLOGIC"] and len(fig.axes) == 4

    for net, (volt_ax, amp_ax) in rows.items():
        # The output as commanded ends at 0 V, from the trip on.
        (commanded,) = _gid(volt_ax, "commanded")
        xs, ys = commanded.get_data()
        off_since = next(x for x, y in zip(xs, ys, strict=True) if x >= trip and y == 0.0)
        assert off_since == pytest.approx(trip, abs=0.05) and ys[-1] == 0.0, net
        # Each measured trace's last point is at zero, at or after the trip.
        for ax in (volt_ax, amp_ax):
            traces = _gid(ax, "measured") + _gid(ax, "measured-drop")
            last = max((line.get_data() for line in traces), key=lambda data: data[0][-1])
            assert last[0][-1] >= trip and abs(last[1][-1]) < 0.01, (net, ax.get_ylabel())
            # Shaded as live only before the trip.
            spans = _gid(ax, "live")
            assert spans, net
            assert all(span.get_x() + span.get_width() <= trip + 0.01 for span in spans), net
            # A line where each of the 11 steps that ran began.
            assert len(_gid(ax, "step")) == 11
            # The fault's line.
            assert [line.get_xdata()[0] for line in _gid(ax, "fault")] == [trip]
    # The steps' numbers along the top, and their words below.
    assert [t.get_text() for t in _gid(fig.axes[0], "step-label")] == [str(n) for n in range(1, 12)]
    (listed,) = [t for t in fig.texts if t.get_gid() == "step-list"]
    assert "9: ramp VBUS to 8 V [bus up]" in listed.get_text().replace("\n", " ")

    # The refused 9 V, where it was asked; the failed current measurement, where it was read.
    volt_ax, amp_ax = rows["VLOGIC"]
    (refused,) = _gid(volt_ax, "refused")
    assert list(refused.get_ydata()) == [9.0]
    (failed,) = _gid(amp_ax, "failed")
    assert 0.05 < failed.get_ydata()[0] < 0.25  # the board's ~150 mA against <= 1 mA
    assert not _gid(volt_ax, "failed")  # it was the current that failed, not the voltage
