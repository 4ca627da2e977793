"""The post-mortem's plot: what happened to each net a run used, told at a glance.

The title says the outcome and its cause; one row per net the run's clients
named (or turned on), voltage left and current right; the output as
commanded, going to zero when it went off (by a request or by the safe
state), against what was measured; shading while an output was on, and
never after the trip; steps along the time axis (the runners' ``note``
markers), refusals and failed measurements marked where they happened.

Built from journal entries alone (:mod:`interlock.journal.entries`); times
are seconds from the run's first entry, on the writer's monotonic clock.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interlock.journal.entries import FAILED_NOTE_PREFIX, Entry, Kind, net_readings

# The safe state's measurements of a net (stray voltage, resistance) are the
# DMM's, taken with the output off: not the output's trace.
_NOT_THE_OUTPUT = ("safe-to-mate", "dut-identity")


@dataclass
class NetSeries:
    setpoint: list[tuple[float, float]] = field(default_factory=list)
    current_limit: list[tuple[float, float]] = field(default_factory=list)
    measured_v: list[tuple[float, float]] = field(default_factory=list)
    measured_i: list[tuple[float, float]] = field(default_factory=list)
    output: list[tuple[float, bool]] = field(default_factory=list)
    asked: bool = False  # a client's request named this net


@dataclass(frozen=True)
class Mark:
    """Something that happened at ``t``: a fault, an operator action, a step begun,
    a refusal, a failed measurement (``net`` and ``value`` where it has them)."""

    t: float
    kind: str  # "fault" | "operator" | "step" | "refused" | "failed"
    label: str
    net: str | None = None
    quantity: str | None = (
        None  # refused: "voltage" | "current_limit"; failed: "voltage" | "current"
    )
    value: float | None = None
    current: float | None = None


@dataclass
class RunStory:
    nets: dict[str, NetSeries]
    marks: list[Mark]
    end: float
    outcome: str  # "FAULT at +0.344 s: monitor: ..." or "no fault"
    trip: float | None  # when the bench went to fault (shading ends there)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def run_story(entries: list[Entry]) -> RunStory:
    """The plot's facts, from one run's entries (in seq order)."""
    t0 = entries[0].mono_time
    nets: dict[str, NetSeries] = {}
    marks: list[Mark] = []
    requests: dict[int, dict[str, Any]] = {}
    last_measured: Mark | None = None
    trip: float | None = None
    first_fault: tuple[float, dict[str, Any]] | None = None

    def series(name: str) -> NetSeries:
        return nets.setdefault(name, NetSeries())

    def all_off(t: float) -> None:
        for one in nets.values():
            if one.output and one.output[-1][1]:
                one.output.append((t, False))

    for entry in entries:
        p, t = entry.payload, entry.mono_time - t0
        name = p.get("net") if isinstance(p.get("net"), str) else None
        if entry.kind == Kind.REQUEST:
            requests[entry.seq] = p
            if p.get("action") == "note":
                text = str(p.get("text", ""))
                if text.startswith(FAILED_NOTE_PREFIX) and last_measured is not None:
                    net = last_measured.net
                    # The runner's note says which quantity: "measure VBUS current <= 1 mA".
                    quantity = next(
                        (q for q in ("voltage", "current") if f"measure {net} {q}" in text), None
                    )
                    marks.append(
                        Mark(
                            last_measured.t,
                            "failed",
                            text,
                            net,
                            quantity,
                            value=last_measured.value if quantity != "current" else None,
                            current=last_measured.current if quantity != "voltage" else None,
                        )
                    )
                elif isinstance(p.get("step"), int):
                    marks.append(Mark(t, "step", text or f"step {p['step']}", value=p["step"]))
            elif name is not None:
                series(name).asked = True
        elif entry.kind == Kind.VERDICT and not p.get("allowed"):
            asked = requests.get(p.get("request", -1), {})
            marks.append(
                Mark(
                    t,
                    "refused",
                    f"refused: {p.get('reason') or p.get('rule') or '?'}",
                    asked.get("net"),
                    asked.get("quantity"),
                    _number(asked.get("value")),
                )
            )
        elif entry.kind == Kind.COMMAND and p.get("quantity") in ("voltage", "current_limit"):
            value = _number(p.get("value"))
            if name is not None and value is not None:
                target = series(name)
                (target.setpoint if p["quantity"] == "voltage" else target.current_limit).append(
                    (t, value)
                )
        elif entry.kind == Kind.COMMAND and p.get("quantity") == "output":
            if name is not None and isinstance(p.get("value"), bool):
                series(name).output.append((t, p["value"]))
            elif p.get("value") is False:
                all_off(t)  # the safe state: every output off in one command
        elif entry.kind == Kind.MEASUREMENT:
            if p.get("purpose") in _NOT_THE_OUTPUT:
                continue
            # One net's reading, or a monitor pass's of every net on a supply.
            for measured, values in net_readings(p).items():
                volts, amps = _number(values.get("voltage")), _number(values.get("current"))
                if volts is not None:
                    series(measured).measured_v.append((t, volts))
                if amps is not None:
                    series(measured).measured_i.append((t, amps))
                last_measured = Mark(t, "measured", "", measured, value=volts, current=amps)
        elif entry.kind == Kind.FAULT:
            if first_fault is None:
                first_fault = (t, p)
            marks.append(Mark(t, "fault", f"FAULT {p.get('cause', '?')}"))
        elif entry.kind == Kind.STATE and p.get("to") == "fault":
            # A latched fault means the safe state ran: nothing is live after it.
            trip = t if trip is None else trip
            all_off(t)
        elif entry.kind == Kind.OPERATOR:
            marks.append(Mark(t, "operator", f"{entry.actor}: {p.get('action', '?')}"))
    if first_fault is None:
        outcome = "no fault"
    else:
        t, p = first_fault
        outcome = f"FAULT at +{t:.3f} s: {p.get('cause', '?')}: {p.get('detail', '')}"
        trip = t if trip is None else min(trip, t)
    used = {n: s for n, s in nets.items() if s.asked or any(on for _, on in s.output)}
    return RunStory(used, marks, entries[-1].mono_time - t0, outcome, trip)


def _spans(output: list[tuple[float, bool]], end: float) -> list[tuple[float, float]]:
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


def at_the_output(
    setpoint: list[tuple[float, float]], output: list[tuple[float, bool]], end: float
) -> list[tuple[float, float]]:
    """The voltage commanded at the output: the setpoint while on, 0 V while off."""
    events = sorted([(t, "set", v) for t, v in setpoint] + [(t, "out", on) for t, on in output])
    level, on, points = 0.0, False, [(0.0, 0.0)]
    for t, what, value in events:
        if what == "set":
            level = float(value)
        else:
            on = bool(value)
        points.append((t, level if on else 0.0))
    points.append((end, level if on else 0.0))
    return points


def _title(story: RunStory, bench: str, run_id: str) -> str:
    refused = sum(1 for m in story.marks if m.kind == "refused")
    failed = sum(1 for m in story.marks if m.kind == "failed")
    facts = f"{refused} refused, {failed} failed measurement" + ("" if failed == 1 else "s")
    return f"{story.outcome}\nbench {bench}, run {run_id}: {facts}"


def plot_run(entries: list[Entry], path: Path, *, bench: str, run_id: str) -> Any:
    """Write the PNG; returns the matplotlib Figure (its artists tell what was drawn)."""
    # Figure on an Agg canvas, without pyplot: no global state, no display
    # needed, whatever MPLBACKEND says; safe in a service thread.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    story = run_story(entries)
    end = max(story.end, 1e-3)
    names = sorted(story.nets)
    rows = max(1, len(names))
    fig = Figure(figsize=(12, 2.8 * rows + 1.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 2, squeeze=False, sharex=True)
    fault = story.trip is not None
    fig.suptitle(
        _title(story, bench, run_id),
        color="tab:red" if fault else "black",
        fontweight="bold",
        fontsize="large",
    )
    for row, name in enumerate(names):
        net = story.nets[name]
        volt_ax, amp_ax = axes[row]
        _draw_net(volt_ax, amp_ax, net, end)
        volt_ax.set_ylabel(f"{name}\nvoltage (V)")
        amp_ax.set_ylabel("current (A)")
    if not names:
        for ax in axes[0]:
            ax.text(
                0.5,
                0.5,
                "no net used in this run",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
    rows_of = {name: axes[row] for row, name in enumerate(names)}
    for mark in story.marks:
        _draw_mark(mark, axes, rows_of)
    steps = [m for m in story.marks if m.kind == "step"]
    for ax in axes.flat:
        ax.grid(True, alpha=0.3)
        ax.set_xlim(-0.02 * end, 1.05 * end)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize="small")
    for ax in axes[0]:
        # Step numbers along the top of the first row, each at the line where its step began.
        for m in steps:
            ax.text(
                m.t,
                1.0,
                str(m.value),
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize="small",
                color="dimgrey",
                gid="step-label",
            )
    for ax in axes[-1]:
        ax.set_xlabel("time from run start (s)")
    if steps:
        listed = "   ".join(f"{m.value}: {_step_text(m.label)}" for m in steps)
        footer = textwrap.fill(f"steps  {listed}", 180)
        fig.text(0.01, 0.005, footer, fontsize="small", va="bottom", gid="step-list")
        # Room below the axes for the list: a line of small text is about 14 px of the height.
        below = (footer.count("\n") + 1.5) * 14 / (fig.get_figheight() * fig.dpi)
        fig.get_layout_engine().set(rect=(0, below, 1, 1 - below))
    fig.savefig(path, dpi=90)
    return fig


def _step_text(text: str) -> str:
    """``step 9/12: ramp VBUS to 8 V [bus up]`` as ``ramp VBUS to 8 V [bus up]``."""
    head, colon, rest = text.partition(": ")
    return rest if colon and head.startswith("step ") else text


def _draw_net(volt_ax: Any, amp_ax: Any, net: NetSeries, end: float) -> None:
    spans = _spans(net.output, end)
    commanded = at_the_output(net.setpoint, net.output, end)
    xs, ys = zip(*commanded, strict=True)
    volt_ax.step(
        xs,
        ys,
        where="post",
        color="tab:blue",
        linestyle="--",
        label="commanded at the output",
        gid="commanded",
    )
    if net.current_limit:
        xs = [t for t, _ in net.current_limit] + [end]
        ys = [v for _, v in net.current_limit] + [net.current_limit[-1][1]]
        amp_ax.step(
            xs,
            ys,
            where="post",
            color="tab:blue",
            linestyle="--",
            label="current limit",
            gid="current-limit",
        )
    off = net.output[-1][0] if net.output and not net.output[-1][1] else None
    for ax, measured in ((volt_ax, net.measured_v), (amp_ax, net.measured_i)):
        if not measured:
            continue
        ax.plot(
            *zip(*measured, strict=True),
            "o-",
            ms=3,
            color="tab:orange",
            label="measured",
            gid="measured",
        )
        last_t, last_v = measured[-1]
        if off is not None and last_t <= off and last_v != 0.0:
            # Off, and not measured since: the drop the command made, drawn as such.
            ax.plot(
                [last_t, off, end],
                [last_v, 0.0, 0.0],
                ":",
                color="tab:orange",
                label="output off (commanded)",
                gid="measured-drop",
            )
    for ax in (volt_ax, amp_ax):
        for start, stop in spans:
            ax.axvspan(start, stop, color="tab:green", alpha=0.08, gid="live")


_STYLE = {
    "fault": {"color": "tab:red", "linestyle": "-", "linewidth": 1.6},
    "operator": {"color": "grey", "linestyle": ":", "linewidth": 1.2},
    "step": {"color": "silver", "linestyle": "-", "linewidth": 0.6},
}


def _draw_mark(mark: Mark, axes: Any, rows_of: dict[str, Any]) -> None:
    if mark.kind in _STYLE:
        for ax in axes.flat:
            ax.axvline(mark.t, gid=mark.kind, **_STYLE[mark.kind])
        if mark.kind != "step":
            axes[0][0].text(
                mark.t,
                0.99,
                f" {mark.label}",
                transform=axes[0][0].get_xaxis_transform(),
                va="top",
                ha="left",
                fontsize="small",
                color=_STYLE[mark.kind]["color"],
            )
        return
    row = rows_of.get(mark.net or "")
    if mark.kind == "refused":
        # A refused setpoint on the voltage axis of its net's row, a current limit on the
        # current axis; anything else (a relay, a net without a row) across every row.
        axis = {"voltage": 0, "current_limit": 1}.get(mark.quantity or "")
        if row is None or mark.value is None or axis is None:
            for ax in axes.flat:
                ax.axvline(mark.t, color="tab:red", linestyle="--", linewidth=1.0, gid="refused")
            return
        row[axis].plot(
            [mark.t], [mark.value], "x", ms=10, mew=2.5, color="tab:red", label="refused",
            gid="refused",
        )  # fmt: skip
        if axis == 0:
            row[0].annotate(
                f"{mark.value:g} V refused",
                (mark.t, mark.value),
                xytext=(6, -4),
                textcoords="offset points",
                color="tab:red",
                fontsize="small",
            )
        return
    if mark.kind == "failed" and row is not None:
        for ax, value in ((row[0], mark.value), (row[1], mark.current)):
            if value is not None:
                ax.plot(
                    [mark.t],
                    [value],
                    "X",
                    ms=11,
                    color="tab:purple",
                    label="failed measurement",
                    gid="failed",
                )
