"""A simulated instrument on a pseudo-terminal, at its dialect's framing.

For twins of serial instruments: the host opens the pty's slave path as it
would the instrument's port. Lines end at the dialect's read terminator, or,
for a dialect without one (Korad), a command ends when the line falls silent
for ``quiet`` seconds. A command that begins sooner than the dialect's gap
after the previous one ended is dropped, as the real instruments drop it
(recorded in the ground truth as such). Replies go out after the latency,
with the dialect's write terminator (none for Korad).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
import tty

from interlock.dialects.model import Link
from interlock.sim.truth import GroundTruth

log = logging.getLogger(__name__)

MAX_LINE = 1024


class SerialTwinServer:
    """Serves one twin on a pty; ``resource`` is the port a host opens."""

    def __init__(
        self,
        instrument,  # type: ignore[no-untyped-def]
        truth: GroundTruth,
        link: Link,
        latency: float = 0.001,
        *,
        gap: float | None = None,
        quiet: float = 0.02,
    ) -> None:
        self.instrument = instrument
        self.name = instrument.name
        self.truth = truth
        self.link = link
        self.latency = latency
        # The twin drops what comes sooner than half the dialect's gap: the driver keeps
        # the full gap, so only a host that ignores it loses commands.
        self.gap = link.min_gap / 2 if gap is None else gap
        self.quiet = quiet
        self.hung = False
        self.dropped = False
        self._master: int | None = None
        self._slave: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.port = ""

    @property
    def resource(self) -> str:
        """What a host opens: the pty's path, or its VISA name for a VISA serial link."""
        if self.link.kind == "visa-serial":
            return f"ASRL{self.port}::INSTR"
        return self.port

    def start(self) -> str:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name=f"twin-{self.name}", daemon=True)
        self._thread.start()
        return self.port

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None

    def _serve(self) -> None:
        master = self._master
        assert master is not None
        terminator = self.link.write_termination.encode("latin-1")
        buffer = b""
        started = 0.0  # when the command being received began
        arrived = 0.0  # when its last bytes arrived
        last_end = -1e9  # when the previous command's last bytes arrived
        while not self._stop.is_set():
            timeout = self.quiet if buffer and not terminator else 0.05
            ready, _, _ = select.select([master], [], [], timeout)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    time.sleep(0.01)
                    continue
                arrived = time.monotonic()
                if not buffer:
                    started = arrived
                buffer += chunk
                if len(buffer) > MAX_LINE:
                    buffer = b""
                if not terminator:
                    continue
                while terminator in buffer:
                    raw, buffer = buffer.split(terminator, 1)
                    self._handle(raw, started, last_end)
                    last_end = started = arrived
            elif buffer and not terminator:  # silence ends a command without a terminator
                raw, buffer = buffer, b""
                self._handle(raw, started, last_end)
                # The gap runs from the command's arrival, as the host keeps it from its
                # sending: the twin's own time answering must not count against the host.
                last_end = arrived

    def _handle(self, raw: bytes, started: float, last_end: float) -> None:
        line = raw.decode("latin-1").rstrip("\r\n")
        if self.hung:
            self.truth.command(self.name, line, note="ignored: hang")
            return
        if started - last_end < self.gap:
            self.truth.command(self.name, line, note="dropped: sent within the gap")
            return
        self.truth.command(self.name, line)
        try:
            response = self.instrument.execute(line)
        except Exception:  # a bug in a model must not take the instrument off the bench
            log.exception("%s: internal error on %r", self.name, line)
            return
        if response is not None:
            if self.latency > 0:
                time.sleep(self.latency)
            data = response.encode("latin-1", errors="replace")
            data += self.link.read_termination.encode("latin-1")
            with contextlib.suppress(OSError):
                os.write(self._master, data)  # type: ignore[arg-type]
