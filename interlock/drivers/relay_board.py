"""Host driver for the interlock relay board (interlock/firmware/PROTOCOL.md) over pyserial.

One :class:`RelayBoard` owns one serial port. Each public method is one
transaction under a lock: a frame out, its reply (matched by sequence number)
back, within ``timeout``. A reader thread splits incoming lines into replies
and unsolicited events, so an event arriving while a reply is awaited is
queued on :attr:`RelayBoard.events`, never taken for the reply.

Retries, only where they are safe:

- commands that can never close a relay and are idempotent (ID, HB, GET,
  FORBID, WD, BYE) are resent with a new sequence number after a lost or garbled
  reply, up to ``retries`` times;
- SET and RESET are never resent. A lost reply is resolved by reading the
  state: if the board shows the requested result, that is the answer;
  otherwise the original problem is raised. Resending could close relays
  the board opened meanwhile, or clear a latch that tripped meanwhile.

Errors (all from :mod:`interlock.errors`, or subclasses defined here)::

    InstrumentError
    ├── InstrumentTimeout        no (matching) reply in time
    ├── ConnectionLost           port missing, closed, unplugged, not open
    ├── ProtocolError            garbage, malformed state, unexpected NAK
    │   └── RelayBoardNak            NAK CRC/SEQ/UNKNOWN/BADARG after retries
    └── RelayBoardRefused        the board understood and said no
        ├── ForbiddenCombination     NAK FORBIDDEN <mask>
        ├── BoardTripped             NAK TRIPPED <cause>
        └── EstopActive              NAK ESTOP_ACTIVE

Channels are 1-based; a bit mask has channel 1 in bit 0.

Journaled like every driver's exchanges, when given the journal: a frame that
changes anything (SET, RESET, FORBID, WD) is on disk before it goes out; one
that only opens relays (SET 0, BYE) goes out even when the journal cannot be
written (flagged, and written when it can: failing safe comes first). The
frames carry their own sequence number and CRC; the journal holds what they
mean (``SET 5``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import serial

from interlock.catalog import RELAY_WATCHDOG_MAX, RELAY_WATCHDOG_MIN
from interlock.errors import (
    ConnectionLost,
    InstrumentError,
    InstrumentTimeout,
    InvalidArgument,
    ProtocolError,
)
from interlock.journal import Journal
from interlock.protocols import Identified, RelayBank, SwitchState

log = logging.getLogger(__name__)

MAX_RELAYS = 16
WATCHDOG_MIN_S = RELAY_WATCHDOG_MIN
WATCHDOG_MAX_S = RELAY_WATCHDOG_MAX
# Longest line the host accepts from the board; longer is noise.
_MAX_LINE = 512
# Events nobody reads must not grow without bound; the oldest go first.
_MAX_QUEUED_EVENTS = 1024


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF), as the firmware computes it."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def frame(seq: int, command: str) -> bytes:
    """The wire form of ``command`` with sequence number ``seq``."""
    body = f"{seq:04X}|{command}".encode("ascii")
    return body + b"*" + f"{crc16(body):04X}".encode() + b"\n"


def unframe(line: bytes) -> str | None:
    """The text before ``*`` if ``line`` (without newline) is intact, else None."""
    if len(line) < 7 or line[-5:-4] != b"*":
        return None
    body, crc = line[:-5], line[-4:]
    try:
        text = body.decode("ascii")
        expected = int(crc.decode("ascii"), 16)
    except (UnicodeDecodeError, ValueError):
        return None
    if not text.isprintable() or crc.upper() != crc or crc16(body) != expected:
        return None
    return text


# -- results -------------------------------------------------------------------


def _channels(mask: int) -> frozenset[int]:
    return frozenset(i + 1 for i in range(MAX_RELAYS) if mask >> i & 1)


def _mask(channels: Iterable[int]) -> int:
    mask = 0
    for channel in channels:
        mask |= 1 << (channel - 1)
    return mask


@dataclass(frozen=True)
class BoardState(SwitchState):
    """What the board reports: channel sets are 1-based; it senses every contact."""

    contacts: frozenset[int]
    trip_cause: str | None
    estop_active: bool
    mismatches: frozenset[int]
    watchdog: float  # seconds
    forbidden_count: int

    @property
    def commanded_mask(self) -> int:
        return _mask(self.commanded)

    @property
    def contacts_mask(self) -> int:
        return _mask(self.contacts)

    @property
    def all_open(self) -> bool:
        """Nothing commanded closed and no contact sensed closed."""
        return not self.commanded and not self.contacts

    @classmethod
    def parse(cls, text: str) -> BoardState:
        """Parse ``R=.. C=.. T=.. E=.. M=.. W=.. F=..``; ValueError if malformed."""
        fields = {}
        for word in text.split(" "):
            key, sep, value = word.partition("=")
            if not sep or not value or key in fields:
                raise ValueError(f"bad state field {word!r}")
            fields[key] = value
        try:

            def hexmask(key: str) -> frozenset[int]:
                value = int(fields[key], 16)
                if not 0 <= value < 1 << MAX_RELAYS:
                    raise ValueError(f"{key} out of range")
                return _channels(value)

            estop = fields["E"]
            if estop not in ("0", "1"):
                raise ValueError(f"E={estop}")
            cause = fields["T"]
            return cls(
                commanded=hexmask("R"),
                contacts=hexmask("C"),
                trip_cause=None if cause == "-" else cause,
                estop_active=estop == "1",
                mismatches=hexmask("M"),
                watchdog=int(fields["W"], 10) / 1000,
                forbidden_count=int(fields["F"], 10),
            )
        except KeyError as exc:
            raise ValueError(f"state lacks {exc.args[0]}") from exc


# The board says who it is as every instrument does.
BoardIdentity = Identified


@dataclass(frozen=True)
class BoardEvent:
    """An unsolicited line: BOOT, TRIP <cause>, MISMATCH <mask>, ESTOP_CLEAR."""

    number: int
    kind: str
    detail: str
    state: BoardState
    received_at: float  # time.monotonic()


# -- errors --------------------------------------------------------------------


class RelayBoardNak(ProtocolError):
    """The board NAKed a frame as damaged, out of sequence, unknown or malformed."""

    def __init__(self, instrument: str, reason: str, detail: str, command: str) -> None:
        self.reason = reason
        self.detail = detail
        self.command = command
        super().__init__(instrument, f"{command}: NAK {reason} {detail}".rstrip())


class RelayBoardRefused(InstrumentError):
    """The board understood the command and refused it by its own rules."""

    def __init__(self, instrument: str, reason: str, detail: str, command: str) -> None:
        self.reason = reason
        self.detail = detail
        self.command = command
        super().__init__(instrument, f"{command}: refused by the board: {reason} {detail}".rstrip())


class ForbiddenCombination(RelayBoardRefused):
    """NAK FORBIDDEN: the set would close the forbidden combination ``mask``."""

    @property
    def mask(self) -> int:
        return int(self.detail, 16) if self.detail else 0


class BoardTripped(RelayBoardRefused):
    """NAK TRIPPED: a cause (WDT, ESTOP) is latched until reset_trip()."""

    @property
    def cause(self) -> str:
        return self.detail


class EstopActive(RelayBoardRefused):
    """NAK ESTOP_ACTIVE: the E-stop loop is open."""


_REFUSALS = {
    "FORBIDDEN": ForbiddenCombination,
    "TRIPPED": BoardTripped,
    "ESTOP_ACTIVE": EstopActive,
}


class _Unanswered(Exception):
    """No usable reply; says whether the board may have acted on the frame."""

    def __init__(self, error: InstrumentError) -> None:
        super().__init__(str(error))
        self.error = error

    def unresolved(self, instrument: str, message: str) -> InstrumentError:
        """The error to raise when reading the state did not settle the outcome."""
        if isinstance(self.error, InstrumentTimeout):
            return InstrumentTimeout(instrument, message)
        return ProtocolError(instrument, message)


# -- the driver ----------------------------------------------------------------


class RelayBoard:
    """The relay board on ``port`` (e.g. ``/dev/ttyACM0`` or a pty path); implements
    :class:`~interlock.protocols.RelayBank`."""

    kind: ClassVar[str] = "switch"
    implements: ClassVar[type] = RelayBank
    contact_sense = True

    def __init__(
        self,
        port: str,
        *,
        name: str = "relays",
        timeout: float = 0.5,
        retries: int = 2,
        baudrate: int = 115200,
        on_event: Callable[[BoardEvent], None] | None = None,
        journal: Journal | None = None,
    ) -> None:
        if not isinstance(timeout, int | float) or not math.isfinite(timeout) or timeout <= 0:
            raise InvalidArgument(f"Not a valid timeout: {timeout!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidArgument(f"Not a valid retry count: {retries!r}")
        self.port = port
        self.name = name
        self.timeout = float(timeout)
        self.retries = retries
        self.baudrate = baudrate
        self.on_event = on_event
        self.journal = journal
        self.events: queue.Queue[BoardEvent] = queue.Queue()
        self.relay_count: int | None = None
        self._lock = threading.RLock()
        self._serial: serial.Serial | None = None
        self._replies: queue.Queue[tuple[str, object]] = queue.Queue()
        self._reader: threading.Thread | None = None
        self._closing = threading.Event()
        self._lost: Exception | None = None
        self._seq = random.randrange(0x10000)
        self._last_event: int | None = None

    @classmethod
    def build(cls, spec: Any) -> RelayBoard:
        """The board of one bench.toml stanza (a :class:`~.registry.DriverSpec`), journaled."""
        return cls(
            spec.resource,
            name=spec.name,
            timeout=min(spec.timeout, 0.5),
            baudrate=spec.dialect.link.baud,
            journal=spec.journal,
        )

    # -- life cycle ------------------------------------------------------------

    def open(self) -> None:
        with self._lock:
            if self._serial is not None:
                return
            try:
                port = serial.Serial(
                    self.port,
                    self.baudrate,
                    timeout=0.05,
                    write_timeout=self.timeout,
                    exclusive=True,
                )
            except (serial.SerialException, OSError) as exc:
                raise ConnectionLost(self.name, f"cannot open {self.port}: {exc}") from exc
            self._serial = port
            self._lost = None
            self._last_event = None
            self._closing.clear()
            try:
                port.reset_input_buffer()
                # End whatever half line the board may hold from an earlier host.
                port.write(b"\n")
            except (serial.SerialException, OSError) as exc:
                self._close_port()
                raise ConnectionLost(self.name, f"{self.port}: {exc}") from exc
            self._reader = threading.Thread(
                target=self._read_lines, name=f"relay-board-reader-{self.name}", daemon=True
            )
            self._reader.start()

    def close(self) -> None:
        with self._lock:
            self._close_port()

    def __enter__(self) -> RelayBoard:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    # -- commands --------------------------------------------------------------

    def identify(self) -> Identified:
        """(maker, model, serial, firmware) as the board reports them."""
        text = self._transact("ID", "identify", resend_safe=True)
        fields = dict(word.partition("=")[::2] for word in text.split(" ")[1:])
        try:
            identity = Identified(fields["maker"], fields["model"], fields["serial"], fields["fw"])
            relays = int(fields["relays"], 10)
        except (KeyError, ValueError) as exc:
            raise ProtocolError(self.name, f"identify: malformed reply {text!r}") from exc
        if not text.startswith("ID ") or not 1 <= relays <= MAX_RELAYS:
            raise ProtocolError(self.name, f"identify: malformed reply {text!r}")
        self.relay_count = relays
        return identity

    def heartbeat(self) -> BoardState:
        """Tell the board the host is alive; returns its state."""
        return self._state(self._transact("HB", "heartbeat", resend_safe=True), "heartbeat")

    def get_state(self) -> BoardState:
        return self._state(self._transact("GET", "get_state", resend_safe=True), "get_state")

    def set_relays(self, closed: Iterable[int] | int, **context: Any) -> BoardState:
        """Close exactly ``closed`` (channels, or a bit mask), open the rest."""
        mask = self._to_mask(closed, "set_relays")
        if mask:
            self._record(f"SET {mask:X}", context)
        else:
            self._record_off("SET 0", context)
        with self._lock:
            try:
                text = self._transact(f"SET {mask:X}", "set_relays", resend_safe=False)
            except _Unanswered as lost:
                state = self.get_state()
                if state.commanded_mask == mask:
                    log.warning(
                        "%s: reply to SET %X lost; the board's state shows it applied",
                        self.name,
                        mask,
                    )
                    return state
                raise lost.unresolved(
                    self.name,
                    f"set_relays: {lost}; the board's state shows it not applied "
                    f"(commanded {sorted(state.commanded)}, trip {state.trip_cause})",
                ) from lost.error
        state = self._state(text, "set_relays")
        if state.commanded_mask != mask:
            raise ProtocolError(
                self.name,
                f"set_relays: acknowledged SET {mask:X} but reports {state.commanded_mask:X}",
            )
        return state

    def open_all(self, **context: Any) -> BoardState:
        """Open every relay; always allowed, even tripped or with the E-stop open."""
        return self.set_relays(0, **context)

    def release(self) -> BoardState:
        """Leave cleanly: the board opens every relay and disarms its host watchdog
        until the next frame, so the next host finds no WDT latched. Resent (with a
        new seq) after a lost reply: it never closes anything."""
        self._record_off("BYE", {"purpose": "release"})
        state = self._state(self._transact("BYE", "release", resend_safe=True), "release")
        if state.commanded:
            raise ProtocolError(
                self.name, f"release: acknowledged BYE but reports {state.commanded_mask:X}"
            )
        return state

    def reset_trip(self) -> BoardState:
        """Clear a latched cause. Never closes a relay; refused while the E-stop is open."""
        self._record("RESET", {"purpose": "reset"})
        with self._lock:
            try:
                text = self._transact("RESET", "reset_trip", resend_safe=False)
            except _Unanswered as lost:
                state = self.get_state()
                if state.trip_cause is None:
                    return state
                raise lost.unresolved(
                    self.name,
                    f"reset_trip: {lost}; the board still reports trip {state.trip_cause}",
                ) from lost.error
        return self._state(text, "reset_trip")

    def load_forbidden(self, combinations: Iterable[Iterable[int] | int]) -> BoardState:
        """Replace the table of forbidden combinations (each a channel set or bit mask)."""
        masks = [self._to_mask(c, "load_forbidden") for c in combinations]
        for mask in masks:
            if mask == 0:
                raise InvalidArgument(
                    "load_forbidden: an empty combination would forbid everything"
                )
        if len(masks) > 16:
            raise InvalidArgument(
                f"load_forbidden: the board holds 16 combinations, got {len(masks)}"
            )
        command = " ".join(["FORBID", *(f"{m:X}" for m in masks)])
        self._record(command, {"purpose": "forbidden-combinations"})
        state = self._state(
            self._transact(command, "load_forbidden", resend_safe=True), "load_forbidden"
        )
        if state.forbidden_count != len(masks):
            raise ProtocolError(
                self.name,
                f"load_forbidden: board holds {state.forbidden_count}"
                f" combinations, sent {len(masks)}",
            )
        return state

    def set_watchdog(self, seconds: float) -> BoardState:
        """Set the host-heartbeat watchdog period (50 ms..5 s, whole milliseconds)."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise InvalidArgument(f"set_watchdog: expected seconds, got {seconds!r}")
        if not math.isfinite(seconds) or not WATCHDOG_MIN_S <= seconds <= WATCHDOG_MAX_S:
            raise InvalidArgument(f"set_watchdog: must be 0.05..5 s, got {seconds!r}")
        ms = seconds * 1000
        if abs(ms - round(ms)) > 1e-6:
            raise InvalidArgument(f"set_watchdog: whole milliseconds only, got {seconds!r} s")
        self._record(f"WD {round(ms)}", {"quantity": "watchdog", "value": seconds})
        state = self._state(
            self._transact(f"WD {round(ms)}", "set_watchdog", resend_safe=True), "set_watchdog"
        )
        if round(state.watchdog * 1000) != round(ms):
            raise ProtocolError(self.name, f"set_watchdog: board reports {state.watchdog} s")
        return state

    def next_event(self, timeout: float | None = None) -> BoardEvent:
        """The oldest unread event; InstrumentTimeout if none comes in time."""
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise InstrumentTimeout(self.name, f"no event within {timeout} s") from None

    # -- internals -------------------------------------------------------------

    def _record(self, command: str, context: dict[str, Any]) -> None:
        """Journal a frame's meaning before the frame goes out (on disk)."""
        if self.journal is not None:
            self.journal.command_intent(self.name, f"{command}\n", **context)

    def _record_off(self, command: str, context: dict[str, Any]) -> None:
        """Journal a frame that only opens relays; it goes out even if this fails."""
        if self.journal is not None:
            self.journal.safe_off_record(self.name, f"{command}\n", **context)

    def _to_mask(self, closed: Iterable[int] | int, method: str) -> int:
        count = self.relay_count or MAX_RELAYS
        if isinstance(closed, bool):
            raise InvalidArgument(f"{method}: expected channels or a bit mask, got {closed!r}")
        if isinstance(closed, int):
            if not 0 <= closed < 1 << count:
                raise InvalidArgument(f"{method}: mask {closed:#x} outside {count} relays")
            return closed
        mask = 0
        for channel in closed:
            if isinstance(channel, bool) or not isinstance(channel, int):
                raise InvalidArgument(f"{method}: channel must be an int, got {channel!r}")
            if not 1 <= channel <= count:
                raise InvalidArgument(f"{method}: channel {channel} outside 1..{count}")
            mask |= 1 << (channel - 1)
        return mask

    def _state(self, text: str, method: str) -> BoardState:
        try:
            return BoardState.parse(text)
        except ValueError as exc:
            raise ProtocolError(self.name, f"{method}: malformed state {text!r}: {exc}") from exc

    def _transact(self, command: str, method: str, *, resend_safe: bool) -> str:
        """Send ``command``, return the ACK's text; raise on NAK.

        A lost or garbled reply is retried if ``resend_safe``; otherwise it
        raises :class:`_Unanswered` for the caller to resolve.
        """
        with self._lock:
            if self._serial is None:
                raise ConnectionLost(self.name, f"{method}(): port {self.port} is not open")
            if self._lost is not None:
                raise ConnectionLost(self.name, f"{method}(): {self._lost}")
            attempts = 1 + self.retries if resend_safe else 1
            problem: _Unanswered | None = None
            for attempt in range(attempts):
                if attempt:
                    log.info("%s: %s: %s; asking again", self.name, method, problem)
                try:
                    return self._exchange(command, method)
                except _Unanswered as exc:
                    problem = exc
            assert problem is not None
            if resend_safe:
                raise problem.error
            raise problem

    def _exchange(self, command: str, method: str) -> str:
        self._seq = (self._seq + 1) & 0xFFFF
        seq = f"{self._seq:04X}"
        # Replies still queued belong to exchanges already given up on.
        while True:
            try:
                kind, item = self._replies.get_nowait()
            except queue.Empty:
                break
            if kind == "lost":
                raise ConnectionLost(self.name, f"{method}: {item}")
        data = frame(self._seq, command)
        log.debug("%s >> %r", self.name, data)
        port = self._serial
        if port is None:
            raise ConnectionLost(self.name, f"{method}(): port {self.port} is not open")
        try:
            port.write(data)
        except serial.SerialTimeoutException as exc:
            raise InstrumentTimeout(self.name, f"{method}: write timed out") from exc
        except (serial.SerialException, OSError) as exc:
            raise ConnectionLost(self.name, f"{method}: {exc}") from exc
        deadline = time.monotonic() + self.timeout
        garbled = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if garbled is not None:
                    raise _Unanswered(
                        ProtocolError(self.name, f"{method}: garbled reply {garbled!r}")
                    )
                raise _Unanswered(
                    InstrumentTimeout(self.name, f"{method}: no reply within {self.timeout} s")
                )
            try:
                kind, item = self._replies.get(timeout=remaining)
            except queue.Empty:
                continue
            if kind == "lost":
                raise ConnectionLost(self.name, f"{method}: {item}")
            if kind == "garbled":
                garbled = item
                continue
            text = str(item)
            if text[:5] not in (seq + "|", "????|"):
                log.debug("%s: dropped stale reply %r", self.name, text)
                continue
            payload = text[5:]
            if payload.startswith("ACK "):
                if text[:4] == seq:
                    return payload[4:]
                continue
            if not payload.startswith("NAK "):
                garbled = text
                continue
            reason, _, detail = payload[4:].partition(" ")
            if reason in ("CRC", "SEQ"):
                # The board did not act on the frame (damaged, or a seq clash).
                raise _Unanswered(RelayBoardNak(self.name, reason, detail, command))
            if text[:4] != seq:
                continue
            refusal = _REFUSALS.get(reason)
            if refusal is not None:
                raise refusal(self.name, reason, detail, command)
            raise RelayBoardNak(self.name, reason, detail, command)

    def _read_lines(self) -> None:
        port = self._serial
        assert port is not None
        buffer = b""
        while not self._closing.is_set():
            try:
                chunk = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                if not self._closing.is_set():
                    log.warning("%s: connection lost: %s", self.name, exc)
                    self._lost = exc
                    self._replies.put(("lost", exc))
                return
            if not chunk:
                continue
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                self._route(line.rstrip(b"\r"))
            if len(buffer) > _MAX_LINE:
                self._replies.put(("garbled", buffer[:80]))
                buffer = b""

    def _route(self, line: bytes) -> None:
        if not line:
            return
        log.debug("%s << %r", self.name, line)
        text = unframe(line)
        if text is None:
            self._replies.put(("garbled", line[:80]))
            return
        if text.startswith("!"):
            self._event(text)
        else:
            self._replies.put(("line", text))

    def _event(self, text: str) -> None:
        try:
            number = int(text[1:5], 16)
            words = text[6:].split(" ")
            if text[5] != "|" or words[0] != "EVT":
                raise ValueError("not an event")
            kind = words[1]
            detail = "" if words[2].startswith("R=") else words[2]
            state = BoardState.parse(" ".join(words[3 if detail else 2 :]))
        except (ValueError, IndexError) as exc:
            log.warning("%s: malformed event %r: %s", self.name, text, exc)
            return
        if kind == "BOOT":
            # Expected once after power-up; in the middle of a session it
            # means the board reset behind the host's back.
            log.log(
                logging.INFO if self._last_event is None else logging.WARNING,
                "%s: the board has (re)booted: all relays open, forbidden table empty",
                self.name,
            )
        elif self._last_event is not None and number != (self._last_event + 1) & 0xFFFF:
            log.warning("%s: events lost between #%d and #%d", self.name, self._last_event, number)
        self._last_event = number
        event = BoardEvent(number, kind, detail, state, time.monotonic())
        if self.events.qsize() >= _MAX_QUEUED_EVENTS:
            with contextlib.suppress(queue.Empty):
                self.events.get_nowait()
        self.events.put(event)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                log.exception("%s: event callback failed", self.name)

    def _close_port(self) -> None:
        port = self._serial
        if port is None:
            return
        self._closing.set()
        with contextlib.suppress(AttributeError, serial.SerialException, OSError):
            port.cancel_read()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=2)
        self._reader = None
        with contextlib.suppress(serial.SerialException, OSError):
            port.close()
        self._serial = None
