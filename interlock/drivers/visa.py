"""A VISA session that writes only journaled commands.

One :class:`VisaTransport` per instrument resource. It is opened through
pyvisa (the pyvisa-py backend by default, so ``TCPIP::host::port::SOCKET``
works without a vendor library; any VISA resource string is accepted), and
its write side is a :class:`~interlock.journal.JournaledWriter`: the bytes on
the wire are always those of a :class:`~interlock.journal.DurableIntent`.

A timeout or a lost connection poisons the session: a late reply could
otherwise be read as the answer to the next query, so every later call
raises :class:`ConnectionLost` until the session is reopened (and the
instrument's identity checked again by the controller).

A query may also be *posted* (:meth:`VisaTransport.post`) and its reply
collected later (:meth:`VisaTransport.collect`): the monitor asks every
supply before it reads any reply. A reply still owed is read first by
whatever exchange comes next on the session, so each reply still answers its
own question; the reply is then kept for :meth:`~VisaTransport.collect`.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import Any, NamedTuple

import pyvisa
import pyvisa.constants
import pyvisa.errors

from interlock.errors import ConnectionLost, InstrumentError, InstrumentTimeout, ProtocolError
from interlock.journal import DurableIntent, JournaledWriter
from interlock.posted import NOT_KEPT, Owed, OwedReplies, said_as_earlier

log = logging.getLogger(__name__)

# A read returns this while the reply goes on beyond the chunk it asked for.
_MORE = pyvisa.constants.StatusCode.success_max_count_read
# The most of a reply looked at to see whether it has arrived whole: a longer one is
# read in a thread (as_answered), as one not in whole.
PEEK_BYTES = 4096
# The warnings pyvisa's read_raw() silences while it reads (see VisaTransport._read).
_READ_WARNINGS = (pyvisa.constants.StatusCode.success_device_not_present, _MORE)

_resource_managers: dict[str, pyvisa.ResourceManager] = {}
_rm_lock = threading.Lock()


def resource_manager(backend: str = "@py") -> pyvisa.ResourceManager:
    """One resource manager per backend for the whole process (opening one is slow).

    pyvisa hands every caller of ``ResourceManager(backend)`` in a process the same
    manager: one closed by anyone else in the process (a user's script, a test) is
    opened again here rather than failing every later open.
    """
    with _rm_lock:
        manager = _resource_managers.get(backend)
        if manager is None or manager._session is None:
            manager = _resource_managers[backend] = pyvisa.ResourceManager(backend)
        return manager


class VisaTransport:
    def __init__(
        self,
        name: str,
        resource: str,
        *,
        timeout: float,
        backend: str = "@py",
        read_termination: str = "\n",
        serial: dict[str, object] | None = None,
        gap: float = 0.0,
    ) -> None:
        self.name = name
        self.resource = resource
        self.timeout = timeout
        self.backend = backend
        self.read_termination = read_termination
        # An ASRL resource's line settings (baud_rate, parity, ...), as pyvisa names them.
        self.serial = serial or {}
        # Seconds between the end of one exchange and the next line: firmware that
        # answers nothing to a line sent sooner (Siglent's SPD3303X) needs them kept.
        self.gap = gap
        self._ready_at = 0.0
        self._session = None
        self._writer: JournaledWriter | None = None
        self._session_scope: contextlib.ExitStack | None = None
        self._broken: str | None = None
        self._lock = threading.Lock()
        self._replies = OwedReplies()  # a posted query's reply, by its token
        self._fileno: int | None = None
        self._tcp: _Tcp | None = None  # pyvisa-py's socket session, to look at what came

    # -- lifecycle -----------------------------------------------------------

    def open(self) -> None:
        self.close()
        try:
            session = resource_manager(self.backend).open_resource(
                self.resource,
                read_termination=self.read_termination,  # or every read waits for the timeout
                write_termination="",  # the journaled bytes carry their own terminator
                timeout=int(self.timeout * 1000),
                **self.serial,
            )
        except (pyvisa.errors.VisaIOError, OSError, ValueError) as exc:
            raise ConnectionLost(self.name, f"cannot open {self.resource}: {exc}") from exc
        tcp = _tcp(session)
        sock = tcp.socket if tcp is not None else None
        if sock is not None:
            # Without it every write followed by another write or a query stalls about
            # 40 ms (Nagle against delayed ACK); pyvisa-py does not take the attribute.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._fileno = sock.fileno() if sock is not None else None
        # What read_raw() ignores around each read, ignored once for the session's life:
        # its only reads are _read's, and its writes return neither status.
        scope = contextlib.ExitStack()
        scope.enter_context(session.ignore_warning(*_READ_WARNINGS))
        with self._lock:  # a reply owed on the old session is not this one's
            self._session = session
            self._session_scope = scope
            self._tcp = tcp
            self._writer = JournaledWriter(self.name, session.write_raw)
            self._broken = None
            self._replies.forget()
        # What an earlier host (or session) sent last may still be in the instrument's
        # gap: a service started again, or the guardian taking over, waits it out first.
        self._ready_at = max(self._ready_at, time.monotonic() + self.gap)

    def close(self) -> None:
        session, self._session, self._writer = self._session, None, None
        self._tcp = None
        scope, self._session_scope = self._session_scope, None
        if scope is not None:
            with contextlib.suppress(Exception):  # it only gives the read warnings back
                scope.close()
        if session is not None:
            try:
                session.close()
            except Exception:  # closing a dead session must not hide why it died
                log.debug("%s: error closing session", self.name, exc_info=True)

    @property
    def is_open(self) -> bool:
        return self._session is not None and self._broken is None

    # -- I/O --------------------------------------------------------------------

    def send(self, intent: DurableIntent) -> None:
        with self._lock:
            self._write(intent)

    def send_off(self, data: bytes) -> None:
        """Write an off-only line the journal took with ``safe_off_record`` (or flagged
        for its next commit): failing safe comes before journaling. Only for dialects
        whose off line the journal's own off-only check does not know."""
        with self._lock:
            self._usable()
            self._read_owed()
            self.wait_gap()
            try:
                self._session.write_raw(data)
            except Exception as exc:
                raise self._failure(exc) from exc
            finally:
                self._ready_at = time.monotonic() + self.gap

    def exchange(self, intent: DurableIntent, width: int | None = None, trailing: int = 0) -> str:
        """Send a query and return its reply line (without the terminator); VISA frames
        replies by their terminator, so ``width`` is not needed here (nor ``trailing``,
        which serial links alone drop)."""
        with self._lock:
            self._write(intent)
            try:
                raw = self._read(self._session)
            except Exception as exc:
                raise self._failure(exc) from exc
            finally:
                self._ready_at = time.monotonic() + self.gap
        return self._text(raw)

    def post(self, intent: DurableIntent, width: int | None = None, trailing: int = 0) -> Owed:
        """Send a query and leave its reply owed, for :meth:`collect`. VISA frames
        replies by their terminator, so ``width`` is not needed here (nor ``trailing``)."""
        with self._lock:
            self._write(intent)
            return self._replies.owe(width, self.timeout, self._fileno)

    def collect(self, token: int) -> str:
        """The reply to the posted query ``token`` (read now, or already by another
        exchange before its own line)."""
        with self._lock:
            if self._replies.is_owed(token):
                self._usable()
                self._read_owed(own=True)
            raw = self._replies.take(token)
            if raw is None:
                self._usable()  # a session that died reading it says so
                raise ProtocolError(self.name, NOT_KEPT)
        return self._text(raw)

    def reply_ready(self, token: int) -> bool:
        """Whether the posted query ``token``'s reply is in hand whole, so that
        :meth:`collect` waits for nothing: read already (by another exchange, before its
        own line), or arrived to its terminator. Asks nothing and takes no lock. Never
        while another exchange holds the session: collect would wait for it (one that
        begins just after this looked still makes collect wait, as for any exchange)."""
        if self._lock.locked():
            return False
        replies = self._replies
        if replies.has_reply(token):
            return True
        tcp = self._tcp
        if tcp is None or not replies.is_owed(token):
            return False
        if tcp.socket.gettimeout() is not None:
            return False  # a socket with a timeout of its own would wait out the peek
        # pyvisa-py frames a reply by the terminator's last character.
        end = self.read_termination[-1:].encode("latin-1")
        if not end:
            return False
        ahead = getattr(tcp.session, "_pending_buffer", None)  # read by an earlier read
        if not isinstance(ahead, bytearray | bytes):
            return False  # a pyvisa-py that keeps it elsewhere: not known, so not whole
        if end in ahead:
            return True
        try:
            arrived = tcp.socket.recv(PEEK_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (OSError, AttributeError):  # nothing yet, or a session closed meanwhile
            return False
        return end in arrived

    def fileno(self) -> int | None:
        """The socket a reply arrives on, for waiting on several sessions at once."""
        return self._fileno if self._session is not None else None

    def _write(self, intent: DurableIntent) -> None:
        """``intent``'s line out, once a reply still owed is read (under the lock)."""
        self._usable()
        self._read_owed()
        self.wait_gap()
        try:
            self._writer.send(intent)
        except InstrumentError:
            raise
        except Exception as exc:
            raise self._failure(exc) from exc
        finally:
            self._ready_at = time.monotonic() + self.gap

    def _read_owed(self, *, own: bool = False) -> None:
        """Read a posted query's reply before the session's next line (or for its own
        collect: ``own``), and keep it."""
        owed = self._replies.take_owed()
        if owed is None:
            return
        token, _, due = owed
        session = self._session
        try:
            left = due - time.monotonic()
            if left > 0.99 * self.timeout:  # just asked (a reply just in): as any read
                self._replies.keep(token, self._read(session))
            else:  # asked a while ago: wait only for what is left of its timeout
                session.timeout = max(1, int(left * 1000))
                try:
                    self._replies.keep(token, self._read(session))
                finally:
                    session.timeout = int(self.timeout * 1000)
        except Exception as exc:
            error = self._failure(exc)
            raise (error if own else said_as_earlier(error)) from exc
        finally:
            self._ready_at = time.monotonic() + self.gap

    def _text(self, raw: bytes) -> str:
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError as exc:
            self._broken = "garbage reply"
            raise ProtocolError(self.name, f"reply is not ASCII: {raw[:40]!r}") from exc
        return text.rstrip("\r\n")

    @staticmethod
    def _read(session) -> bytes:
        """One reply, as ``session.read_raw()`` reads it, through pyvisa's own ``read``.

        Chunks of ``chunk_size`` until one ends at the terminator (or the message
        ends); a timeout raises VisaIOError. The warnings read_raw() silences are
        silenced for the whole session (see :meth:`open`), which spares each read
        read_raw's per-call scaffolding.
        """
        read, vi, size = session.visalib.read, session.session, session.chunk_size
        chunk, status = read(vi, size)
        if status != _MORE:
            return bytes(chunk)
        parts = [chunk]
        while status == _MORE:
            chunk, status = read(vi, size)
            parts.append(chunk)
        return b"".join(parts)

    def wait_gap(self) -> None:
        """Wait until the session's next line may go out (its gap). Takes no lock: a
        caller holding nothing may wait it out too (a poll between its lines)."""
        if self.gap:
            wait = self._ready_at - time.monotonic()
            if wait > 0:
                time.sleep(wait)

    def _usable(self) -> None:
        if self._session is None:
            raise ConnectionLost(self.name, "not connected")
        if self._broken is not None:
            raise ConnectionLost(self.name, f"session unusable after {self._broken}; reconnect")

    def _failure(self, exc: Exception) -> InstrumentError:
        """What a transport exception means; any of them poisons the session."""
        if isinstance(exc, pyvisa.errors.VisaIOError):
            if exc.error_code == pyvisa.constants.StatusCode.error_timeout:
                # pyvisa-py also reports a peer that closed the socket as a timeout.
                self._broken = "a timeout"
                return InstrumentTimeout(
                    self.name, f"no reply within {self.timeout:g} s ({self.resource})"
                )
            self._broken = "an I/O error"
            return ConnectionLost(self.name, f"I/O error: {exc}")
        if isinstance(exc, OSError):  # a refused or reset TCP connection is a plain OSError
            self._broken = "a lost connection"
            return ConnectionLost(self.name, f"connection lost: {exc}")
        self._broken = "an unexpected transport error"
        return ConnectionLost(self.name, f"transport error: {exc!r}")


class _Tcp(NamedTuple):
    session: Any  # pyvisa-py's TCPIPSocketSession: what it read ahead is in its buffer
    socket: socket.socket


def _tcp(session) -> _Tcp | None:
    """A pyvisa-py socket session's own session and TCP socket (None for any other
    session): pyvisa-py does not take the VISA attribute for TCP_NODELAY, but its
    session object holds the socket, and the bytes it read beyond a reply."""
    try:
        backend_session = session.visalib.sessions[session.session]
    except (AttributeError, KeyError):
        return None
    sock = getattr(backend_session, "interface", None)
    if isinstance(sock, socket.socket) and sock.type == socket.SOCK_STREAM:
        return _Tcp(backend_session, sock)
    return None
