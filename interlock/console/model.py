"""What the console shows, worked out from the service's status: pure, no I/O, no widgets.

The widgets only render these values, so the rules (who may do what, in
which state, and why not; which journal lines are alarms) are tested here
without a terminal.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from interlock.service.tokens import ROLES, rank

#: Samples of each net kept for its sparklines (one per new measurement).
HISTORY = 60

#: The role each console action needs (as the service's routes do; the service decides).
NEEDS = {"estop": "viewer", "arm": "operator", "disarm": "operator", "reset": "operator"}
#: The state each action makes sense in (the service refuses the others anyway).
STATES = {"arm": ("safe",), "disarm": ("armed",), "reset": ("fault",)}


@dataclass(frozen=True)
class Availability:
    allowed: bool
    reason: str = ""  # why not, shown beside the action


def availability(action: str, role: str, state: str | None, connected: bool) -> Availability:
    """May this console (acting in ``role``) offer ``action`` now, and if not, why not?

    The emergency stop is always offered: it is tried even when the service
    looks unreachable, because a stale connection is not proof of a dead one.
    """
    if action == "estop":
        return Availability(True)
    needs = NEEDS[action]
    if role not in ROLES or rank(role) < rank(needs):
        return Availability(False, f"needs the {needs} role (this console is {role})")
    if not connected:
        return Availability(False, "no service: disconnected")
    wanted = STATES[action]
    if state not in wanted:
        return Availability(False, f"only when {' or '.join(wanted)} (now {state})")
    return Availability(True)


@dataclass(frozen=True)
class JournalLine:
    """One journal entry as the tail shows it."""

    seq: int
    wall_time: str
    kind: str
    actor: str
    text: str

    @property
    def alarm(self) -> str | None:
        """ "fault" or "refused" for the lines an operator must not miss."""
        if self.kind == "fault":
            return "fault"
        if self.kind == "verdict" and self.text.startswith("REFUSED"):
            return "refused"
        if self.kind == "state" and "-> fault" in self.text:
            return "fault"
        return None


class History:
    """Recent measured voltage and current of each net, one sample per new measurement.

    A repeated status carries the same (stale) measurement: keyed on its
    timestamp, it is counted once, so a net that stopped being measured
    does not draw a flat line of invented samples. A net whose output goes
    off gets one sample of zero then (its output was commanded off; the
    last reading, from before, would draw the trip as if the net stayed up).
    """

    def __init__(self, size: int = HISTORY) -> None:
        self.size = size
        self._voltage: dict[str, deque[float]] = {}
        self._current: dict[str, deque[float]] = {}
        self._last_at: dict[str, Any] = {}
        self._live: dict[str, bool] = {}

    def add(self, status: dict[str, Any]) -> None:
        for net, info in (status.get("nets") or {}).items():
            live, was_live = bool(info.get("output")), self._live.get(net, False)
            self._live[net] = live
            measured = info.get("measured")
            if was_live and not live:
                self._append(net, 0.0, 0.0)
                # A reading taken while it was live is not the off output's.
                self._last_at[net] = (measured or {}).get("at")
                continue
            if not measured:
                continue
            at = measured.get("at")
            if at is not None and self._last_at.get(net) == at:
                continue
            self._last_at[net] = at
            self._append(net, measured["voltage"], measured["current"])

    def _append(self, net: str, volts: float, amps: float) -> None:
        self._voltage.setdefault(net, deque(maxlen=self.size)).append(volts)
        self._current.setdefault(net, deque(maxlen=self.size)).append(amps)

    def voltage(self, net: str) -> list[float]:
        return list(self._voltage.get(net, ()))

    def current(self, net: str) -> list[float]:
        return list(self._current.get(net, ()))


def relays_in_fault(fault: str | None, relays: list[str]) -> set[str]:
    """Relays a contact-sense fault names (their contacts disagreed with their coils)."""
    if not fault or not fault.startswith("contact-sense"):
        return set()
    words = set(fault.replace(",", " ").replace(":", " ").split())
    return {relay for relay in relays if relay in words}


def short_hash(sha256: str | None) -> str:
    return (sha256 or "?")[:16]
