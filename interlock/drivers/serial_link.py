"""A raw serial line (pyserial) that writes only journaled commands.

For instruments that speak over a serial port without VISA's framing: no
terminator either way (Korad's ``VSET1:05.00``), replies of a fixed width or
ended by silence, and a minimum gap between commands that the instrument
needs (a line sent too soon is dropped by the instrument, and every later
reply answers the wrong question). The gap is kept here, for every line,
answered or not, on ``time.monotonic``.

As with :class:`~interlock.drivers.visa.VisaTransport`, a timeout, a short
reply or a lost port poisons the link: a late reply could be read as the
answer to the next query, so every later call raises ConnectionLost until
the link is reopened.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import serial

from interlock.dialects.model import Link
from interlock.errors import ConnectionLost, InstrumentError, InstrumentTimeout, ProtocolError
from interlock.journal import DurableIntent, JournaledWriter
from interlock.posted import NOT_KEPT, Owed, OwedReplies, said_as_earlier

log = logging.getLogger(__name__)

_PARITY = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}
# The longest reply read from a line that has no framing of its own.
MAX_REPLY = 256


class SerialLink:
    def __init__(self, name: str, port: str, link: Link, *, timeout: float) -> None:
        self.name = name
        self.resource = port
        self.link = link
        self.timeout = timeout
        self._port: serial.Serial | None = None
        self._writer: JournaledWriter | None = None
        self._trailing = 0  # bytes the last query's reply may be followed by (its habit)
        self._broken: str | None = None
        self._lock = threading.Lock()
        self._ready_at = 0.0  # monotonic time the next line may go out
        self._replies = OwedReplies()  # a posted query's reply, by its token

    def open(self) -> None:
        self.close()
        link = self.link
        try:
            port = serial.Serial(
                self.resource,
                link.baud,
                bytesize=link.data_bits,
                parity=_PARITY[link.parity],
                stopbits=link.stop_bits,
                rtscts=link.flow == "rts-cts",
                dsrdtr=link.flow == "dtr-dsr",
                xonxoff=link.flow == "xon-xoff",
                timeout=self.timeout,
                write_timeout=self.timeout,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ConnectionLost(self.name, f"cannot open {self.resource}: {exc}") from exc
        with contextlib.suppress(serial.SerialException, OSError):
            port.reset_input_buffer()
        with self._lock:  # a reply owed on the old port is not this one's
            self._port = port
            self._writer = JournaledWriter(self.name, port.write)
            self._broken = None
            self._replies.forget()
        # What an earlier host sent last may still be in the instrument's gap.
        self._ready_at = time.monotonic() + link.min_gap

    def close(self) -> None:
        port, self._port, self._writer = self._port, None, None
        if port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                port.close()

    @property
    def is_open(self) -> bool:
        return self._port is not None and self._broken is None

    def send(self, intent: DurableIntent) -> None:
        with self._lock:
            self._usable()
            self._read_owed()
            self._write(intent)
            self._ready_at = time.monotonic() + self.link.min_gap + self.link.after_set

    def send_off(self, data: bytes) -> None:
        """Write an off-only line the journal took with ``safe_off_record`` (or flagged
        for its next commit): failing safe comes before journaling."""
        with self._lock:
            self._usable()
            self._read_owed()
            self.wait_gap()
            try:
                self._port.write(data)  # type: ignore[union-attr]
            except (serial.SerialException, OSError) as exc:
                self._broken = "a lost port"
                raise ConnectionLost(self.name, f"connection lost: {exc}") from exc
            self._ready_at = time.monotonic() + self.link.min_gap + self.link.after_set

    def exchange(self, intent: DurableIntent, width: int | None = None, trailing: int = 0) -> str:
        """Send a query; its reply of ``width`` bytes, or up to the terminator or silence
        (and then up to ``trailing`` bytes more, dropped before the next line)."""
        with self._lock:
            self._usable()
            self._read_owed()
            self._write(intent, trailing)
            raw = self._reply(width)
        return raw.decode("latin-1").rstrip("\r\n")  # latin-1 decodes any byte

    def post(self, intent: DurableIntent, width: int | None = None, trailing: int = 0) -> Owed:
        """Send a query and leave its reply (of ``width`` bytes) owed, for :meth:`collect`."""
        with self._lock:
            self._usable()
            self._read_owed()
            self._write(intent, trailing)
            return self._replies.owe(width, self.timeout, self.fileno())

    def collect(self, token: int) -> str:
        """The reply to the posted query ``token`` (read now, or already by another
        exchange before its own line)."""
        with self._lock:
            if self._replies.is_owed(token):
                self._usable()
                self._read_owed(own=True)
            raw = self._replies.take(token)
            if raw is None:
                self._usable()  # a link that died reading it says so
                raise ProtocolError(self.name, NOT_KEPT)
        return raw.decode("latin-1").rstrip("\r\n")

    def reply_ready(self, token: int) -> bool:
        """Whether the posted query ``token``'s reply is in hand whole, so that
        :meth:`collect` waits for nothing: read already (by another exchange, before its
        own line), or, framed by its width, arrived to its last byte. A reply ended by a
        terminator or by silence cannot be looked at before it is read: not known, so
        not whole. Asks nothing and takes no lock. Never while another exchange holds
        the link: collect would wait for it (one that begins just after this looked
        still makes collect wait, as for any exchange)."""
        if self._lock.locked():
            return False
        replies = self._replies
        if replies.has_reply(token):
            return True
        width, port = replies.owed_width(token), self._port
        if width is None or port is None:
            return False
        try:
            return port.in_waiting >= width
        except (serial.SerialException, OSError, TypeError):  # closed meanwhile
            return False

    def fileno(self) -> int | None:
        """The port's descriptor a reply arrives on, for waiting on several links at once."""
        try:
            return self._port.fileno() if self._port is not None else None
        except (AttributeError, OSError, serial.SerialException):
            return None

    def _read_owed(self, *, own: bool = False) -> None:
        """Read a posted query's reply before the link's next line (or for its own
        collect: ``own``), and keep it."""
        owed = self._replies.take_owed()
        if owed is None:
            return
        token, width, due = owed
        # Asked a while ago: wait only for what is left of its timeout.
        try:
            self._replies.keep(token, self._reply(width, max(0.001, due - time.monotonic())))
        except InstrumentError as error:
            if own:
                raise
            raise said_as_earlier(error) from error

    def _reply(self, width: int | None, timeout: float | None = None) -> bytes:
        try:
            return self._read(width, self.timeout if timeout is None else timeout)
        except InstrumentError:
            raise
        except (serial.SerialException, OSError) as exc:
            self._broken = "a lost port"
            raise ConnectionLost(self.name, f"connection lost: {exc}") from exc
        finally:
            self._ready_at = time.monotonic() + self.link.min_gap

    def wait_gap(self) -> None:
        """Wait until the link's next line may go out (its gap). Takes no lock: a caller
        holding nothing may wait it out too (a poll between its lines)."""
        wait = self._ready_at - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def _write(self, intent: DurableIntent, trailing: int = 0) -> None:
        self.wait_gap()
        self._drop_unasked()
        self._trailing = trailing
        try:
            assert self._writer is not None
            self._writer.send(intent)
            self._port.flush()  # type: ignore[union-attr]
        except InstrumentError:
            raise
        except serial.SerialTimeoutException as exc:
            self._broken = "a write timeout"
            raise InstrumentTimeout(self.name, "write timed out") from exc
        except (serial.SerialException, OSError) as exc:
            self._broken = "a lost port"
            raise ConnectionLost(self.name, f"connection lost: {exc}") from exc

    def _drop_unasked(self) -> None:
        """Drop what came after the last reply, answering nothing asked: read as the next
        reply's first bytes, it would shift every reply after it (a Korad's sixth byte
        after ISET1?, which libsigrok reads and drops too). Once the gap has passed it
        has arrived; and every reply owed has been read by then."""
        port = self._port
        try:
            waiting = port.in_waiting  # type: ignore[union-attr]
            stray = port.read(waiting) if waiting else b""  # type: ignore[union-attr]
        except (serial.SerialException, OSError):
            return  # the line's own write says what became of the port
        if stray:
            # Up to the last query's trailing bytes are the instrument's habit, not news.
            level = logging.DEBUG if len(stray) <= self._trailing else logging.WARNING
            log.log(
                level,
                "%s: %d byte(s) that answer nothing asked dropped before the next line: %r",
                self.name,
                len(stray),
                stray[:32],
            )

    def _read(self, width: int | None, timeout: float) -> bytes:
        port = self._port
        assert port is not None
        link = self.link
        # A reply framed by silence, once begun, is read to its end within the whole
        # timeout: a shorter wait (for an owed reply) would cut it short.
        deadline = time.monotonic() + max(timeout, self.timeout)
        if width is not None:
            port.timeout = timeout
            data = port.read(width)
            if len(data) < width:
                self._broken = "a short reply"
                raise InstrumentTimeout(
                    self.name, f"{len(data)} of {width} bytes within {self.timeout:g} s"
                )
            return data
        if link.framing == "line":
            terminator = link.read_termination.encode("latin-1")
            port.timeout = timeout
            data = port.read_until(terminator, MAX_REPLY)
            if not data.endswith(terminator):
                self._broken = "a timeout"
                raise InstrumentTimeout(self.name, f"no reply within {self.timeout:g} s")
            return data[: -len(terminator)]
        # Framed by silence (or a fixed-framed reply of no set width, such as an
        # identity): the first byte within the timeout, then until the line is idle.
        port.timeout = timeout
        first = port.read(1)
        if not first:
            self._broken = "a timeout"
            raise InstrumentTimeout(self.name, f"no reply within {self.timeout:g} s")
        parts = [first]
        port.timeout = link.idle
        size = 1
        while size < MAX_REPLY and time.monotonic() < deadline:
            more = port.read(MAX_REPLY - size)
            if not more:
                break
            parts.append(more)
            size += len(more)
        return b"".join(parts)

    def _usable(self) -> None:
        if self._port is None:
            raise ConnectionLost(self.name, "not connected")
        if self._broken is not None:
            raise ConnectionLost(self.name, f"link unusable after {self._broken}; reconnect")
