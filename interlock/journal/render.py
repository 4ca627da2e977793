"""Entries as one line of text for people: ``journal show`` and the post-mortem timeline."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from interlock.engineering import amount
from interlock.journal.entries import Entry, Kind, net_readings, payload_data

# Units of the SI floats a payload key or a limit name carries, by its ending
# ("max_voltage", "live_min_current"). A name that says nothing gets no unit:
# a bare number is better than a wrong unit.
_UNIT_BY_ENDING = (
    ("voltage", "V"),
    ("volts", "V"),
    ("current", "A"),
    ("current_limit", "A"),
    ("amps", "A"),
    ("resistance", "Ohm"),
    ("power", "W"),
    ("slew", "V/s"),
    ("max_step", "V"),  # a profile's largest voltage step
    ("ovp", "V"),
    ("ocp", "A"),  # a level where a supply takes one (a switch where it takes on/off)
    ("time", "s"),
    ("timeout", "s"),
    ("watchdog", "s"),
    ("duration", "s"),
    ("period", "s"),
    ("_s", "s"),
)


def unit_for(name: str) -> str:
    for ending, unit in _UNIT_BY_ENDING:
        if name == ending or name.endswith(ending):
            return unit
    return ""


def value_text(value: Any, name: str = "") -> str:
    if isinstance(value, bool):
        words = {"output": ("on", "off"), "relay": ("closed", "open")}.get(name)
        return str(value).lower() if words is None else words[0 if value else 1]
    if name == "relay" and isinstance(value, int):
        # A relay board's readback is a mask of closed relays, as its reply prints it (hex).
        return f"mask 0x{value:02x}"
    if isinstance(value, float | int):
        unit = unit_for(name)
        return amount(value, unit) if unit else f"{value:g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def _rest(payload: dict[str, Any], used: set[str]) -> str:
    extra = [f"{k}={value_text(v, k)}" for k, v in sorted(payload.items()) if k not in used]
    return ("  [" + ", ".join(extra) + "]") if extra else ""


def _setpoint(payload: dict[str, Any]) -> str:
    """``VBUS voltage=5 V`` from the net/quantity/value convention."""
    target = payload.get("net") or payload.get("relay") or ""
    quantity = payload.get("quantity")
    if quantity is None:
        return str(target)
    if "value" not in payload:
        return f"{target} {quantity}".strip()
    return f"{target} {quantity}={value_text(payload['value'], str(quantity))}".strip()


_SETPOINT_KEYS = {"net", "relay", "quantity", "value"}


def _request(p: dict[str, Any]) -> tuple[str, set[str]]:
    if p.get("action") == "note":
        # A script's marker (a sequence step begun): its text says which step.
        text = str(p.get("text", ""))
        if "step" in p and f"step {p['step']}" not in text:
            text = f"step {p['step']}: {text}"
        return f"note: {text} (via {p.get('client', '?')})", {"action", "client", "step", "text"}
    return f"{p.get('action', '?')} {_setpoint(p)} (via {p.get('client', '?')})", {
        "action",
        "client",
        *_SETPOINT_KEYS,
    }


def _verdict(p: dict[str, Any]) -> tuple[str, set[str]]:
    answer = "ALLOWED" if p.get("allowed") else "REFUSED"
    text = answer + (f" request #{p['request']}" if "request" in p else "")
    if "rule" in p:
        text += f" by {p['rule']}"
    if "where" in p:
        text += f" ({p['where']})"
    if p.get("reason"):
        text += f": {p['reason']}"
    return text, {"allowed", "request", "rule", "where", "reason"}


def _command(p: dict[str, Any]) -> tuple[str, set[str]]:
    sent = payload_data(p)
    shown = sent.decode("utf-8") if "data" in p else sent.hex(" ")
    setpoint = _setpoint(p)
    text = f"{p.get('instrument', '?')} <- {shown!r}" + (f"  ({setpoint})" if setpoint else "")
    return text, {"instrument", "data", "data_hex", *_SETPOINT_KEYS}


def _readback(p: dict[str, Any]) -> tuple[str, set[str]]:
    text = f"{p.get('instrument', '?')} {p.get('query', '?')} -> {p.get('reply', '?')!r}"
    setpoint = _setpoint(p)
    if setpoint:
        text += f"  ({setpoint})"
    if "expected" in p:
        text += f" expected {value_text(p['expected'], str(p.get('quantity', '')))}"
    if "ok" in p:
        text += " OK" if p["ok"] else " MISMATCH"
    # "data": the exact bytes of a pure query answered in its own entry's place.
    return text, {"instrument", "query", "reply", "expected", "ok", "data", *_SETPOINT_KEYS}


def _reading(net: str, values: dict[str, Any]) -> str:
    parts = [net]
    for key in ("voltage", "current", "resistance"):
        if key in values:
            parts.append(value_text(values[key], key))
    return " ".join(parts)


def _measurement(p: dict[str, Any]) -> tuple[str, set[str]]:
    if "nets" in p:  # the nets of one instrument, read in one exchange
        readings = net_readings(p)
        text = "; ".join(_reading(net, values) for net, values in readings.items())
        return f"{p.get('instrument', '?')}: {text or '?'}", {"instrument", "nets"}
    return _reading(str(p.get("net", "?")), p), {"net", "voltage", "current", "resistance"}


def _state(p: dict[str, Any]) -> tuple[str, set[str]]:
    return f"{p.get('from', '?')} -> {p.get('to', '?')} ({p.get('trigger', '?')})", {
        "from",
        "to",
        "trigger",
    }


def _fault(p: dict[str, Any]) -> tuple[str, set[str]]:
    return f"FAULT {p.get('cause', '?')}: {p.get('detail', '')}", {"cause", "detail"}


def _operator(p: dict[str, Any]) -> tuple[str, set[str]]:
    detail = f": {p['detail']}" if p.get("detail") else ""
    return f"{p.get('action', '?')}{detail}", {"action", "detail"}


def _identity(p: dict[str, Any]) -> tuple[str, set[str]]:
    verdict = "OK" if p.get("ok") else "MISMATCH"
    text = f"{p.get('instrument', '?')} {verdict}: expected {p.get('expected')!r}"
    if not p.get("ok"):
        text += f", seen {p.get('seen')!r}"
    return text, {"instrument", "ok", "expected", "seen"}


def _config(p: dict[str, Any]) -> tuple[str, set[str]]:
    files = p.get("files", {})
    pinned = ", ".join(
        f"{role} {f.get('path')} sha256 {str(f.get('sha256'))[:12]}" for role, f in files.items()
    )
    return f"pinned {pinned}", {"files", "limits"}


def _breaks(p: dict[str, Any]) -> str:
    breaks = p.get("breaks") or []
    if not isinstance(breaks, list) or not breaks:
        return ""
    first = breaks[0].get("problem", "?") if isinstance(breaks[0], dict) else "?"
    return first + (f" (and {len(breaks) - 1} more)" if len(breaks) > 1 else "")


def _journal(p: dict[str, Any]) -> tuple[str, set[str]]:
    action = p.get("action")
    if action == "prune":
        ranges = ", ".join(f"{a}..{b}" if a != b else str(a) for a, b in p.get("ranges", []))
        return f"pruned {p.get('removed')} entries ({ranges})", {"action", "removed", "ranges"}
    if action == "check":
        checked = f"checked {p.get('entries')} entries after seq {p.get('after')}"
        broken = _breaks(p)
        text = f"{checked}: BROKEN: {broken}" if broken else f"{checked}: chain OK"
        return text, {"action", "entries", "after", "breaks"}
    if action in ("acknowledge", "adopt"):
        verb = "acknowledged" if action == "acknowledge" else "adopted (no witness before)"
        return f"{verb}: {_breaks(p)}", {"action", "breaks"}
    return str(action or "?"), {"action"}


_DESCRIBERS: dict[str, Callable[[dict[str, Any]], tuple[str, set[str]]]] = {
    Kind.REQUEST: _request,
    Kind.VERDICT: _verdict,
    Kind.COMMAND: _command,
    Kind.READBACK: _readback,
    Kind.MEASUREMENT: _measurement,
    Kind.STATE: _state,
    Kind.FAULT: _fault,
    Kind.OPERATOR: _operator,
    Kind.IDENTITY: _identity,
    Kind.CONFIG: _config,
    Kind.JOURNAL: _journal,
}


def describe(entry: Entry) -> str:
    """What happened, in a few words; keys outside the conventions are appended."""
    payload = entry.payload
    describer = _DESCRIBERS.get(entry.kind)
    if describer is None:
        return _rest(payload, set()).strip()
    text, used = describer(payload)
    return text + _rest(payload, used)


def format_line(entry: Entry) -> str:
    """One ``journal show`` line: seq, UTC time, run, kind, actor, what."""
    run = entry.run_id or "-"
    return (
        f"#{entry.seq:<6} {entry.wall_time}  {run}  {entry.kind:<11} "
        f"{entry.actor:<12} {describe(entry)}"
    )
