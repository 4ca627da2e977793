"""What every simulated switch unit shares (but the RB8 board, whose firmware runs as
itself): its relays, tied to the DUT model through bench.toml's ``[relays]``.

A twin (:mod:`interlock.sim.twins`) reads its dialect's lines and calls
:meth:`SwitchRelays.set`; a relay of the unit that bench.toml names moves the
electrical model's contact at once (these units have no contact sense: the
contact is where the coil is, unless a fault welds it).
"""

from __future__ import annotations

from collections.abc import Mapping

from interlock.sim.electrical import ElectricalBench
from interlock.sim.truth import GroundTruth


class SwitchRelays:
    """``count`` relays, 1-based; ``names`` maps a channel to its relay in bench.toml."""

    def __init__(
        self,
        unit: str,
        count: int,
        names: Mapping[int, str],
        electrical: ElectricalBench,
        truth: GroundTruth,
    ) -> None:
        self.unit = unit
        self.count = count
        self.names = dict(names)
        self.electrical = electrical
        self.truth = truth
        self.closed: set[int] = set()
        self.welded: set[int] = set()  # contacts that stay closed whatever the coil

    def set(self, channel: int, closed: bool) -> None:
        if closed:
            self.closed.add(channel)
        else:
            self.closed.discard(channel)
        self._contact(channel)

    def weld(self, channel: int, on: bool) -> None:
        if on:
            self.welded.add(channel)
        else:
            self.welded.discard(channel)
        self._contact(channel)

    def _contact(self, channel: int) -> None:
        name = self.names.get(channel)
        if name is not None:
            contact = channel in self.closed or channel in self.welded
            self.electrical.set_relay(name, contact, channel, at=self.truth.now())

    def coils(self) -> list[bool]:
        return [c in self.closed for c in range(1, self.count + 1)]

    def contacts(self) -> list[bool]:
        return [c in self.closed or c in self.welded for c in range(1, self.count + 1)]
