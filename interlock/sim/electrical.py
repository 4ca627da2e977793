"""The bench's physical state behind one lock: relays, supply outputs, DUT loads.

This is the thread-safe facade over the pure model of :mod:`interlock.sim.dut`.
The SCPI instruments (asyncio thread), the relay board (its own thread) and
fault injection (any thread) change the state here; after every change the
operating point is solved again, supply protection gets to trip, and the
ground truth sees the result. Nothing here blocks or does I/O.

Names: a *label* is a net as wired on the bench side (``bench.toml``'s
``[wiring.VBUS]``); a *physical net* is the DUT's net that the label really
reaches. They are the same unless a miswired break-out box swaps them
(fault ``swap:VBUS,MOTOR``); ground truth is always kept per physical net.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from interlock.errors import SimulatorError
from interlock.sim.dut import OPEN, Load, Operating, Solution, Source, node_load, solve
from interlock.sim.truth import GroundTruth, Stamp

# A stray voltage (a rail back-fed from elsewhere on the DUT) holds against
# the net's own load, up to this current.
STRAY_CURRENT_LIMIT = 0.1
# Test current of the meter's resistance function (the 34461A uses 1 mA on 1 kohm).
OHMMETER_TEST_CURRENT = 1e-3


@dataclass(frozen=True)
class Route:
    """One net as wired on the bench side (the subset of config.NetWiring used here)."""

    net: str
    supply: tuple[str, int] | None  # (instrument, channel)
    power_relay: str | None
    sense_relay: str | None


@dataclass(frozen=True)
class Trip:
    """A supply's protection tripped and its output is now off. ``voltage`` and
    ``current_limit`` are what the output delivered up to the trip (for OVP the
    voltage is capped at the OVP level: the output rose that far, no further)."""

    reason: str
    voltage: float
    current_limit: float


class Supply(Protocol):
    """What the facade needs of a supply model."""

    def live_outputs(self) -> dict[int, tuple[float, float]]:
        """Channels whose output is on: channel -> (set voltage, current limit)."""
        ...

    def protect(self, channel: int, point: Operating) -> Trip | None:
        """Check protection against ``point``; on a trip, turn the output off."""
        ...

    def settings(self) -> dict[int, dict[str, float | bool]]:
        """Each channel's settings (output, setpoint, limits, protections), for the truth."""
        ...


@dataclass(frozen=True)
class MeterInput:
    """What the meter's input terminals see."""

    nets: tuple[str, ...]  # physical nets routed to the meter
    voltage: float
    resistance: float  # what an ohmmeter would read (inf: open)


class ElectricalBench:
    """Relays, supplies and DUT loads; one lock; re-solved after every change."""

    def __init__(
        self,
        routes: Iterable[Route],
        loads: Mapping[str, Load],
        truth: GroundTruth,
        lock: threading.RLock | None = None,
    ) -> None:
        self.lock = lock or threading.RLock()
        self.truth = truth
        self._routes = {route.net: route for route in routes}
        self._loads = dict(loads)
        for label in self._routes:
            self._loads.setdefault(label, OPEN)
        self._overrides: dict[str, Load] = {}
        self._swaps: list[tuple[str, str]] = []
        self._strays: dict[str, float] = {}
        self._closed: set[str] = set()
        self._supplies: dict[str, Supply] = {}
        self._solution = Solution({}, {})
        self._terminals: dict[tuple[str, int], Operating] = {}
        self._tied: tuple[str, ...] = ()

    # --- wiring --------------------------------------------------------------

    @property
    def nets(self) -> list[str]:
        return list(self._loads)

    def physical(self, label: str) -> str:
        """The DUT net that the bench-side ``label`` really reaches."""
        net = label
        for a, b in self._swaps:
            if net == a:
                net = b
            elif net == b:
                net = a
        return net

    def attach_supply(self, name: str, supply: Supply) -> None:
        with self.lock:
            self._supplies[name] = supply
            self.update()

    # --- relay contacts --------------------------------------------------------

    def set_relay(
        self, relay: str, closed: bool, channel: int = 0, at: Stamp | None = None
    ) -> None:
        """A relay's contacts moved (called by the relay board's listener)."""
        with self.lock:
            if (relay in self._closed) == closed:
                return
            if closed:
                self._closed.add(relay)
            else:
                self._closed.discard(relay)
            self.truth.relay(relay, channel, closed, at=at)
            self.update()

    def closed_relays(self) -> set[str]:
        with self.lock:
            return set(self._closed)

    # --- faults that change the DUT or its wiring ---------------------------

    def _check_net(self, net: str) -> None:
        if net not in self._loads:
            known = ", ".join(sorted(self._loads))
            raise SimulatorError(f'no net "{net}" on this bench (nets: {known})')

    def override_load(self, net: str, load: Load | None) -> None:
        """Replace a net's load (short, open, wrong DUT); None restores it."""
        with self.lock:
            self._check_net(net)
            if load is None:
                self._overrides.pop(net, None)
            else:
                self._overrides[net] = load
            self.update()

    def swap(self, a: str, b: str, swapped: bool = True) -> None:
        with self.lock:
            self._check_net(a)
            self._check_net(b)
            pair = (a, b)
            if swapped and pair not in self._swaps:
                self._swaps.append(pair)
            elif not swapped:
                self._swaps = [p for p in self._swaps if p not in (pair, (b, a))]
            self.update()

    def set_stray(self, net: str, voltage: float | None) -> None:
        """A stray voltage on a DUT net (what safe-to-mate looks for); None removes it."""
        with self.lock:
            self._check_net(net)
            if voltage is None:
                self._strays.pop(net, None)
            else:
                self._strays[net] = voltage
            self.update()

    def load(self, net: str) -> Load:
        with self.lock:
            return self._overrides.get(net, self._loads[net])

    # --- solving ---------------------------------------------------------------

    def _effective_loads(self) -> dict[str, Load]:
        return {net: self._overrides.get(net, load) for net, load in self._loads.items()}

    def _sense_nets(self) -> list[str]:
        return [
            self.physical(route.net)
            for route in self._routes.values()
            if route.sense_relay and route.sense_relay in self._closed
        ]

    def _connections(self) -> dict[tuple[str, int], str]:
        # supply output -> physical net, for power relays that are closed
        connected = {}
        for route in self._routes.values():
            if route.supply and route.power_relay in self._closed:
                connected[route.supply] = self.physical(route.net)
        return connected

    def _solve(
        self, extra: Mapping[tuple[str, int], tuple[float, float]] | None = None
    ) -> Solution:
        connected = self._connections()
        outputs = {
            (name, channel): programmed
            for name, supply in self._supplies.items()
            for channel, programmed in supply.live_outputs().items()
        }
        outputs.update(extra or {})
        sources = [
            Source(key, connected[key], voltage, limit)
            for key, (voltage, limit) in outputs.items()
            if key in connected
        ]
        sources += [
            Source(("stray", net), net, voltage, STRAY_CURRENT_LIMIT)
            for net, voltage in self._strays.items()
        ]
        sense = self._sense_nets()
        ties = [sense] if len(sense) > 1 else []
        return solve(self._effective_loads(), sources, ties)

    def _terminal_points(self, solution: Solution) -> dict[tuple[str, int], Operating]:
        connected = self._connections()
        points: dict[tuple[str, int], Operating] = {}
        for name, supply in self._supplies.items():
            live = supply.live_outputs()
            for route in self._routes.values():
                if not route.supply or route.supply[0] != name:
                    continue
                key = route.supply
                if key in solution.sources:
                    points[key] = solution.sources[key]
                elif key in connected:
                    # output off but wired through: it sees whatever the net carries
                    points[key] = Operating(solution.nets[connected[key]].voltage, 0.0)
            for channel, (voltage, _limit) in live.items():
                # on, with nothing connected: open-circuit voltage
                points.setdefault((name, channel), Operating(voltage, 0.0, "CV"))
        return points

    def update(self) -> None:
        """Solve again, let protection trip, record the truth."""
        with self.lock:
            # Each round may trip an output, which changes what the others see.
            for _ in range(4 * len(self._supplies) + 1):
                solution = self._solve()
                terminals = self._terminal_points(solution)
                tripped: dict[tuple[str, int], tuple[float, float]] = {}
                for (name, channel), point in terminals.items():
                    trip = self._supplies[name].protect(channel, point)
                    if trip is not None:
                        self.truth.event("protection-trip", f"{name} CH{channel} {trip.reason}",
                                         instrument=name, channel=channel, reason=trip.reason)
                        tripped[(name, channel)] = (trip.voltage, trip.current_limit)
                if not tripped:
                    break
                # the nets saw the outputs up to their trip level before they went off
                self.truth.observe(self._solve(extra=tripped).nets)
            self._solution = solution
            self._terminals = terminals
            # One stamp: the settings that changed, then what the nets did about it.
            stamp = self.truth.now()
            for name, supply in self._supplies.items():
                for channel, settings in supply.settings().items():
                    self.truth.supply_settings(name, channel, settings, at=stamp)
            self.truth.observe(solution.nets, at=stamp)
            tied = tuple(sorted(set(self._sense_nets())))
            if tied != self._tied:
                if len(tied) > 1:
                    # the meter's input joins these nets: power on one reaches the others
                    self.truth.event("meter-ties-nets", ",".join(tied), nets=list(tied))
                self._tied = tied

    # --- what instruments see --------------------------------------------------

    def terminal(self, supply: str, channel: int) -> Operating:
        """Voltage and current at a supply output's terminals."""
        with self.lock:
            return self._terminals.get((supply, channel), Operating(0.0, 0.0))

    def net_points(self) -> dict[str, Operating]:
        """Every physical net's operating point now."""
        with self.lock:
            return dict(self._solution.nets)

    def net_point(self, net: str) -> Operating:
        with self.lock:
            return self._solution.nets.get(net, Operating(0.0, 0.0))

    def meter_input(self) -> MeterInput:
        with self.lock:
            nets = tuple(dict.fromkeys(self._sense_nets()))
            if not nets:
                return MeterInput((), 0.0, math.inf)
            voltage = self._solution.nets.get(nets[0], Operating(0.0, 0.0)).voltage
            joined = node_load(self._effective_loads(), self._solution.node_of(nets[0]) | set(nets))
            resistance = joined.resistance
            if voltage > 0.0 and not math.isinf(resistance):
                # an ohmmeter on a live net: the net's voltage adds to the test voltage
                resistance += voltage / OHMMETER_TEST_CURRENT
            elif voltage > 0.0:
                resistance = voltage / OHMMETER_TEST_CURRENT
            return MeterInput(nets, voltage, resistance)
