"""The monitor: every live net polled at the configured rate, each reading put to the engine.

A pass reads the live nets of one supply in one exchange (a channel list),
journals their readings in one entry, and asks the limit engine
(:func:`~interlock.limits.measurements.check_live`) about each reading; the
first finding trips the bench. Supplies are polled side by side (each has a
session of its own), each through
:meth:`Monitor.poll_supply`, which touches nothing of another supply's; a
finding trips the bench as soon as its supply has answered, whatever the
others are doing. A pass commits the journal once, so that what it (or
anyone) staged is on disk within a monitor period.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from interlock.controller import stop_first
from interlock.controller.commanded import Commanded
from interlock.controller.gate import Gate
from interlock.controller.instruments import BenchInstruments
from interlock.controller.side_by_side import SideBySide
from interlock.controller.worker import Trip, Worker
from interlock.journal import Journal
from interlock.limits import NetState, PinnedLimits
from interlock.limits.measurements import Finding, check_live, settling

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NetReading:
    """A net's reading: what was commanded to the net when it was taken, and when."""

    voltage: float
    current: float
    at: float  # monotonic time the exchange began
    commanded: NetState


class Monitor(Worker):
    name = "monitor"

    def __init__(
        self,
        period: float,
        *,
        journal: Journal,
        instruments: BenchInstruments,
        commanded: Commanded,
        gate: Gate,
        limits: Callable[[], PinnedLimits],
        clock: Callable[[], float],
        trip: Trip,
        on_trip_failed: Callable[[str], None],
    ) -> None:
        super().__init__(period, trip, on_trip_failed)
        self._journal = journal
        self._instruments = instruments
        self._commanded = commanded
        self._gate = gate
        self._limits = limits
        self._clock = clock
        self.passes = 0
        self._side_by_side = SideBySide("interlock-monitor", len(instruments.supplies))
        # Per net: the last reading, for status.
        self._readings: dict[str, NetReading] = {}

    def note_reading(self, net: str, reading: NetReading) -> None:
        self._readings[net] = reading

    def reading(self, net: str) -> NetReading | None:
        """The net's last reading, by this monitor or by a client's measure."""
        return self._readings.get(net)

    def once(self) -> None:
        stop_first.yield_to_stop()  # a pass begun now would only slow the stop
        journal = self._journal
        if self._gate.cause is None and self._commanded.live_nets:
            self.poll_live_nets()
            self.passes += 1
            # One commit per pass at most: what the pass (or anyone) staged is on
            # disk within a monitor period, and what is held in memory stays bounded.
            journal.flush()
            return
        # Nothing live: what a client staged (readbacks, measurements) goes to disk with
        # its next command; written here only once it has waited a whole period, so a
        # client commanding back to back never waits behind this thread's fsync.
        since = journal.staged_since()
        if since is not None and journal.clock.monotonic() - since >= self.period:
            journal.flush()

    def stop(self) -> None:
        super().stop()
        self._side_by_side.close()

    def poll_live_nets(self) -> None:
        """One pass: every live net measured in one exchange per supply."""
        limits = self._limits()
        ports = self._instruments.ports
        by_supply: dict[str, list[str]] = {}
        for net in self._commanded.live_nets:
            if net in limits.nets:
                by_supply.setdefault(ports[net].supply, []).append(net)
        supplies = list(by_supply.items())
        polls = self._side_by_side.as_done(
            lambda item: self.poll_supply(item[0], item[1], limits), supplies
        )
        for found in polls:
            if found is not None:
                net, finding = found
                self._trip_bench("monitor", f"{net}: {finding.problem}", finding=finding)
                return

    def poll_supply(
        self, supply: str, nets: list[str], limits: PinnedLimits
    ) -> tuple[str, Finding] | None:
        """Read ``nets`` of one supply and ask the engine about each: the first finding."""
        ports = self._instruments.ports
        channels = [ports[n].channel for n in nets]
        before = {n: self._commanded.window(n) for n in nets}
        taken, was = self._clock(), {n: self._commanded.net(n) for n in nets}
        readings = self._instruments.supplies[supply].poll(channels)
        # Every net's reading recorded before any is judged, in one entry for the supply:
        # an entry per net cost the pass more than the engine's checks of them all.
        read = list(zip(nets, readings, strict=True))
        values = {net: {"voltage": r.volts, "current": r.amps} for net, r in read}
        self._journal.measurements(supply, values, durable=False)
        for net, reading in read:
            volts, amps = reading.volts, reading.amps
            # The setpoints the output may have been at while measured: a step may have
            # happened meanwhile.
            after = self._commanded.window(net)
            window = (min(before[net][0], after[0]), max(before[net][1], after[1]))
            self.note_reading(net, NetReading(volts, amps, taken, was[net]))
            now = self._commanded.net(net)
            if not now.output:
                continue  # turned off while we were measuring
            if now.on_at != was[net].on_at:
                continue  # turned off and on again while we were measuring: the next pass judges it
            finding = check_live(
                limits,
                net,
                volts,
                amps,
                tripped=reading.tripped,
                protected=reading.protected,
                window=window,
                settling=settling(limits, self._commanded.state, net, self._clock()),
            )
            if finding is not None:
                return net, finding
        return None
