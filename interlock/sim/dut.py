"""The electrical model of the DUT: pure functions, no locks, no I/O.

Each DUT net has a :class:`Load` to ground: a resistance, an active load that
sinks a constant current once powered, or both in parallel. Supply outputs
reach nets only through closed power relays, the meter only through closed
sense relays; the bench facade (:mod:`interlock.sim.electrical`) works out
which source feeds which net and calls :func:`solve` here.

Nets that are galvanically joined (two sense relays closed tie their nets
together at the meter input) form one node and are solved together. A node
with several supplies is solved the way real bench supplies behave in
parallel: the one set highest regulates (CV) while those that cannot hold
their voltage run into their current limit (CC); a supply set lower than the
node's voltage is reverse-biased and delivers nothing (bench supplies cannot
sink current).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# A dead short (a solder bridge, a pinched cable): not zero, so currents stay finite.
SHORT_RESISTANCE = 0.01


@dataclass(frozen=True)
class Load:
    """What a net draws: ``resistance`` to ground (inf = open) plus ``sink`` amperes
    drawn by an active load once the net is above zero volts."""

    resistance: float = math.inf
    sink: float = 0.0

    @property
    def conductance(self) -> float:
        return 0.0 if math.isinf(self.resistance) else 1.0 / self.resistance

    def current_at(self, voltage: float) -> float:
        if voltage <= 0.0:
            return 0.0
        return voltage * self.conductance + self.sink


OPEN = Load()


@dataclass(frozen=True)
class Source:
    """A supply output connected to a net: its programmed voltage and current limit."""

    key: object  # who this is, e.g. ("psu", 2); returned as is in the solution
    net: str  # the physical net it reaches
    voltage: float
    current_limit: float


@dataclass(frozen=True)
class Operating:
    """A voltage and a current: at a net (to ground) or at a supply's terminals."""

    voltage: float
    current: float
    regulation: str = ""  # for supplies: "CV", "CC" or "" (reverse-biased / idle)


@dataclass(frozen=True)
class Solution:
    nets: dict[str, Operating]
    sources: dict[object, Operating]
    nodes: list[frozenset[str]] = field(default_factory=list)

    def node_of(self, net: str) -> frozenset[str]:
        for node in self.nodes:
            if net in node:
                return node
        return frozenset({net})


def group_nets(nets: Iterable[str], ties: Iterable[Iterable[str]]) -> list[frozenset[str]]:
    """Union-find of nets joined by ``ties`` (each tie: a set of nets joined together)."""
    parent = {net: net for net in nets}

    def root(net: str) -> str:
        while parent[net] != net:
            parent[net] = parent[parent[net]]
            net = parent[net]
        return net

    for tie in ties:
        members = [net for net in tie if net in parent]
        for other in members[1:]:
            parent[root(other)] = root(members[0])
    groups: dict[str, set[str]] = {}
    for net in parent:
        groups.setdefault(root(net), set()).add(net)
    return [frozenset(group) for group in groups.values()]


def node_load(loads: Mapping[str, Load], node: Iterable[str]) -> Load:
    """The loads of joined nets in parallel."""
    conductance = 0.0
    sink = 0.0
    for net in node:
        load = loads.get(net, OPEN)
        conductance += load.conductance
        sink += load.sink
    return Load(math.inf if conductance == 0.0 else 1.0 / conductance, sink)


def solve_node(load: Load, sources: Sequence[Source]) -> tuple[float, dict[object, Operating]]:
    """Voltage of one node and each source's operating point on it."""
    ordered = sorted(sources, key=lambda s: s.voltage, reverse=True)
    saturated = 0.0  # current delivered by the supplies above, all in CC
    outputs: dict[object, Operating] = {}
    voltage = 0.0
    for index, source in enumerate(ordered):
        set_voltage = max(source.voltage, 0.0)
        demand = load.current_at(set_voltage)
        if demand <= saturated + source.current_limit:
            voltage = set_voltage
            outputs[source.key] = Operating(voltage, max(demand - saturated, 0.0), "CV")
            for lower in ordered[index + 1:]:
                outputs[lower.key] = Operating(voltage, 0.0, "")
            break
        outputs[source.key] = Operating(0.0, source.current_limit, "CC")  # voltage fixed below
        saturated += source.current_limit
        voltage = _voltage_at_current(load, saturated)
        following = ordered[index + 1].voltage if index + 1 < len(ordered) else -math.inf
        if voltage >= following:
            for lower in ordered[index + 1:]:
                outputs[lower.key] = Operating(voltage, 0.0, "")
            break
    return voltage, {
        key: Operating(voltage, op.current, op.regulation) for key, op in outputs.items()
    }


def _voltage_at_current(load: Load, current: float) -> float:
    # Inverse of Load.current_at: the node voltage at which the load draws `current`.
    if current <= load.sink:
        return 0.0
    if load.conductance == 0.0:
        return math.inf  # cannot happen for a CC supply: it would have held its CV
    return (current - load.sink) / load.conductance


def solve(
    loads: Mapping[str, Load],
    sources: Sequence[Source],
    ties: Iterable[Iterable[str]] = (),
) -> Solution:
    """Operating point of every net and every connected source."""
    nets = set(loads) | {source.net for source in sources}
    nodes = group_nets(sorted(nets), ties)
    net_points: dict[str, Operating] = {}
    source_points: dict[object, Operating] = {}
    for node in nodes:
        feeding = [source for source in sources if source.net in node]
        voltage, outputs = solve_node(node_load(loads, node), feeding)
        source_points.update(outputs)
        for net in node:
            load = loads.get(net, OPEN)
            net_points[net] = Operating(voltage, load.current_at(voltage))
    return Solution(net_points, source_points, nodes)
