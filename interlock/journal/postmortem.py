"""The post-mortem of one run: a timeline in text and a plot of every net.

``timeline.txt`` says what was asked, what was refused and by which rule,
what was sent, what was read back and measured, in order, under the
configuration and limits pinned at arming. ``nets.png`` shows, per net, the
commanded voltage and current limit against the measured voltage and
current, with faults (red) and operator actions (grey) as vertical lines.

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


@dataclass
class _NetSeries:
    commanded_v: list[tuple[float, float]]
    commanded_i: list[tuple[float, float]]
    measured_v: list[tuple[float, float]]
    measured_i: list[tuple[float, float]]
    output: list[tuple[float, bool]]


def _series(entries: list[Entry], t0: float) -> dict[str, _NetSeries]:
    nets: dict[str, _NetSeries] = {}

    def net(name: str) -> _NetSeries:
        return nets.setdefault(name, _NetSeries([], [], [], [], []))

    for entry in entries:
        p = entry.payload
        t = entry.mono_time - t0
        if entry.kind == Kind.MEASUREMENT:
            for name, values in net_readings(p).items():
                if isinstance(values.get("voltage"), int | float):
                    net(name).measured_v.append((t, float(values["voltage"])))
                if isinstance(values.get("current"), int | float):
                    net(name).measured_i.append((t, float(values["current"])))
            continue
        name = p.get("net")
        if not isinstance(name, str):
            continue
        if entry.kind == Kind.COMMAND and "value" in p:
            quantity, value = p.get("quantity"), p["value"]
            if quantity == "voltage" and isinstance(value, int | float):
                net(name).commanded_v.append((t, float(value)))
            elif quantity == "current_limit" and isinstance(value, int | float):
                net(name).commanded_i.append((t, float(value)))
            elif quantity == "output" and isinstance(value, bool):
                net(name).output.append((t, value))
    return nets


def _output_spans(output: list[tuple[float, bool]], end: float) -> list[tuple[float, float]]:
    spans, since = [], None
    for t, on in output:
        if on and since is None:
            since = t
        elif not on and since is not None:
            spans.append((since, t))
            since = None
    if since is not None:
        spans.append((since, end))
    return spans


def plot_nets(entries: list[Entry], path: Path, *, title: str) -> None:
    """Write the PNG: one row per net, voltage left, current right."""
    # Figure on an Agg canvas, without pyplot: no global state, no display
    # needed, whatever MPLBACKEND says; safe in a service thread.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    t0 = entries[0].mono_time
    end = entries[-1].mono_time - t0
    nets = _series(entries, t0)
    # Power nets only: a sense net (say, the DUT's ID resistor) only ever
    # measured for a check has no commanded value and no current to show.
    names = sorted(
        name
        for name, series in nets.items()
        if series.commanded_v or series.commanded_i or series.measured_i or series.output
    )
    rows = max(1, len(names))
    fig = Figure(figsize=(11, 2.6 * rows + 0.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 2, squeeze=False, sharex=True)
    fig.suptitle(title)
    marks = [
        (e.mono_time - t0, "fault", str(e.payload.get("cause", "fault")))
        for e in entries
        if e.kind == Kind.FAULT
    ] + [
        (e.mono_time - t0, "operator", f"{e.actor}: {e.payload.get('action', '?')}")
        for e in entries
        if e.kind == Kind.OPERATOR
    ]

    def step(ax: Any, points: list[tuple[float, float]], label: str, color: str) -> None:
        if points:
            xs = [t for t, _ in points] + [end]
            ys = [v for _, v in points] + [points[-1][1]]
            ax.step(xs, ys, where="post", color=color, linestyle="--", label=label)

    def dots(ax: Any, points: list[tuple[float, float]], label: str, color: str) -> None:
        if points:
            ax.plot(*zip(*points, strict=True), "o-", ms=3, color=color, label=label)

    for row, name in enumerate(names):
        series = nets[name]
        volt_ax, amp_ax = axes[row]
        step(volt_ax, series.commanded_v, "commanded", "tab:blue")
        dots(volt_ax, series.measured_v, "measured", "tab:orange")
        step(amp_ax, series.commanded_i, "current limit", "tab:blue")
        dots(amp_ax, series.measured_i, "measured", "tab:orange")
        volt_ax.set_ylabel(f"{name}\nvoltage (V)")
        amp_ax.set_ylabel("current (A)")
        for ax in (volt_ax, amp_ax):
            for start, stop in _output_spans(series.output, end):
                ax.axvspan(start, stop, color="tab:green", alpha=0.08)
    if not names:
        for ax in axes[0]:
            ax.text(
                0.5,
                0.5,
                "no net data in this run",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )

    for ax in axes.flat:
        for t, what, _ in marks:
            ax.axvline(
                t,
                color="tab:red" if what == "fault" else "grey",
                linestyle="-" if what == "fault" else ":",
                linewidth=1.2,
            )
        ax.grid(True, alpha=0.3)
        # Room on both sides for the labels of marks at the very start and end.
        ax.set_xlim(-0.03 * max(end, 1e-3), 1.1 * max(end, 1e-3))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize="small")
    for t, what, label in marks:
        axes[0][0].annotate(
            label,
            xy=(t, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, -2),
            textcoords="offset points",
            rotation=90,
            va="top",
            ha="left",
            fontsize="x-small",
            color="tab:red" if what == "fault" else "dimgrey",
        )
    for ax in axes[-1]:
        ax.set_xlabel("time from run start (s)")
    fig.savefig(path, dpi=90)


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
        plot_nets(entries, plot, title=f"bench {entries[0].bench}, run {run_id}")
    except OSError as exc:
        raise JournalError(f"cannot write the post-mortem to {out}: {exc}") from exc
    return PostmortemResult(run_id, len(entries), timeline, plot, chain_error)
