"""The relay board's supervisor: its heartbeat, and its reports turned into faults.

It heartbeats the board, so that if this process dies the board's own
watchdog opens every relay, and turns what the board reports (the E-stop,
its own trips, contact-sense mismatches, a restart) into faults, each once.
While the safe state is being driven it sends no heartbeat (:meth:`withheld`):
if driving it takes longer than the board's watchdog, the board opens every
relay by itself instead of waiting for us.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from interlock.controller.worker import Trip, Worker
from interlock.errors import InstrumentError, InstrumentTimeout
from interlock.protocols import RelayBank

log = logging.getLogger(__name__)


class BoardSupervisor(Worker):
    name = "relay-board"

    def __init__(
        self,
        period: float,
        *,
        board: RelayBank,
        relays_of: Callable[[Iterable[int]], frozenset[str]],
        trip: Trip,
    ) -> None:
        super().__init__(period, trip, on_trip_failed=self.stop_heartbeat)
        self._board = board
        self._relays_of = relays_of
        self._seen: set[str] = set()
        self._starved: str | None = None
        self._holds = 0
        self._holds_lock = threading.Lock()
        self._quiet = False
        # When the last heartbeats were answered (monotonic s): a board's watchdog trip
        # says with them whether this host was late, or the link or the board.
        self._beats: tuple[float | None, float | None] = (None, None)

    def clear_seen(self) -> None:
        self._seen.clear()

    def mark_seen(self, *causes: str) -> None:
        """Causes already reported elsewhere (at start-up): don't trip on them again."""
        self._seen.update(causes)

    @contextlib.contextmanager
    def withheld(self) -> Iterator[None]:
        """No heartbeat while the safe state is being driven."""
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
        self._trip_bench(cause, detail)

    def once(self) -> None:
        board = self._board
        if self._quiet:
            # Start-up: only the heartbeat (start-up reads and reports what it finds).
            if self._starved is None and not self._holds:
                with contextlib.suppress(InstrumentError):
                    board.heartbeat()
            return
        self._drain_events(board)
        if self._starved is not None or self._holds:
            return
        try:
            state = board.heartbeat()
        except InstrumentError as error:
            self._report("relay-board", f"heartbeat failed: {error}")
            return
        self._beats = (self._beats[1], time.monotonic())
        if state.estop_active:
            self._report("estop", "E-stop loop open (relay board)")
        elif state.trip_cause is not None:
            host = self._host_side() if state.trip_cause == "WDT" else ""
            self._report("relay-board", f"board tripped: {state.trip_cause}{host}")
        if state.mismatches:
            relays = ", ".join(sorted(self._relays_of(state.mismatches)))
            self._report("contact-sense", f"contacts disagree with coils: {relays}")

    def _host_side(self) -> str:
        """This host's heartbeats as a watchdog trip is read: the last gap between two and
        the time since the last (both well under the watchdog: the host was not late)."""
        before, last = self._beats
        if last is None:
            return ""
        since = (time.monotonic() - last) * 1e3
        gap = f"{(last - before) * 1e3:.0f} ms apart, " if before is not None else ""
        return f" (this host's last heartbeats: {gap}the last {since:.0f} ms ago)"

    def _relay_names(self, mask_text: str) -> str:
        try:
            mask = int(mask_text.split()[0], 16)
        except (ValueError, IndexError):
            return mask_text
        channels = {c for c in range(1, 33) if mask >> (c - 1) & 1}
        return ", ".join(sorted(self._relays_of(channels)))

    def _drain_events(self, board: RelayBank) -> None:
        while True:
            try:
                event = board.next_event(timeout=0)
            except InstrumentTimeout:
                return
            if event.kind == "TRIP":
                cause = "estop" if event.detail.startswith("ESTOP") else "relay-board"
                host = self._host_side() if event.detail.startswith("WDT") else ""
                self._report(cause, f"board event: TRIP {event.detail}{host}")
            elif event.kind == "MISMATCH":
                self._report(
                    "contact-sense",
                    f"contacts disagree with coils: "
                    f"{self._relay_names(event.detail)} (board event)",
                )
            elif event.kind == "BOOT":
                self._report("relay-board", "board restarted: its relays were reset")

    def start(self, *, quiet: bool = False) -> None:
        """Heartbeat and report; ``quiet``: heartbeat only, until started without it.

        The board's watchdog arms at the first frame it is sent, and start-up's reads
        and checks after that may take longer than the watchdog on a busy machine: it
        is fed from the moment the board is known to be the one bench.toml names.
        """
        self._starved = None
        self._quiet = quiet
        super().start()
