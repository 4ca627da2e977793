"""A watcher in a thread of its own: one pass at a fixed rate, woken early on demand.

The controller's two watchers (:mod:`.monitor`, :mod:`.supervisor`) are
workers. Neither holds the controller's operation lock: they must be able to
trip while a long operation (a ramp, a settle) is in progress. A pass that
fails trips the bench; a trip that fails stops the relay board's heartbeat,
so that the board's own watchdog opens every relay.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from interlock.errors import FaultLatched, InterlockError

log = logging.getLogger(__name__)

# trip(cause, detail): latch a fault and drive the bench safe.
Trip = Callable[..., object]


class Worker:
    name = "worker"

    def __init__(self, period: float, trip: Trip, on_trip_failed: Callable[[str], None]) -> None:
        self.period = period
        self._trip_bench = trip
        self._on_trip_failed = on_trip_failed
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._wake.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"interlock-{self.name}", daemon=True
        )
        self._thread.start()

    def ensure_running(self) -> None:
        self.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self.once()
            except FaultLatched:
                pass  # already tripped by whoever latched it
            except InterlockError as error:
                self._trip(str(error))
            except Exception as error:  # never die silently: a dead watcher is no watcher
                log.exception("%s pass failed", self.name)
                self._trip(f"internal error: {error!r}")
            next_at += self.period
            delay = next_at - time.monotonic()
            if delay < 0:  # overran: start again from now rather than bursting
                next_at, delay = time.monotonic(), 0
            if self._wake.wait(delay):
                self._wake.clear()

    def _trip(self, detail: str, trip: Callable[[str], object] | None = None) -> object:
        """Trip the bench: ``trip(detail)``, or the trip with this worker's name as its
        cause. What the trip returned; False if it failed."""
        try:
            if trip is not None:
                return trip(detail)
            return self._trip_bench(self.name, detail)
        except Exception:
            # Even the trip failed: leave the relays to the board's watchdog.
            log.exception("%s could not trip the bench", self.name)
            self._on_trip_failed(f"{self.name} could not trip: {detail}")
            return False

    def wake(self, *_: object) -> None:
        """Run the next pass now (e.g. the board just reported an event)."""
        self._wake.set()

    def once(self) -> None:
        raise NotImplementedError
