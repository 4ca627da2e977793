"""The monitor: every live net polled at the configured rate, each reading put to the engine.

A pass reads the live nets of one supply in one exchange (a channel list),
journals their readings in one entry, and asks the limit engine
(:func:`~interlock.limits.measurements.check_live`) about each reading; the
first finding trips the bench. Supplies are polled side by side (each has a
session of its own): the pass asks every supply first, then takes the replies
as they arrive (:meth:`~interlock.controller.side_by_side.SideBySide.as_answered`):
a reply on a socket or a port is watched from this thread, with no thread
hand-over per supply; a supply whose poll takes several exchanges (or whose
session's descriptor is not at hand) is asked in a thread of its own. A finding
trips the bench as soon as its supply's reply is in, whatever the others are
doing (a reply that begins to arrive and stops is read to its end in a thread,
where it holds up only itself); a reply still owed is read by
the next exchange on its session (the safe state's, say) before its own line
goes out.
A pass commits the journal once, so that what it (or anyone) staged is on disk
within a monitor period.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from interlock.controller import stop_first
from interlock.controller.commanded import Commanded
from interlock.controller.gate import Gate
from interlock.controller.instruments import BenchInstruments
from interlock.controller.side_by_side import SideBySide
from interlock.controller.worker import Trip, Worker
from interlock.errors import FaultLatched, InterlockError, JournalError
from interlock.journal import Journal
from interlock.limits import NetState, PinnedLimits
from interlock.limits.measurements import Finding, check_live, settling
from interlock.posted import Posted
from interlock.protocols import Reading

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
        journal_failed: Callable[[str], object],
        on_trip_failed: Callable[[str], None],
    ) -> None:
        super().__init__(period, trip, on_trip_failed)
        self._journal = journal
        self._journal_failed = journal_failed  # a trip, unless a fault is latched already
        self._instruments = instruments
        self._commanded = commanded
        self._gate = gate
        self._limits = limits
        self._clock = clock
        self.passes = 0
        self._side_by_side = SideBySide("interlock-monitor", len(instruments.supplies))
        # Per net: the last reading, for status.
        self._readings: dict[str, NetReading] = {}
        self._flush_failed: str | None = None  # why the journal last failed, once tripped

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
            self._flush()
            return
        # Nothing live: what a client staged (readbacks, measurements) goes to disk with
        # its next command; written here only once it has waited a whole period, so a
        # client commanding back to back never waits behind this thread's fsync.
        since = journal.staged_since()
        if since is not None and journal.clock.monotonic() - since >= self.period:
            self._flush()

    def _flush(self) -> None:
        """Write what is staged. A journal that cannot be written trips the bench; once it
        is tripped (by that, or meanwhile by anything, even by a client's change failing
        on the same disk a moment before), it is no new fault: tripping again would drive
        the safe state again every period, each time staging more that the journal cannot
        take. The record waits for the next commit that succeeds (the journal itself tries
        again no sooner than FAILED_WAIT_S after a failure)."""
        try:
            self._journal.flush()
        except JournalError as error:
            # Latched after the failure, in one step with the check: a reset since is seen.
            # None: tripped already (by anyone); else tripped now, or the trip failed.
            if self._trip(str(error), self._journal_failed) is not None:
                return
            if self._flush_failed != str(error):
                self._flush_failed = str(error)
                log.error("tripped, and the journal still cannot take the record: %s", error)
        else:
            self._flush_failed = None

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
        asked = []
        for supply, nets in by_supply.items():
            if self._gate.cause is not None or stop_first.under_way():
                break  # a stop began meanwhile: a line more would only make it wait
            asked.append(self.ask_supply(supply, nets, limits))
        # Those whose line went out whole: their replies are owed until read.
        unread = [p for p in asked if p.fileno is not None]
        for answered in self._side_by_side.as_answered(asked):
            if answered in unread:
                unread.remove(answered)
            try:
                found = answered.result()
            except FaultLatched:  # tripped by someone else meanwhile
                self._record(unread)
                return
            except InterlockError as error:  # a garbled reply, a timeout, a lost session
                self._trip(str(error))  # first, as the worker would
                self._record(unread)
                return
            if found is not None:
                net, finding = found
                self._trip_bench("monitor", f"{net}: {finding.problem}", finding=finding)
                self._record(unread)
                return

    @staticmethod
    def _record(unread: list[Posted[tuple[str, Finding] | None]]) -> None:
        """After a trip: the other supplies' replies to lines already sent, read by the
        safe state's exchanges before their own lines, go on the record with this pass's
        (not judged: the bench is safe now); nothing new is asked. A session the safe
        state found dead says so. One whose reply a thread was reading (cut short) is
        taken from there, within its timeout; those asked in threads finish there."""
        for rest in unread:
            with contextlib.suppress(InterlockError):
                rest.result()

    def ask_supply(
        self, supply: str, nets: list[str], limits: PinnedLimits
    ) -> Posted[tuple[str, Finding] | None]:
        """Ask one supply for ``nets``' readings; the result reads them and asks the engine
        about each: the first finding."""
        ports = self._instruments.ports
        channels = [ports[n].channel for n in nets]
        before = {n: self._commanded.window(n) for n in nets}
        taken, was = self._clock(), {n: self._commanded.net(n) for n in nets}

        def judge(readings: list[Reading]) -> tuple[str, Finding] | None:
            return self._judge(supply, nets, readings, before, taken, was, limits)

        posted = self._instruments.supplies[supply].post_poll(channels, self._still_polling)
        return posted.then(judge)

    def _still_polling(self) -> None:
        """Between the lines of a poll of several exchanges: FaultLatched once a stop is
        under way or the bench is tripped, and the poll asks no more (its lines would
        only go before the safe state's next ones)."""
        cause = self._gate.cause
        if cause is not None or stop_first.under_way():
            why = f"tripped ({cause})" if cause is not None else "a stop under way"
            raise FaultLatched(f"{why} during the pass: the poll asks no more")

    def _judge(
        self,
        supply: str,
        nets: list[str],
        readings: list[Reading],
        before: dict[str, tuple[float, float]],
        taken: float,
        was: dict[str, NetState],
        limits: PinnedLimits,
    ) -> tuple[str, Finding] | None:
        # Every net's reading recorded before any is judged, in one entry for the supply:
        # an entry per net cost the pass more than the engine's checks of them all.
        read = list(zip(nets, readings, strict=True))
        values = {net: {"voltage": r.volts, "current": r.amps} for net, r in read}
        self._journal.measurements(supply, values, durable=False)
        judging = self._gate.cause is None  # else the bench was tripped during the pass
        for net, reading in read:
            volts, amps = reading.volts, reading.amps
            # The setpoints the output may have been at while measured: a step may have
            # happened meanwhile.
            after = self._commanded.window(net)
            window = (min(before[net][0], after[0]), max(before[net][1], after[1]))
            self.note_reading(net, NetReading(volts, amps, taken, was[net]))
            if not judging:
                continue
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
