"""Ground truth: what really happened on the simulated bench.

Tests assert against this record, not against what the controller believes.
It holds, per DUT net, the highest voltage and current the net ever saw and
when; per instrument, every line it received; every relay contact change;
bench events (faults injected and cleared, protection trips, connections);
each supply channel's settings as the instrument holds them; and a history
ring of the last ``history`` seconds: every net's voltage and current and
every state change.

Time stamps are ``time.monotonic()`` (comparable with the controller's
journal, which runs on the same clock, in whatever process) plus wall-clock
time for people. Everything is thread-safe: instruments, the relay board's
thread and the control channel all write here.

:meth:`GroundTruth.snapshot` (``interlock sim truth --json``) is JSON-ready;
every ``at`` / stamp is ``{"monotonic": s, "wall": s}``::

    {"clock": {"monotonic": ..., "wall": ...},        # when the snapshot was taken
     "nets": {"VBUS": {"voltage": V, "current": A,    # now
                       "max_voltage": V, "max_voltage_at": stamp | null,
                       "max_current": A, "max_current_at": stamp | null}},
     "instruments": {"psu": {"commands": [{"monotonic", "wall", "line", "note"?}],
                             "dropped": n}},          # beyond MAX_COMMANDS
     "relays": [{"monotonic", "wall", "relay": "K3", "channel": 3, "closed": true}],
     "events": [{"monotonic", "wall", "kind", "detail", ...}],
     "supplies": {"psu": {"1": {"output", "setpoint", "current_limit", "ovp",
                                "ovp_enabled", "ocp_enabled", "ovp_tripped",
                                "ocp_tripped"}}},
     "history": {"seconds": N, "sample_period": s, "oldest": monotonic | null}}

Event kinds: bench-started, bench-stopped, connected, disconnected,
fault-injected, fault-cleared, protection-trip (instrument, channel, reason
OVP/OCP), setpoint-ignored, hang, unhang, connection-dropped, meter-ties-nets
(nets). :meth:`SimulatedBench.truth` adds ``faults`` (active SPECs),
``contacts`` (relays closed now), ``relay_states`` (each relay's coil and
contact now), ``boards`` (each relay board's firmware state) and each supply
channel's ``net``.

The history (:meth:`GroundTruth.history`, ``interlock sim truth --history
NET``): a net's samples are taken on every change of its operating point
(the model is solved again after every change anywhere on the bench) and
every :data:`SAMPLE_PERIOD` whatever happens; the changes are every event
above plus supply settings (``supply``), relay coils and contacts
(``relay-coil``, ``relay-contact``) and what the relay board's firmware
announces (``board``: BOOT, TRIP WDT / ESTOP, MISMATCH, ESTOP_CLEAR). Both
keep the last ``history`` seconds, and at most :data:`MAX_SAMPLES` samples a
net and :data:`MAX_CHANGES` changes, whichever is less.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from interlock.errors import SimulatorError
from interlock.sim.dut import Operating

# Cap per instrument so a simulator left running for days stays bounded.
MAX_COMMANDS = 100_000
# The same for the event and relay lists of the snapshot.
MAX_EVENTS = 100_000
# History: the window when bench.toml does not say, and its caps.
DEFAULT_HISTORY = 60.0
MAX_SAMPLES = 100_000
MAX_CHANGES = 100_000
# Periodic samples of every net, beside those taken on every change.
SAMPLE_PERIOD = 0.1


@dataclass(frozen=True)
class Stamp:
    monotonic: float
    wall: float

    def as_dict(self) -> dict[str, float]:
        return {"monotonic": self.monotonic, "wall": self.wall}


@dataclass(frozen=True)
class Sample:
    """One net's voltage and current at one moment."""

    monotonic: float
    wall: float
    voltage: float
    current: float

    def as_dict(self) -> dict[str, float]:
        return {
            "monotonic": self.monotonic,
            "wall": self.wall,
            "voltage": self.voltage,
            "current": self.current,
        }


@dataclass(frozen=True)
class Change:
    """One state change: ``kind`` (an event kind, supply, relay-coil, relay-contact,
    board), a readable ``detail`` and the fields of the change in ``data``."""

    monotonic: float
    wall: float
    kind: str
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "monotonic": self.monotonic,
            "wall": self.wall,
            "kind": self.kind,
            "detail": self.detail,
            **self.data,
        }


@dataclass(frozen=True)
class History:
    """What one net did over a window, and every state change of the bench meanwhile."""

    net: str
    seconds: float  # the window asked for (at most the ring's)
    clock: Stamp  # when it was read
    samples: list[Sample]
    changes: list[Change]

    def as_dict(self) -> dict[str, Any]:
        return {
            "net": self.net,
            "seconds": self.seconds,
            "clock": self.clock.as_dict(),
            "samples": [s.as_dict() for s in self.samples],
            "changes": [c.as_dict() for c in self.changes],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        try:
            changes = []
            for entry in data["changes"]:
                extra = {
                    k: v
                    for k, v in entry.items()
                    if k not in ("monotonic", "wall", "kind", "detail")
                }
                changes.append(
                    Change(
                        float(entry["monotonic"]),
                        float(entry["wall"]),
                        str(entry["kind"]),
                        str(entry["detail"]),
                        extra,
                    )
                )
            return cls(
                net=str(data["net"]),
                seconds=float(data["seconds"]),
                clock=Stamp(float(data["clock"]["monotonic"]), float(data["clock"]["wall"])),
                samples=[
                    Sample(
                        float(s["monotonic"]),
                        float(s["wall"]),
                        float(s["voltage"]),
                        float(s["current"]),
                    )
                    for s in data["samples"]
                ],
                changes=changes,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SimulatorError(f"a history that does not parse: {exc!r}") from exc


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
    """Thread-safe recorder of the bench's physical history.

    ``history``: seconds of samples and changes kept (the ring's window).
    """

    def __init__(
        self,
        nets: list[str],
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        history: float = DEFAULT_HISTORY,
    ) -> None:
        if not (isinstance(history, int | float) and math.isfinite(history) and history > 0):
            raise SimulatorError(f"history: expected a positive number of seconds, got {history!r}")
        self._lock = threading.Lock()
        self._monotonic = monotonic
        self._wall = wall
        self.history_seconds = float(history)
        self._nets = {net: _NetRecord() for net in nets}
        self._commands: dict[str, deque[dict[str, Any]]] = {}
        self._dropped: dict[str, int] = {}
        self._relays: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self._events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self._supplies: dict[str, dict[int, dict[str, Any]]] = {}
        self._samples: dict[str, deque[Sample]] = {net: deque(maxlen=MAX_SAMPLES) for net in nets}
        self._changes: deque[Change] = deque(maxlen=MAX_CHANGES)

    def now(self) -> Stamp:
        return Stamp(self._monotonic(), self._wall())

    # --- recording ------------------------------------------------------------

    def observe(self, nets: Mapping[str, Operating], at: Stamp | None = None) -> None:
        """Record the present operating point of the nets; keep the maxima and the history."""
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
                self._sample(net, stamp, point, only_changes=True)
            self._forget(stamp.monotonic)

    def sample(self, nets: Mapping[str, Operating], at: Stamp | None = None) -> None:
        """A periodic sample of every net, changed or not (the steady state shows too)."""
        stamp = at or self.now()
        with self._lock:
            for net, point in nets.items():
                self._sample(net, stamp, point, only_changes=False)
            self._forget(stamp.monotonic)

    def _sample(self, net: str, stamp: Stamp, point: Operating, *, only_changes: bool) -> None:
        ring = self._samples.setdefault(net, deque(maxlen=MAX_SAMPLES))
        if only_changes and ring:
            last = ring[-1]
            # Unchanged, and still in the window: the last sample says it already.
            same = (last.voltage, last.current) == (point.voltage, point.current)
            if same and last.monotonic >= stamp.monotonic - self.history_seconds:
                return
        ring.append(Sample(stamp.monotonic, stamp.wall, point.voltage, point.current))

    def _forget(self, now: float) -> None:
        """Drop from every ring what is older than the window behind ``now``."""
        horizon = now - self.history_seconds
        for ring in (*self._samples.values(), self._changes):
            while ring and ring[0].monotonic < horizon:
                ring.popleft()

    def change(self, kind: str, detail: str = "", at: Stamp | None = None, **data: Any) -> None:
        """A state change, for the history only."""
        stamp = at or self.now()
        with self._lock:
            self._change(Change(stamp.monotonic, stamp.wall, kind, detail, data))

    def _change(self, change: Change) -> None:
        self._changes.append(change)
        self._forget(change.monotonic)

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
            self._change(
                Change(
                    stamp.monotonic,
                    stamp.wall,
                    "relay-contact",
                    f"{relay} contact {'closed' if closed else 'open'}",
                    {"relay": relay, "channel": channel, "closed": closed},
                )
            )

    def event(self, kind: str, detail: str = "", at: Stamp | None = None, **extra: Any) -> None:
        stamp = at or self.now()
        with self._lock:
            self._events.append({**stamp.as_dict(), "kind": kind, "detail": detail, **extra})
            self._change(Change(stamp.monotonic, stamp.wall, kind, detail, dict(extra)))

    def supply_settings(
        self, instrument: str, channel: int, settings: Mapping[str, Any], at: Stamp | None = None
    ) -> None:
        """A supply channel's settings as the instrument holds them; each field that
        differs from the last call is a ``supply`` change (the first call sets the baseline)."""
        stamp = at or self.now()
        with self._lock:
            channels = self._supplies.setdefault(instrument, {})
            before = channels.get(channel)
            channels[channel] = dict(settings)
            if before is None:
                return
            for name, value in settings.items():
                old = before.get(name)
                if old != value:
                    self._change(
                        Change(
                            stamp.monotonic,
                            stamp.wall,
                            "supply",
                            f"{instrument} CH{channel} {name} {_shown(name, old)} -> "
                            f"{_shown(name, value)}",
                            {
                                "instrument": instrument,
                                "channel": channel,
                                "field": name,
                                "old": old,
                                "new": value,
                            },
                        )
                    )

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

    def supplies(self) -> dict[str, dict[int, dict[str, Any]]]:
        with self._lock:
            return {
                name: {ch: dict(s) for ch, s in channels.items()}
                for name, channels in self._supplies.items()
            }

    def history(self, net: str, seconds: float | None = None) -> History:
        """``net``'s samples and every change of the last ``seconds`` (default: the whole ring)."""
        if seconds is not None and (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not math.isfinite(seconds)
            or seconds <= 0
        ):
            raise SimulatorError(f"history: expected a positive number of seconds, got {seconds!r}")
        window = (
            self.history_seconds if seconds is None else min(float(seconds), self.history_seconds)
        )
        with self._lock:
            if net not in self._samples:
                known = ", ".join(sorted(self._samples))
                raise SimulatorError(f'history: no net "{net}" on this bench (nets: {known})')
            clock = self.now()
            horizon = clock.monotonic - window
            samples = sorted(
                (s for s in self._samples[net] if s.monotonic >= horizon), key=lambda s: s.monotonic
            )
            changes = sorted(
                (c for c in self._changes if c.monotonic >= horizon), key=lambda c: c.monotonic
            )
        return History(net, window, clock, samples, changes)

    def snapshot(self) -> dict[str, Any]:
        """Everything but the history ring, as JSON-ready data (``interlock sim truth --json``)."""
        with self._lock:
            clock = self.now()
            rings = [*self._samples.values(), self._changes]
            oldest = min((ring[0].monotonic for ring in rings if ring), default=None)
            return {
                "clock": clock.as_dict(),
                "nets": {net: record.as_dict() for net, record in self._nets.items()},
                "instruments": {
                    name: {"commands": list(log), "dropped": self._dropped.get(name, 0)}
                    for name, log in self._commands.items()
                },
                "relays": [dict(entry) for entry in self._relays],
                "events": [dict(entry) for entry in self._events],
                "supplies": {
                    name: {str(ch): dict(s) for ch, s in sorted(channels.items())}
                    for name, channels in self._supplies.items()
                },
                "history": {
                    "seconds": self.history_seconds,
                    "sample_period": SAMPLE_PERIOD,
                    "oldest": oldest,
                },
            }


def _shown(name: str, value: Any) -> str:
    if isinstance(value, bool):
        if name.endswith("tripped"):
            return "yes" if value else "no"
        return "on" if value else "off"
    if isinstance(value, int | float):
        return f"{value:g} {_UNITS.get(name, '')}".rstrip()
    return str(value)


_UNITS = {"setpoint": "V", "ovp": "V", "current_limit": "A"}
