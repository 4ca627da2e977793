"""The post-mortem of one run: a timeline in text and a plot of every net.

``timeline.txt`` says what was asked, what was refused and by which rule,
what was sent, what was read back and measured, in order, under the
configuration and limits pinned at arming. ``nets.png`` tells the incident
at a glance (see :mod:`interlock.journal.plot`).

Both are built from journal entries alone, following the payload
conventions of :mod:`interlock.journal.entries`. Times are seconds from the
run's first entry, on the writer's monotonic clock (wall time can step).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interlock.errors import InvalidArgument, JournalCorrupt, JournalError
from interlock.journal.entries import Entry, Kind, net_readings
from interlock.journal.plot import plot_run
from interlock.journal.reader import JournalReader
from interlock.journal.render import describe, value_text
from interlock.journal.verify import VerifyReport, verify_journal

TIMELINE_FILE = "timeline.txt"
PLOT_FILE = "nets.png"


@dataclass(frozen=True)
class PostmortemResult:
    run_id: str
    entries: int
    timeline: Path
    plot: Path
    chain_error: str | None  # set when the journal does not verify


def _limits_lines(limits: dict[str, Any]) -> list[str]:
    lines = []
    for net in sorted(limits):
        values = limits[net]
        if isinstance(values, dict):
            shown = "  ".join(f"{k}={value_text(v, k)}" for k, v in sorted(values.items()))
        else:
            shown = value_text(values, net)
        lines.append(f"  {net:<10} {shown}")
    return lines


def _config_lines(entries: list[Entry]) -> list[str]:
    configs = [e for e in entries if e.kind == Kind.CONFIG]
    if not configs:
        return ["Configuration in force: NONE PINNED in this run (no config entry)"]
    lines: list[str] = []
    for config in configs:
        payload = config.payload
        lines.append(f"Configuration in force (pinned at entry #{config.seq}):")
        for role, pinned in sorted(payload.get("files", {}).items()):
            lines.append(f"  {role:<10} {pinned.get('path')}  sha256 {pinned.get('sha256')}")
        if "limits" in payload:
            lines.append("Limits in force:")
            lines.extend(_limits_lines(payload["limits"]))
    return lines


def _outcome(entries: list[Entry], t0: float) -> str:
    faults = [e for e in entries if e.kind == Kind.FAULT]
    if not faults:
        return "Outcome: no fault"
    first = faults[0]
    p = first.payload
    more = f" (+{len(faults) - 1} more)" if len(faults) > 1 else ""
    return (
        f"Outcome: FAULT at +{first.mono_time - t0:.3f} s, entry #{first.seq}: "
        f"{p.get('cause', '?')}: {p.get('detail', '')}{more}"
    )


def _summary(entries: list[Entry]) -> str:
    kinds = Counter(e.kind for e in entries)

    def count(n: int, noun: str) -> str:
        return f"{n} {noun}" + ("" if n == 1 else "s")

    refused = sum(1 for e in entries if e.kind == Kind.VERDICT and not e.payload.get("allowed"))
    # A net's reading each, whether an entry holds one net's or a supply's.
    readings = sum(
        max(1, len(net_readings(e.payload))) for e in entries if e.kind == Kind.MEASUREMENT
    )
    parts = [
        f"{count(kinds[Kind.REQUEST], 'request')} ({refused} refused)",
        count(kinds[Kind.COMMAND], "command"),
        count(kinds[Kind.READBACK], "readback"),
        count(readings, "measurement"),
        count(kinds[Kind.FAULT], "fault"),
        count(kinds[Kind.OPERATOR], "operator action"),
    ]
    return "Summary: " + ", ".join(parts)


# Outside the run but part of its story: the right target, who armed it.
LEAD_IN_KINDS = (Kind.IDENTITY.value, Kind.OPERATOR.value)


def _lead_in_lines(before: Sequence[Entry]) -> list[str]:
    if not before:
        return ["Before the run: no identity check or operator action since the previous run"]
    return ["Before the run (identity checks and operator actions since the previous run):"] + [
        f"  #{e.seq:<5} {e.wall_time}  {e.kind:<9} {e.actor:<12} {describe(e)}" for e in before
    ]


def timeline_text(
    entries: list[Entry],
    run_id: str,
    *,
    report: VerifyReport | None,
    chain_error: str | None,
    before: Sequence[Entry] = (),
) -> str:
    """The text post-mortem of ``entries`` (those of one run, in seq order).

    ``before`` are the identity checks and operator actions journaled between
    the previous run and this one: they belong in the story of the run.
    """
    if not entries:
        raise JournalError(f"run {run_id!r} has no entries")
    first, last = entries[0], entries[-1]
    t0 = first.mono_time
    if chain_error is not None:
        chain = f"Journal chain: BROKEN: {chain_error}; entries may have been altered"
    elif report is not None:
        chain = f"Journal chain: verified, {report.entries} entries, head {report.head_hash[:16]}"
    else:
        chain = "Journal chain: not checked"
    lines = [
        f"Post-mortem of run {run_id} on bench {first.bench}",
        f"Entries #{first.seq}..#{last.seq} ({len(entries)}), "
        f"{first.wall_time} .. {last.wall_time} UTC ({last.mono_time - t0:.3f} s)",
        chain,
        _outcome(entries, t0),
        "",
        *_config_lines(entries),
        *_lead_in_lines(before),
        "",
        _summary(entries),
        "",
        "Timeline (seconds from the first entry of the run):",
    ]
    for entry in entries:
        lines.append(
            f"  {'+' + format(entry.mono_time - t0, '.3f'):>9}  #{entry.seq:<5} {entry.kind:<11} "
            f"{entry.actor:<12} {describe(entry)}"
        )
    return "\n".join(lines) + "\n"


def write_postmortem(
    journal_path: str | Path, run_id: str | None, out_dir: str | Path
) -> PostmortemResult:
    """Write ``timeline.txt`` and ``nets.png`` for ``run_id`` (default: the latest run)."""
    with JournalReader(journal_path) as reader:
        run_id = run_id or reader.latest_run()
        if run_id is None:
            raise InvalidArgument(f"{journal_path}: no run in this journal")
        entries = list(reader.entries(run=run_id))
        if not entries:
            raise InvalidArgument(
                f"{journal_path}: no run {run_id!r} in this journal (latest: "
                f"{reader.latest_run() or 'none'})"
            )
        before = reader.lead_in(entries[0].seq, LEAD_IN_KINDS)
    report: VerifyReport | None = None
    chain_error: str | None = None
    try:
        report = verify_journal(journal_path)
    except JournalCorrupt as exc:
        # Still write the post-mortem: a broken chain is itself a finding.
        chain_error = str(exc)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        timeline = out / TIMELINE_FILE
        timeline.write_text(
            timeline_text(entries, run_id, report=report, chain_error=chain_error, before=before),
            encoding="utf-8",
        )
        plot = out / PLOT_FILE
        plot_run(entries, plot, bench=entries[0].bench, run_id=run_id)
    except OSError as exc:
        raise JournalError(f"cannot write the post-mortem to {out}: {exc}") from exc
    return PostmortemResult(run_id, len(entries), timeline, plot, chain_error)
