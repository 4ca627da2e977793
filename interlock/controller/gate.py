"""The fault latch and the actuation gate: who may still send, and why not.

Every actuating exchange holds the gate (:meth:`Gate.actuating`); a trip
latches its cause under the same gate. So once a trip has latched, no
exchange can start, and an exchange already under way finishes (and records
what it did) before the trip drives the bench safe: an operation racing an
emergency stop cannot re-energise what the stop just turned off. The first
cause latched is kept until an operator's reset clears it; the gate also says
when that first trip is over (:meth:`Gate.wait_settled`), for whoever finds the
same fault a moment later and must not drive the safe state again.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import NamedTuple

from interlock.errors import FaultLatched
from interlock.journal import Journal

# While an exchange holds the gate, its journal write waits at most this long: a trip
# waits for the gate, so a stuck journal must become a JournalError (which trips)
# rather than the journal's busy timeout.
ACTUATING_JOURNAL_WAIT_S = 2.0


class Latched(NamedTuple):
    first: bool  # this call latched the fault
    number: int  # which fault is latched now: they are counted from the start


class Gate:
    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        # Re-entrant: a procedure holding the gate may itself trip.
        self._lock = threading.RLock()
        self._cause: str | None = None
        self._latches = 0
        # Clear from the first latch until its trip has driven the bench safe.
        self._settled = threading.Event()
        self._settled.set()
        self._told: set[str] = set()  # failures on the record since the fault latched

    @property
    def cause(self) -> str | None:
        """The first fault latched, or None."""
        return self._cause

    def latch(self, cause: str) -> Latched:
        """Latch ``cause`` unless a fault is latched already."""
        with self._lock:
            first = self._cause is None
            if first:
                self._cause = cause
                self._latches += 1
                self._settled.clear()  # its trip is under way
                self._told.clear()
            return Latched(first, self._latches)

    def settled(self, number: int) -> None:
        """The trip of fault ``number`` is over (the bench driven safe, or tried). One that
        ends after a reset and a new latch says nothing of the new one's."""
        with self._lock:
            if number == self._latches:
                self._settled.set()

    def wait_settled(self, timeout: float) -> bool:
        """Wait for the trip of the fault latched to be over; False if it was not in time."""
        return self._settled.wait(timeout)

    def first_told(self, failure: str) -> bool:
        """True the first time ``failure`` is told since the fault latched: one seen each
        monitor period goes on the record once."""
        with self._lock:
            if failure in self._told:
                return False
            self._told.add(failure)
            return True

    def clear(self) -> None:
        """An operator's reset: the bench was found safe."""
        with self._lock:
            self._cause = None
            self._told.clear()

    def raise_if_latched(self) -> None:
        if self._cause is not None:
            raise FaultLatched(f"tripped: {self._cause}")

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """The gate, to change what is recorded of the bench consistently with exchanges."""
        with self._lock:
            yield

    @contextlib.contextmanager
    def actuating(self) -> Iterator[None]:
        """Hold the gate for one actuating exchange; refuse once a trip has latched."""
        with self._lock:
            self.raise_if_latched()
            with self._journal.waiting_at_most(ACTUATING_JOURNAL_WAIT_S):
                yield
