"""The VISA transport's reads, against a scripted instrument on a loopback socket.

A reply is read through pyvisa (pyvisa-py) chunk by chunk up to the terminator,
as ``read_raw()`` reads it; a timeout, a lost connection or a reply that is not
ASCII poisons the session until it is reopened.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from interlock.drivers.visa import VisaTransport
from interlock.errors import ConnectionLost, InstrumentTimeout, ProtocolError
from interlock.journal import Journal
from tests.waiting import until

Reply = bytes | Callable[[socket.socket], None] | None


class ScriptedInstrument:
    """Answers each line it receives with the next scripted reply (None: stay silent; a
    callable sends it on the connection as it will)."""

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = list(replies)
        self.lines: list[bytes] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def resource(self) -> str:
        return f"TCPIP::127.0.0.1::{self.port}::SOCKET"

    def _serve(self) -> None:
        try:
            conn, _ = self.server.accept()
        except OSError:  # closed before anyone connected
            return
        with conn, contextlib.suppress(OSError):  # a reset by the client ends the script too
            buffer = b""
            while self.replies:
                data = conn.recv(4096)
                if not data:
                    return
                buffer += data
                while b"\n" in buffer and self.replies:
                    line, buffer = buffer.split(b"\n", 1)
                    self.lines.append(line)
                    reply = self.replies.pop(0)
                    if callable(reply):
                        reply(conn)
                    elif reply is not None:
                        conn.sendall(reply)
            # Script done: hold the connection until the client closes it.
            while conn.recv(4096):
                pass

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def journal(tmp_path) -> Iterator[Journal]:
    with Journal(tmp_path / "journal.sqlite", bench="transport-test") as journal:
        yield journal


@contextlib.contextmanager
def scripted(
    replies: list[Reply], timeout: float = 0.3
) -> Iterator[tuple[ScriptedInstrument, VisaTransport]]:
    """A transport opened on a scripted instrument; both closed afterwards."""
    instrument = ScriptedInstrument(replies)
    transport = VisaTransport("dev", instrument.resource, timeout=timeout)
    try:
        transport.open()
        yield instrument, transport
    finally:
        transport.close()
        instrument.close()


def ask(journal: Journal, transport: VisaTransport, line: str = "MEAS:VOLT? (@1)") -> str:
    return transport.exchange(journal.query_intent("dev", f"{line}\n"))


def test_a_reply_is_read_to_its_terminator(journal):
    with scripted([b"3.000\r\n", b"1;2\n"]) as (instrument, transport):
        assert ask(journal, transport) == "3.000"
        assert ask(journal, transport, "VOLT? (@1);:CURR? (@1)") == "1;2"
        assert instrument.lines == [b"MEAS:VOLT? (@1)", b"VOLT? (@1);:CURR? (@1)"]


def test_a_reply_longer_than_a_chunk_is_read_whole_without_warnings(journal):
    # pytest turns warnings into errors here: pyvisa's "max count read" warning must stay
    # silenced while the reply comes in several chunks, as read_raw() silences it.
    long_reply = b",".join(b"%d" % i for i in range(12000)) + b"\n"
    with scripted([long_reply, b"OK\n"]) as (_, transport):
        assert len(long_reply) > transport._session.chunk_size
        assert ask(journal, transport) == long_reply.decode().rstrip("\n")
        assert ask(journal, transport) == "OK"
        assert transport.is_open


def test_a_timeout_poisons_the_session(journal):
    with scripted([None, b"late\n"]) as (instrument, transport):
        with pytest.raises(InstrumentTimeout, match=r"no reply within 0\.3 s"):
            ask(journal, transport)
        assert not transport.is_open
        with pytest.raises(ConnectionLost, match="unusable after a timeout"):
            ask(journal, transport)
        assert len(instrument.lines) == 1  # nothing more went out


def test_a_reply_that_is_not_ascii_poisons_the_session(journal):
    with scripted([b"3.0\xff\n", b"3.0\n"]) as (_, transport):
        with pytest.raises(ProtocolError, match="not ASCII"):
            ask(journal, transport)
        with pytest.raises(ConnectionLost, match="unusable after garbage reply"):
            ask(journal, transport)


def test_an_intent_sent_twice_poisons_the_session(journal):
    with scripted([b"1\n"]) as (_, transport):
        intent = journal.query_intent("dev", "MEAS:VOLT? (@1)\n")
        assert transport.exchange(intent) == "1"
        with pytest.raises(ConnectionLost, match="transport error: JournalError"):
            transport.exchange(intent)
        assert not transport.is_open


def test_closing_gives_the_read_warnings_back(journal):
    with scripted([b"1\n"]) as (_, transport):
        session = transport._session
        visalib, vi = session.visalib, session.session
        assert ask(journal, transport) == "1"
        assert visalib._ignore_warning_in_session[vi]
    assert not visalib._ignore_warning_in_session[vi]
    with pytest.raises(ConnectionLost, match="not connected"):
        ask(journal, transport)


# -- a query posted now, its reply collected later (the monitor's pass) ----------------


def post(journal: Journal, transport: VisaTransport, line: str):
    return transport.post(journal.query_intent("dev", f"{line}\n"))


def test_a_posted_querys_reply_is_collected_by_its_token(journal):
    with scripted([b"1.5\n"]) as (_, transport):
        owed = post(journal, transport, "MEAS:VOLT? (@1)")
        assert transport.fileno() is not None
        assert transport.collect(owed.token) == "1.5"
        assert transport.is_open


def test_a_reply_still_owed_is_read_before_the_next_line_and_kept_for_its_query(journal):
    # Another exchange comes between the post and the collect (a client's, the safe
    # state's): it reads the owed reply first, so each reply answers its own line.
    with scripted([b"posted\n", b"asked\n"]) as (instrument, transport):
        owed = post(journal, transport, "MEAS:VOLT? (@1)")
        assert ask(journal, transport, "OUTP? (@1)") == "asked"
        assert transport.collect(owed.token) == "posted"
        assert instrument.lines == [b"MEAS:VOLT? (@1)", b"OUTP? (@1)"]


def test_a_reply_is_never_handed_to_another_posts_token(journal):
    with scripted([b"one\n", b"two\n", b"three\n"]) as (_, transport):
        first = post(journal, transport, "Q1?")
        second = post(journal, transport, "Q2?")  # reads (and keeps) the first's reply
        third = post(journal, transport, "Q3?")  # the second's is kept now, not the first's
        with pytest.raises(ProtocolError, match="not kept for it"):
            transport.collect(first.token)
        assert transport.collect(third.token) == "three"
        with pytest.raises(ProtocolError, match="not kept for it"):
            transport.collect(second.token)  # the third's read took its place


def test_a_posted_query_never_answered_times_out_from_when_it_was_posted(journal):
    # Collected long after it was posted, a reply that never comes is waited for only
    # for what is left of the timeout, not a whole timeout again (3 s).
    with scripted([None], timeout=3.0) as (_, transport):
        owed = post(journal, transport, "MEAS:VOLT? (@1)")
        time.sleep(owed.due - time.monotonic() - 0.3)
        started = time.monotonic()
        with pytest.raises(InstrumentTimeout):
            transport.collect(owed.token)
        assert time.monotonic() - started < 2.0  # about 0.3 s; a whole timeout is 3
        assert not transport.is_open


def test_an_owed_reply_that_times_out_under_another_exchange_poisons_the_session(journal):
    with scripted([None, b"late\n"]) as (instrument, transport):
        owed = post(journal, transport, "MEAS:VOLT? (@1)")
        with pytest.raises(InstrumentTimeout):
            ask(journal, transport, "OUTP? (@1)")
        assert instrument.lines == [b"MEAS:VOLT? (@1)"]  # its own line never went out
        with pytest.raises(ConnectionLost, match="unusable after a timeout"):
            transport.collect(owed.token)


def test_a_reply_read_by_another_exchange_says_so_before_it_is_collected(journal):
    with scripted([b"posted\n", b"asked\n"]) as (_, transport):
        owed = post(journal, transport, "MEAS:VOLT? (@1)")
        ask(journal, transport, "OUTP? (@1)")
        assert transport.reply_ready(owed.token)
        assert transport.collect(owed.token) == "posted"
        assert not transport.reply_ready(owed.token)


def cut_short(first: bytes, rest: bytes, release: threading.Event) -> Reply:
    """A reply that stops after ``first`` and ends with ``rest`` once ``release`` is set."""

    def send(conn: socket.socket) -> None:
        conn.sendall(first)
        if release.wait(10):
            conn.sendall(rest)

    return send


def test_a_posted_reply_is_ready_only_once_it_has_arrived_to_its_terminator(journal):
    # Ready means its collect waits for nothing: a reply cut short is not, even though
    # its first bytes are there to be read.
    release = threading.Event()
    with scripted([cut_short(b"1.2", b"34\n", release)], timeout=30) as (_, transport):
        owed = post(journal, transport, "MEAS:VOLT? (@1)")
        fileno = transport.fileno()
        assert until(lambda: bool(select.select([fileno], [], [], 0)[0]))  # begun
        assert not transport.reply_ready(owed.token)
        release.set()
        assert until(lambda: transport.reply_ready(owed.token))
        assert transport.collect(owed.token) == "1.234"
        assert not transport.reply_ready(owed.token)  # collected once


def test_a_reply_whole_in_what_pyvisa_read_ahead_is_ready(journal):
    # Two lines in one segment: pyvisa-py's read of the first keeps the second in its own
    # buffer, where the socket no longer shows it.
    with scripted([b"1\n2\n", None]) as (_, transport):
        assert ask(journal, transport) == "1"
        owed = post(journal, transport, "MEAS:VOLT? (@1)")
        assert transport.reply_ready(owed.token)
        assert transport.collect(owed.token) == "2"


def test_a_reply_owed_on_a_session_reopened_since_is_not_waited_for(journal):
    # A reconnect (the safe state's, after a lost session) opens a fresh session: the old
    # session's query is not owed on it, and its first exchange is its own.
    first = ScriptedInstrument([None])
    second = ScriptedInstrument([b"fresh\n"])
    transport = VisaTransport("dev", first.resource, timeout=3.0)
    transport.open()
    try:
        owed = post(journal, transport, "MEAS:VOLT? (@1)")
        transport.resource = second.resource
        transport.open()
        started = time.monotonic()
        assert ask(journal, transport, "OUTP? (@1)") == "fresh"
        assert time.monotonic() - started < 2.0  # not the old query's 3 s
        with pytest.raises(ProtocolError, match="not kept for it"):
            transport.collect(owed.token)
    finally:
        transport.close()
        first.close()
        second.close()


def test_asking_with_a_wrong_token_leaves_the_kept_reply_for_its_own(journal):
    with scripted([b"posted\n", b"asked\n"]) as (_, transport):
        owed = post(journal, transport, "MEAS:VOLT? (@1)")
        ask(journal, transport, "OUTP? (@1)")  # reads the posted reply first, and keeps it
        with pytest.raises(ProtocolError, match="not kept for it"):
            transport.collect(owed.token + 1)
        assert transport.collect(owed.token) == "posted"


def test_a_posted_querys_own_timeout_is_said_as_its_own(journal):
    with scripted([None]) as (_, transport):
        owed = post(journal, transport, "MEAS:VOLT? (@1)")
        with pytest.raises(InstrumentTimeout) as error:
            transport.collect(owed.token)
        assert "asked before" not in str(error.value)


def test_a_kept_reply_is_not_ready_while_another_exchange_holds_the_session(journal):
    # A client's exchange read the posted reply first and kept it, and its own reply
    # stops half way: the posted one's collect would wait for that exchange (and with
    # it every reply the monitor's pass has yet to read), so it is not ready till then.
    release = threading.Event()
    replies = [b"1.000\n", cut_short(b"OK", b"\n", release)]
    with scripted(replies, timeout=30) as (instrument, transport):
        owed = post(journal, transport, "MEAS:VOLT? (@1)")
        client = threading.Thread(target=ask, args=(journal, transport, "OUTP? (@1)"))
        client.start()
        try:
            assert until(lambda: len(instrument.lines) == 2)  # its line out: the first read
            assert not transport.reply_ready(owed.token)
        finally:
            release.set()
            client.join(30)
        assert transport.reply_ready(owed.token)
        assert transport.collect(owed.token) == "1.000"


def test_a_reply_is_not_known_whole_where_pyvisa_keeps_no_read_ahead_buffer(journal, monkeypatch):
    # A pyvisa-py that keeps what it read ahead elsewhere: a whole line on the socket
    # may not be the reply (its start may be in that other buffer): not known, not whole.
    with scripted([b"1.5\n"], timeout=30) as (_, transport):
        owed = post(journal, transport, "MEAS:VOLT? (@1)")
        assert until(lambda: transport.reply_ready(owed.token))
        monkeypatch.delattr(transport._tcp.session, "_pending_buffer")
        assert not transport.reply_ready(owed.token)
        monkeypatch.undo()
        assert transport.collect(owed.token) == "1.5"


def test_a_socket_with_a_timeout_of_its_own_is_not_looked_at(journal):
    # A peek on it would wait out its timeout, whatever MSG_DONTWAIT says.
    with scripted([b"1.5\n"], timeout=30) as (_, transport):
        owed = post(journal, transport, "MEAS:VOLT? (@1)")
        assert until(lambda: transport.reply_ready(owed.token))
        sock = transport._tcp.socket
        sock.settimeout(5.0)
        try:
            assert not transport.reply_ready(owed.token)
        finally:
            sock.settimeout(None)
        assert transport.collect(owed.token) == "1.5"
