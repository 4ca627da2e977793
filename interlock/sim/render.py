"""Readable views of the ground truth and of a net's history (``interlock sim truth``).

Times are shown as seconds before the snapshot was taken (``-1.250 s``) on
the simulator's monotonic clock, with the wall-clock time of the first line;
``--json`` prints the data itself, stamps and all.
"""

from __future__ import annotations

import time
from typing import Any

from interlock.sim.truth import History
from interlock.units import CURRENT, VOLTAGE, format_quantity


def _v(value: float) -> str:
    return format_quantity(float(f"{value:.4g}"), VOLTAGE)


def _a(value: float) -> str:
    return format_quantity(float(f"{value:.4g}"), CURRENT)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _ago(stamp: dict[str, float] | None, now: float) -> str:
    return "-" if stamp is None else f"{stamp['monotonic'] - now:+.3f} s"


def _wall(seconds: float) -> str:
    milliseconds = int(seconds % 1 * 1000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) + f".{milliseconds:03d}"


def render_truth(truth: dict[str, Any]) -> str:
    """The state of the simulated bench now: nets, supply channels, relays, boards, faults."""
    now = truth["clock"]["monotonic"]
    lines = [
        f"clock     {now:.3f} s monotonic ({_wall(truth['clock']['wall'])}); "
        "times below are relative to it",
        f"faults    {', '.join(truth.get('faults', [])) or 'none'}",
        "",
        "nets",
    ]
    rows = [["net", "voltage", "current", "max voltage", "at", "max current", "at"]]
    for net, rec in truth["nets"].items():
        rows.append(
            [
                net,
                _v(rec["voltage"]),
                _a(rec["current"]),
                _v(rec["max_voltage"]),
                _ago(rec["max_voltage_at"], now),
                _a(rec["max_current"]),
                _ago(rec["max_current_at"], now),
            ]
        )
    lines += _table(rows)
    rows = [["supply", "net", "output", "setpoint", "current limit", "OVP", "OCP", "tripped"]]
    for name, channels in truth.get("supplies", {}).items():
        for channel, s in channels.items():
            tripped = [p for p, on in (("OVP", s["ovp_tripped"]), ("OCP", s["ocp_tripped"])) if on]
            rows.append(
                [
                    f"{name} CH{channel}",
                    s.get("net") or "-",
                    "on" if s["output"] else "off",
                    _v(s["setpoint"]),
                    _a(s["current_limit"]),
                    f"{_v(s['ovp'])} {'on' if s['ovp_enabled'] else 'off'}",
                    "on" if s["ocp_enabled"] else "off",
                    ", ".join(tripped) or "-",
                ]
            )
    if len(rows) > 1:
        lines += ["", "supply channels", *_table(rows)]
    rows = [["relay", "board", "channel", "coil", "contact"]]
    for name, r in truth.get("relay_states", {}).items():
        rows.append(
            [
                name,
                r["board"],
                str(r["channel"]),
                "energised" if r["coil"] else "released",
                "closed" if r["contact"] else "open",
            ]
        )
    if len(rows) > 1:
        lines += ["", "relays", *_table(rows)]
    for name, b in truth.get("boards", {}).items():
        lines += [
            "",
            f"board     {name} ({b['serial']}): trip {b['trip'] or '-'}, "
            f"E-stop {'pressed' if b['estop'] else 'closed'}, watchdog {b['watchdog_ms']} ms, "
            f"host last heard {_ago(b['host_last_heard'], now)}, boots {b['boots']}",
        ]
    events = sorted(truth.get("events", []), key=lambda event: event["monotonic"])
    if events:
        lines += ["", f"events (last {min(len(events), 10)} of {len(events)})"]
        for event in events[-10:]:
            lines.append(f"  {_ago(event, now):>12}  {event['kind']:<18} {event['detail']}")
    return "\n".join(lines)


def render_history(history: History) -> str:
    """A net's samples and the bench's changes in time order. A sample is shown when
    its value differs from the one shown before it, and the last one always."""
    now = history.clock.monotonic
    lines = [
        f"history   {history.net}, the last {history.seconds:g} s "
        f"(clock {now:.3f} s monotonic, {_wall(history.clock.wall)}); "
        f"{len(history.samples)} samples, {len(history.changes)} changes",
        f"  {'time':>12}  {'voltage':>10}  {'current':>10}",
    ]
    # At one instant, the change first: the samples show what it did.
    entries: list[tuple[float, int, Any]] = [(c.monotonic, 0, c) for c in history.changes]
    entries += [(s.monotonic, 1, s) for s in history.samples]
    entries.sort(key=lambda entry: (entry[0], entry[1]))
    last_sample = history.samples[-1] if history.samples else None
    shown: tuple[float, float] | None = None
    for at, kind, entry in entries:
        when = f"  {at - now:>+10.3f} s"
        if kind == 0:
            lines.append(f"{when}  {'':>10}  {'':>10}  {entry.kind}: {entry.detail}")
            continue
        value = (entry.voltage, entry.current)
        if value != shown or entry is last_sample:
            shown = value
            lines.append(f"{when}  {_v(entry.voltage):>10}  {_a(entry.current):>10}")
    return "\n".join(lines)
