"""The simulator's control channel: line-delimited JSON over TCP on 127.0.0.1.

``interlock sim inject|clear|truth`` reach a running simulator through it.
One request per line, one reply per line::

    -> {"op": "inject", "spec": "short:VBUS"}
    <- {"ok": true, "faults": ["short:VBUS"]}
    -> {"op": "truth"}
    <- {"ok": true, "truth": {...}}
    -> {"op": "nope"}
    <- {"ok": false, "error": "unknown op \\"nope\\""}

Ops: ``inject`` (spec), ``clear`` (spec or none: all), ``truth``, ``faults``,
``resources``. It is a test bench's back door, so it only listens on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Callable
from typing import Any

from interlock.errors import SimulatorError

Handler = Callable[[dict[str, Any]], dict[str, Any]]
MAX_REQUEST = 64 * 1024
# Longest a request being handled may delay shutting the channel down.
CLOSE_TIMEOUT = 10.0


class ControlServer:
    """Runs on the bench's event loop; ``handler`` runs in a worker thread."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=MAX_REQUEST
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            for writer in list(self._connections.values()):
                writer.transport.abort()
            if self._connections:
                await asyncio.wait(list(self._connections), timeout=CLOSE_TIMEOUT)
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    break
                if not line:
                    break
                try:
                    request = json.loads(line)
                    if not isinstance(request, dict):
                        raise ValueError("a request is a JSON object")
                except ValueError as exc:
                    reply: dict[str, Any] = {"ok": False, "error": f"bad request: {exc}"}
                else:
                    # Bench operations may block (relay board, waiting on this loop): not here.
                    reply = await loop.run_in_executor(None, self._dispatch, request)
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._connections.pop(task, None)
            writer.transport.abort()

    def _dispatch(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            return {"ok": True, **self.handler(request)}
        except SimulatorError as exc:
            return {"ok": False, "error": str(exc)}


def request(address: str, message: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """Send one request to a running simulator's control channel; return its reply.

    Raises :class:`SimulatorError` if it cannot be reached or refuses.
    """
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            sock.sendall(json.dumps(message).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(1 << 16)
                if not chunk:
                    break
                data += chunk
    except (OSError, ValueError) as exc:
        raise SimulatorError(f"simulator control channel {address}: {exc}") from exc
    with contextlib.suppress(ValueError):
        reply = json.loads(data)
        if isinstance(reply, dict):
            if not reply.get("ok"):
                raise SimulatorError(str(reply.get("error", "refused")))
            return reply
    raise SimulatorError(f"simulator control channel {address}: garbled reply {data[:200]!r}")
