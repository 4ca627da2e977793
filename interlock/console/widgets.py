"""The panels of the console's main screen. They render; the app decides what to show."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Sparkline, Static

from interlock.config import Bench
from interlock.units import CURRENT, VOLTAGE, format_quantity

from .model import History, JournalLine, relays_in_fault, short_hash

# Width of a net row's text, so the sparklines line up under their heading.
_NET_COLUMNS = (
    "{net:<7} {supply:<8} {setpoint:>9} {limit:>9} {max_v:>8} {max_i:>8}  {v:>9} {i:>9}  {out:<4}"
)


# The states an operator must notice at a glance, whatever the banner's colour.
_STATE_STYLES = {"fault": "bold white on red", "live": "bold black on yellow"}


def _quantity(value: float | None, dimension: Any) -> str:
    return "-" if value is None else format_quantity(value, dimension)


class Banner(Static):
    """Bench name, environment class and state: the line nobody can miss."""

    def show(self, bench: Bench, state: str | None, connected: bool) -> None:
        environment = bench.environment
        for name in ("simulation", "engineering", "flight"):
            self.set_class(environment == name, f"-{name}")
        text = Text(justify="center")
        text.append(f"BENCH {bench.name}", style="bold")
        text.append("   ")
        text.append(f"[{environment.upper()}]", style="bold")
        if environment == "flight":
            text.append("  *** FLIGHT HARDWARE ***", style="bold blink")
        text.append("   state ")
        shown = (state or "unknown") if connected else "unknown"
        text.append(f" {shown.upper()} ", style=_STATE_STYLES.get(shown, "bold"))
        self.update(text)


class ConnectionLine(Static):
    def show(
        self, socket: str, role: str, who: str | None, problem: str | None, seen: bool
    ) -> None:
        self.set_class(problem is not None, "-down")
        if problem is not None:
            stale = " What is shown below is the last status seen." if seen else ""
            self.update(
                Text(
                    f"DISCONNECTED from {socket}: {problem}. Reconnecting...{stale} "
                    "The service keeps the bench safe without this console.",
                    style="bold",
                )
            )
            return
        self.update(Text(f"connected to {socket} as {role}" + (f" ({who})" if who else "")))


class Summary(Static):
    """State, latched fault and its cause, lease holder, pinned profile and run."""

    def show(self, status: dict[str, Any] | None, stale: bool = False) -> None:
        if status is None:
            self.update(Text("no status yet", style="dim"))
            return
        text = Text()
        text.append("state   ", style="dim")
        text.append(str(status.get("state")), style="bold")
        if stale:
            text.append(" (last seen: not connected now)", style="bold red")
        fault = status.get("fault")
        if fault:
            text.append("   FAULT LATCHED: ", style="bold red")
            text.append(str(fault), style="red")
        text.append("\nlease   ", style="dim")
        lease = status.get("lease")
        if lease:
            text.append(f"{lease['who']} ({lease['client']})", style="bold")
            text.append(
                f", held {lease['held_for']:.1f} s, expires in {lease['expires_in']:.1f} s"
                + ("" if lease.get("watched") else ", not watched")
            )
        else:
            text.append("nobody")
        profile = status.get("profile") or {}
        text.append("\nprofile ", style="dim")
        text.append(f"{profile.get('name')} ", style="bold")
        text.append(f"{profile.get('path')}  sha256 {short_hash(profile.get('sha256'))}")
        text.append("\nrun     ", style="dim")
        text.append(str(status.get("run") or "-"))
        connect_error = (status.get("service") or {}).get("connect_error")
        if connect_error:
            text.append("\ncontroller did not connect: ", style="bold red")
            text.append(connect_error, style="red")
        self.update(text)


def _latest(samples: Sequence[float]) -> float:
    return samples[-1]


class NetRow(Horizontal):
    """One net: commanded, limits, measured, output, and sparklines of V and I."""

    def __init__(self, net: str) -> None:
        super().__init__(id=f"net-{net}", classes="net-row")
        self.net = net

    def compose(self) -> ComposeResult:
        yield Static(classes="net-text")
        # Each column the latest of its samples (not their maximum): a drop to zero shows.
        yield Sparkline([], summary_function=_latest, classes="spark-v")
        yield Sparkline([], summary_function=_latest, classes="spark-i")

    def show(self, info: dict[str, Any], history: History) -> None:
        live = bool(info.get("output"))
        measured = info.get("measured") if live else None
        supplied = info.get("supply") is not None
        text = _NET_COLUMNS.format(
            net=self.net,
            supply=info.get("supply") or "sense",
            setpoint=_quantity(info.get("setpoint"), VOLTAGE) if supplied else "-",
            limit=_quantity(info.get("current_limit"), CURRENT) if supplied else "-",
            max_v=_quantity(info.get("max_voltage"), VOLTAGE),
            max_i=_quantity(info.get("max_current"), CURRENT),
            v=f"{measured['voltage']:.3f} V" if measured else "-",
            i=f"{measured['current'] * 1000:.1f} mA" if measured else "-",
            out="LIVE" if live else "off",
        )
        self.set_class(live, "-live")
        self.query_one(".net-text", Static).update(Text(text))
        self.query_one(".spark-v", Sparkline).data = history.voltage(self.net)
        self.query_one(".spark-i", Sparkline).data = history.current(self.net)


class NetsPanel(Vertical):
    def compose(self) -> ComposeResult:
        heading = _NET_COLUMNS.format(
            net="net",
            supply="supply",
            setpoint="setpoint",
            limit="I limit",
            max_v="max V",
            max_i="max I",
            v="meas V",
            i="meas I",
            out="out",
        )
        # One line however narrow the terminal (cut, as the sparklines under it are).
        heading = Text(f"{heading}  {'V trend':<16} I trend", style="bold", no_wrap=True)
        yield Static(heading, classes="heading")

    def show(self, status: dict[str, Any], history: History) -> None:
        for net, info in status.get("nets", {}).items():
            rows = self.query(f"#net-{net}")
            if rows:
                row = rows.first(NetRow)
            else:
                row = NetRow(net)
                self.mount(row)
            if row.is_mounted:
                row.show(info, history)
            else:
                row.call_after_refresh(row.show, info, history)


class RelaysPanel(Static):
    """Each relay's commanded state; contact sense as the controller supervises it."""

    def show(self, bench: Bench, status: dict[str, Any], *, heading: bool = True) -> None:
        relays = status.get("relays", {})
        disagree = relays_in_fault(status.get("fault"), list(relays))
        table = Table.grid(padding=(0, 1))
        for _ in range(4):
            table.add_column()
        # Contact sense is the controller's to supervise: a mismatch trips it (cause
        # contact-sense, naming the relays); the status carries no contact readings.
        if heading:  # left out when the console is compact: every relay keeps its row
            table.add_row(*(Text(h, style="bold") for h in ("", "commanded", "wiring", "contacts")))
        for relay, closed in relays.items():
            description = bench.relays[relay].description if relay in bench.relays else ""
            if relay in disagree:
                sense = Text("MISMATCH", style="bold red")
            else:
                sense = Text("no mismatch", style="dim")
            state = Text("CLOSED" if closed else "open", style="bold yellow" if closed else "")
            table.add_row(Text(f"{relay:<3}"), state, Text(description, style="dim"), sense)
        self.update(table)


class JournalPanel(Static):
    def show(self, lines: list[JournalLine], problem: str | None = None) -> None:
        text = Text()
        if problem:
            text.append(f"journal: {problem}\n", style="dim red")
        for line in lines:
            alarm = line.alarm
            style = {"fault": "bold white on red", "refused": "bold yellow"}.get(alarm or "", "")
            time_of_day = line.wall_time[11:23] if len(line.wall_time) >= 23 else line.wall_time
            text.append(f"#{line.seq:<6} {time_of_day} {line.kind:<9} ", style="dim")
            text.append(f"{line.text}\n", style=style)
        text.rstrip()
        self.update(text)
