"""One simulated SCPI instrument on a TCP port of 127.0.0.1 (raw "SOCKET" resource).

Lines end with ``\\n`` (a trailing ``\\r`` is dropped); each is recorded in
the ground truth, then executed; a query's reply goes back after the
instrument's response latency, ``\\n``-terminated (or as its dialect ends
replies: Aim-TTi's ``\\r\\n``), like a LAN instrument on port 5025.
``TCP_NODELAY`` is set on every accepted socket so the reply is not held back
by Nagle's algorithm.

Faults live here because they are about the link, not the model:

- ``hang``: the instrument stops processing: lines are recorded (note
  ``ignored: hang``) and never executed or answered; a client times out.
- ``drop``: every open connection is aborted (RST) and the port stops
  listening, so reconnecting is refused until the fault is cleared.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from interlock.sim.instrument import ScpiInstrument
from interlock.sim.truth import GroundTruth

log = logging.getLogger(__name__)

# Longest line accepted; longer input is discarded up to its newline (-223).
MAX_LINE = 64 * 1024
_CHUNK = 4096


class InstrumentServer:
    """Serves one :class:`ScpiInstrument`; all methods run on the bench's event loop."""

    def __init__(
        self,
        instrument: ScpiInstrument,
        truth: GroundTruth,
        latency: float = 0.001,
        host: str = "127.0.0.1",
        port: int = 0,
        terminator: str = "\n",
    ) -> None:
        self.instrument = instrument
        self.terminator = terminator.encode("latin-1")
        self.name = instrument.name
        self.truth = truth
        self.latency = latency
        self.host = host
        self.port = port
        self.hung = False
        self.dropped = False
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    @property
    def resource(self) -> str:
        return f"TCPIP::{self.host}::{self.port}::SOCKET"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, reuse_address=True
        )
        # port 0 asks the OS for a free port; keep it for reconnects after a drop
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        await self._stop_listening()
        await self._abort_connections()

    async def drop(self) -> None:
        """Fault: abort every connection and refuse new ones."""
        self.dropped = True
        await self._stop_listening()
        await self._abort_connections()
        self.truth.event("connection-dropped", self.name, instrument=self.name)

    async def undrop(self) -> None:
        if self.dropped:
            self.dropped = False
            await self.start()

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def _abort_connections(self) -> None:
        # Abort, don't cancel: the handler sees the connection gone and ends by
        # itself (a cancelled client_connected_cb task makes asyncio log an error).
        for writer in list(self._connections.values()):
            writer.transport.abort()
        tasks = list(self._connections)
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = writer.get_extra_info("peername")
        self.truth.event("connected", self.name, instrument=self.name, peer=str(peer))
        try:
            await self._converse(reader, writer)
        except (ConnectionError, OSError):
            pass  # the client went away: nothing to answer
        finally:
            self._connections.pop(task, None)
            writer.transport.abort()
            self.truth.event("disconnected", self.name, instrument=self.name, peer=str(peer))

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = b""
        discarding = False
        while True:
            chunk = await reader.read(_CHUNK)
            if not chunk:
                return
            buffer += chunk
            while True:
                end = buffer.find(b"\n")
                if end < 0:
                    break
                raw, buffer = buffer[:end], buffer[end + 1:]
                if discarding:
                    discarding = False
                    continue
                await self._handle(raw, writer)
            if len(buffer) > MAX_LINE:
                buffer = b""
                discarding = True
                self.truth.command(self.name, "", note="discarded: line too long")
                with self.instrument.lock:
                    self.instrument.errors.push(-223)

    async def _handle(self, raw: bytes, writer: asyncio.StreamWriter) -> None:
        line = raw.decode("latin-1").removesuffix("\r")
        if self.hung:
            self.truth.command(self.name, line, note="ignored: hang")
            return
        self.truth.command(self.name, line)
        try:
            response = self.instrument.execute(line)
        except Exception:
            # A bug in a model must not take the instrument off the bench.
            log.exception("%s: internal error on %r", self.name, line)
            with self.instrument.lock:
                self.instrument.errors.push(-300)
            return
        if response is None:
            return
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        writer.write(response.encode("latin-1", errors="replace") + self.terminator)
        await writer.drain()
