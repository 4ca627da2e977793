"""A source with a fixed status and journal, for deterministic snapshots of the screen.

Only the snapshot tests use it; everything else runs against a real service.
The statuses are shaped as the service's ``GET /status`` (see
``Controller.status()`` and ``Service.status()``); the measurements are a
fixed series so the sparklines are the same at every run.
"""

from __future__ import annotations

import asyncio
import copy
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from interlock.config import load_bench
from interlock.console.model import JournalLine
from interlock.console.source import Disconnected, Status, Update

ROOT = Path(__file__).resolve().parents[2]
SHA = "5f1c0a3e9b7d2c4f8e6a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e"

_NETS = {
    "VLOGIC": ("psu CH1", 0.3, 5.5, 0.5),
    "VBUS": ("psu CH2", 0.5, 26.0, 1.0),
    "MOTOR": ("psu CH3", 1.0, 14.0, 1.5),
    "ID": (None, None, None, None),
}


def _base() -> dict[str, Any]:
    nets = {}
    for net, (supply, limit, max_v, max_i) in _NETS.items():
        nets[net] = {
            "supply": supply,
            "setpoint": 0.0 if supply else None,
            "current_limit": limit,
            "output": False,
            "max_voltage": max_v,
            "max_current": max_i,
            "measured": None,
        }
    return {
        "bench": "sim-bench-01",
        "environment": "simulation",
        "state": "safe",
        "fault": None,
        "profile": {"name": "MDB-24", "path": "profiles/mdb24.toml", "sha256": SHA},
        "run": None,
        "nets": nets,
        "relays": {f"K{i}": False for i in range(1, 9)},
        "lease": None,
        "service": {"pid": 4242, "lease_timeout": 2.0, "connect_error": None, "simulated": True},
        "you": {"role": "operator", "who": "ops", "client": "operator console pid 1"},
    }


def safe() -> list[dict[str, Any]]:
    return [_base()]


def live() -> list[dict[str, Any]]:
    """A run with VLOGIC and VBUS live, twenty monitor samples each."""
    statuses = []
    for i in range(20):
        status = _base()
        status.update(state="live", run="20261126T031500Z-7f3a")
        status["lease"] = {
            "who": "ops",
            "client": "script interlock pid 5150",
            "role": "script",
            "timeout": 2.0,
            "held_for": 12.3,
            "expires_in": 1.8,
            "watched": True,
        }
        wobble = math.sin(i / 3)
        for net, volts, amps in (("VLOGIC", 5.0, 0.151), ("VBUS", 24.0, 0.2)):
            status["nets"][net].update(
                setpoint=volts,
                output=True,
                measured={
                    "voltage": volts + 0.002 * wobble,
                    "current": amps + 0.004 * wobble,
                    "at": 100.0 + i,
                },
            )
        status["relays"].update(K1=True, K2=True)
        statuses.append(status)
    return statuses


def faulted() -> list[dict[str, Any]]:
    before = live()
    status = copy.deepcopy(before[-1])
    status.update(
        state="fault",
        fault="monitor: VBUS: 1.962 A above the live window (0.25 A): short?",
        lease=None,
    )
    for net in ("VLOGIC", "VBUS"):
        status["nets"][net]["output"] = False
    status["relays"].update(K1=False, K2=False)
    return [*before, status]


JOURNAL = [
    JournalLine(101, "2026-11-26T03:15:00.120Z", "state", "ops", "safe -> armed (arm)"),
    JournalLine(118, "2026-11-26T03:15:02.310Z", "state", "controller", "armed -> live (energise)"),
    JournalLine(
        140,
        "2026-11-26T03:15:09.004Z",
        "verdict",
        "controller",
        "REFUSED request #139 by max_voltage (profiles/mdb24.toml: nets.VBUS.max_voltage): "
        "26 V above 25 V",
    ),
]
FAULT_LINES = [
    JournalLine(
        171,
        "2026-11-26T03:15:14.552Z",
        "fault",
        "controller",
        "FAULT monitor: VBUS: 1.962 A above the live window (0.25 A): short?",
    ),
    JournalLine(172, "2026-11-26T03:15:14.610Z", "state", "controller", "live -> fault (trip)"),
]


class FixedSource:
    """Yields the given statuses, then nothing more (as a quiet, connected service)."""

    def __init__(
        self,
        statuses: list[dict[str, Any]],
        journal: list[JournalLine],
        role: str = "operator",
        bench: Path = ROOT / "bench.toml",
    ) -> None:
        self.bench = load_bench(bench)
        self.role = role
        self.statuses = statuses
        self.lines = journal
        self.sent: list[str] = []

    async def follow(self) -> AsyncIterator[Update]:
        for status in self.statuses:
            yield Status(status)
        await asyncio.Event().wait()

    async def journal_tail(self, limit: int) -> list[JournalLine]:
        return self.lines[-limit:]

    async def estop(self) -> dict[str, Any]:
        self.sent.append("estop")
        return self.statuses[-1]

    async def arm(self, confirm: str | None) -> dict[str, Any]:
        self.sent.append(f"arm {confirm}")
        return self.statuses[-1]

    async def disarm(self) -> dict[str, Any]:
        self.sent.append("disarm")
        return self.statuses[-1]

    async def reset(self) -> dict[str, Any]:
        self.sent.append("reset")
        return self.statuses[-1]

    async def close(self) -> None:
        pass


class LostSource(FixedSource):
    """Shows the given statuses, then loses the service."""

    async def follow(self) -> AsyncIterator[Update]:
        for status in self.statuses:
            yield Status(status)
        yield Disconnected("no service answers on the socket")
        await asyncio.Event().wait()
