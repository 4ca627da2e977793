"""Ground truth: what really happened on the simulated bench.

Tests assert against this record, not against what the controller believes.
It holds, per DUT net, the highest voltage and current the net ever saw and
when; per instrument, every line it received; every relay contact change;
and bench events (faults injected and cleared, protection trips, connections).

Time stamps are ``time.monotonic()`` (comparable with the controller's
journal, which runs on the same clock) plus wall-clock time for people.
Everything is thread-safe: instruments, the relay board's thread and the
control channel all write here.

:meth:`GroundTruth.snapshot` (``interlock sim truth``) is JSON-ready; every
``at`` / stamp is ``{"monotonic": s, "wall": s}``::

    {"clock": {"monotonic": ..., "wall": ...},        # when the snapshot was taken
     "nets": {"VBUS": {"voltage": V, "current": A,    # now
                       "max_voltage": V, "max_voltage_at": stamp | null,
                       "max_current": A, "max_current_at": stamp | null}},
     "instruments": {"psu": {"commands": [{"monotonic", "wall", "line", "note"?}],
                             "dropped": n}},          # beyond MAX_COMMANDS
     "relays": [{"monotonic", "wall", "relay": "K3", "channel": 3, "closed": true}],
     "events": [{"monotonic", "wall", "kind", "detail", ...}]}

Event kinds: bench-started, bench-stopped, connected, disconnected,
fault-injected, fault-cleared, protection-trip (instrument, channel, reason
OVP/OCP), setpoint-ignored, hang, unhang, connection-dropped, meter-ties-nets
(nets). :meth:`SimulatedBench.truth` adds ``faults`` (active SPECs) and
``contacts`` (relays closed now).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from interlock.sim.dut import Operating

# Cap per instrument so a simulator left running for days stays bounded.
MAX_COMMANDS = 100_000


@dataclass(frozen=True)
class Stamp:
    monotonic: float
    wall: float

    def as_dict(self) -> dict[str, float]:
        return {"monotonic": self.monotonic, "wall": self.wall}


@dataclass
class _NetRecord:
    voltage: float = 0.0
    current: float = 0.0
    max_voltage: float = 0.0
    max_voltage_at: Stamp | None = None
    max_current: float = 0.0
    max_current_at: Stamp | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "voltage": self.voltage,
            "current": self.current,
            "max_voltage": self.max_voltage,
            "max_voltage_at": self.max_voltage_at.as_dict() if self.max_voltage_at else None,
            "max_current": self.max_current,
            "max_current_at": self.max_current_at.as_dict() if self.max_current_at else None,
        }


class GroundTruth:
    """Thread-safe recorder of the bench's physical history."""

    def __init__(
        self,
        nets: list[str],
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.Lock()
        self._monotonic = monotonic
        self._wall = wall
        self._nets = {net: _NetRecord() for net in nets}
        self._commands: dict[str, deque[dict[str, Any]]] = {}
        self._dropped: dict[str, int] = {}
        self._relays: list[dict[str, Any]] = []
        self._events: list[dict[str, Any]] = []

    def now(self) -> Stamp:
        return Stamp(self._monotonic(), self._wall())

    def observe(self, nets: Mapping[str, Operating], at: Stamp | None = None) -> None:
        """Record the present operating point of the nets; keep the maxima."""
        stamp = at or self.now()
        with self._lock:
            for net, point in nets.items():
                record = self._nets.setdefault(net, _NetRecord())
                record.voltage = point.voltage
                record.current = point.current
                if point.voltage > record.max_voltage:
                    record.max_voltage, record.max_voltage_at = point.voltage, stamp
                if point.current > record.max_current:
                    record.max_current, record.max_current_at = point.current, stamp

    def command(self, instrument: str, line: str, note: str = "", at: Stamp | None = None) -> None:
        """Record a line an instrument received (``note``: e.g. "ignored: hang")."""
        stamp = at or self.now()
        entry: dict[str, Any] = {**stamp.as_dict(), "line": line}
        if note:
            entry["note"] = note
        with self._lock:
            log = self._commands.setdefault(instrument, deque(maxlen=MAX_COMMANDS))
            if len(log) == log.maxlen:
                self._dropped[instrument] = self._dropped.get(instrument, 0) + 1
            log.append(entry)

    def relay(self, relay: str, channel: int, closed: bool, at: Stamp | None = None) -> None:
        stamp = at or self.now()
        with self._lock:
            self._relays.append(
                {**stamp.as_dict(), "relay": relay, "channel": channel, "closed": closed}
            )

    def event(self, kind: str, detail: str = "", at: Stamp | None = None, **extra: Any) -> None:
        stamp = at or self.now()
        with self._lock:
            self._events.append({**stamp.as_dict(), "kind": kind, "detail": detail, **extra})

    # --- reading -------------------------------------------------------------

    def commands(self, instrument: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._commands.get(instrument, ()))

    def lines(self, instrument: str) -> list[str]:
        return [entry["line"] for entry in self.commands(instrument)]

    def net(self, net: str) -> dict[str, Any]:
        with self._lock:
            return self._nets[net].as_dict()

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._events if kind is None or e["kind"] == kind]

    def snapshot(self) -> dict[str, Any]:
        """Everything, as JSON-ready data (the shape of ``interlock sim truth``)."""
        with self._lock:
            return {
                "clock": self.now().as_dict(),
                "nets": {net: record.as_dict() for net, record in self._nets.items()},
                "instruments": {
                    name: {"commands": list(log), "dropped": self._dropped.get(name, 0)}
                    for name, log in self._commands.items()
                },
                "relays": [dict(entry) for entry in self._relays],
                "events": [dict(entry) for entry in self._events],
            }
