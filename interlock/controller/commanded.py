"""The commanded state: what the controller has told the bench to be.

The limit engine's :class:`~interlock.limits.BenchState` (setpoints, current
limits, outputs, closed relays) and, per live net, the setpoints its output
may be between while a step is under way (old and new). One owner; every
change is made under the gate, so that an exchange in flight and the state
it leaves are recorded together, and the safe state's "all off" comes after
it, never in the middle.
"""

from __future__ import annotations

from dataclasses import replace

from interlock.controller.gate import Gate
from interlock.limits import SAFE_STATE, BenchState, NetState


class Commanded:
    def __init__(self, gate: Gate) -> None:
        self._gate = gate
        self._state: BenchState = SAFE_STATE
        self._windows: dict[str, tuple[float, float]] = {}

    @property
    def state(self) -> BenchState:
        return self._state

    def net(self, name: str) -> NetState:
        return self._state.net(name)

    @property
    def live_nets(self) -> list[str]:
        return self._state.live_nets

    def set(self, state: BenchState) -> None:
        with self._gate.held():
            self._state = state

    def window(self, net: str) -> tuple[float, float]:
        """The setpoints a live net's output may be between now."""
        return self._windows.get(net, (self._state.net(net).voltage,) * 2)

    def set_window(self, net: str, low: float, high: float) -> None:
        with self._gate.held():
            self._windows[net] = (min(low, high), max(low, high))

    def drop_window(self, net: str) -> None:
        with self._gate.held():
            self._windows.pop(net, None)

    def all_off(self) -> None:
        """Every output off, every relay open: recorded before the safe state's first
        off command goes out, so the monitor, polling meanwhile, sees outputs going
        off as commanded rather than as regulation lost."""
        with self._gate.held():
            self._state = BenchState(
                nets={n: replace(s, output=False) for n, s in self._state.nets.items()},
                closed_relays=frozenset(),
            )
            self._windows.clear()
