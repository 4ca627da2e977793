"""The controller's two watchers, each in its own thread.

- :class:`Monitor` polls every live net at the configured rate (one exchange
  per supply, channel lists) and trips on anything outside its envelope.
- :class:`BoardSupervisor` heartbeats the relay board, so that if this
  process dies the board's own watchdog opens every relay, and turns the
  board's reports (E-stop, its own trips, contact-sense mismatches) into
  faults.

Neither holds the controller's operation lock: they must be able to trip
while a long operation (a ramp, a settle) is in progress.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from interlock.errors import FaultLatched, InstrumentError, InstrumentTimeout, InterlockError

if TYPE_CHECKING:
    from interlock.controller.controller import Controller

log = logging.getLogger(__name__)


class _Worker:
    name = "worker"

    def __init__(self, controller: Controller, period: float) -> None:
        self.controller = controller
        self.period = period
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

    ensure_running = start

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

    def _trip(self, detail: str) -> None:
        try:
            self.controller.trip(self.name, detail)
        except Exception:
            # Even the trip failed: leave the relays to the board's watchdog.
            log.exception("%s could not trip the bench", self.name)
            self.controller.supervisor.stop_heartbeat(f"{self.name} could not trip: {detail}")

    def wake(self, *_: object) -> None:
        """Run the next pass now (e.g. the board just reported an event)."""
        self._wake.set()

    def once(self) -> None:
        raise NotImplementedError


class Monitor(_Worker):
    name = "monitor"

    def __init__(self, controller: Controller, period: float) -> None:
        super().__init__(controller, period)
        self.passes = 0

    def once(self) -> None:
        journal = self.controller.journal
        if self.controller.fault_cause is None and self.controller.commanded.live_nets:
            self.controller.poll_live_nets()
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


class BoardSupervisor(_Worker):
    name = "relay-board"

    def __init__(self, controller: Controller, period: float) -> None:
        super().__init__(controller, period)
        self._seen: set[str] = set()
        self._starved: str | None = None
        self._holds = 0
        self._holds_lock = threading.Lock()

    def clear_seen(self) -> None:
        self._seen.clear()

    def mark_seen(self, *causes: str) -> None:
        """Causes already reported elsewhere (at start-up): don't trip on them again."""
        self._seen.update(causes)

    @contextlib.contextmanager
    def withheld(self) -> Iterator[None]:
        """No heartbeat while the safe state is being driven.

        If driving it takes longer than the board's watchdog (a journal held by
        another process, an instrument that does not answer), the board opens
        every relay by itself instead of waiting for us.
        """
        with self._holds_lock:
            self._holds += 1
        try:
            yield
        finally:
            with self._holds_lock:
                self._holds -= 1

    def stop_heartbeat(self, why: str) -> None:
        """Stop feeding the board's watchdog (it will open every relay)."""
        log.error("relay board heartbeat stopped: %s", why)
        self._starved = why

    def _report(self, cause: str, detail: str) -> None:
        if cause in self._seen:
            return
        self._seen.add(cause)
        self.controller.trip(cause, detail)

    def once(self) -> None:
        board = self.controller.instruments.board
        self._drain_events(board)
        if self._starved is not None or self._holds:
            return
        try:
            state = board.heartbeat()
        except InstrumentError as error:
            self._report("relay-board", f"heartbeat failed: {error}")
            return
        if state.estop_active:
            self._report("estop", "E-stop loop open (relay board)")
        elif state.trip_cause is not None:
            self._report("relay-board", f"board tripped: {state.trip_cause}")
        if state.mismatches:
            relays = ", ".join(sorted(self.controller.instruments.relays_of(state.mismatches)))
            self._report("contact-sense", f"contacts disagree with coils: {relays}")

    def _relay_names(self, mask_text: str) -> str:
        try:
            mask = int(mask_text.split()[0], 16)
        except (ValueError, IndexError):
            return mask_text
        channels = {c for c in range(1, 33) if mask >> (c - 1) & 1}
        return ", ".join(sorted(self.controller.instruments.relays_of(channels)))

    def _drain_events(self, board) -> None:
        while True:
            try:
                event = board.next_event(timeout=0)
            except InstrumentTimeout:
                return
            if event.kind == "TRIP":
                cause = "estop" if event.detail.startswith("ESTOP") else "relay-board"
                self._report(cause, f"board event: TRIP {event.detail}")
            elif event.kind == "MISMATCH":
                self._report(
                    "contact-sense",
                    f"contacts disagree with coils: "
                    f"{self._relay_names(event.detail)} (board event)",
                )
            elif event.kind == "BOOT":
                self._report("relay-board", "board restarted: its relays were reset")

    def start(self) -> None:
        self._starved = None
        super().start()

    ensure_running = start
