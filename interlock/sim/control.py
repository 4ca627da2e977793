"""The simulator's control channel: line-delimited JSON on an owner-only Unix socket.

``interlock sim inject|clear|truth``, the pytest plugin's ``bench.sim`` and a
service that looks for its simulator reach a running simulator through it.
One request per line, one reply per line::

    -> {"op": "inject", "spec": "short:VBUS"}
    <- {"ok": true, "faults": ["short:VBUS"]}
    -> {"op": "history", "net": "VBUS", "seconds": 1.0}
    <- {"ok": true, "history": {"net": "VBUS", "samples": [...], "changes": [...]}}
    -> {"op": "nope"}
    <- {"ok": false, "error": "unknown op \\"nope\\" (ops: ...)"}

Ops: ``inject`` (spec), ``clear`` (spec, or none: all), ``truth``,
``history`` (net, seconds or none: the whole ring), ``faults``, ``describe``
(bench, pid, resources, control, bench file hash; ``resources`` is the same).

It is a test bench's back door: it listens only on a Unix socket, mode 0600,
in a directory it creates 0700, as the service's sockets (whoever may
connect could short a rail). A request is bounded (:data:`MAX_REQUEST`
bytes, else an error reply and the connection closes); errors come back as
one line of text, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interlock.errors import SimulatorError

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], dict[str, Any]]
MAX_REQUEST = 64 * 1024
# Longest path a Unix socket address holds on Linux (sun_path is 108 bytes, NUL included).
MAX_SOCKET_PATH = 107
# Longest a request being handled may delay shutting the channel down.
CLOSE_TIMEOUT = 10.0


def answers(path: str | Path, timeout: float = 2.0) -> bool:
    """Whether something accepts connections on the Unix socket ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(timeout)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def bind_control(path: str | Path) -> socket.socket:
    """Bind and listen on ``path``, owner-only; replace a socket file nobody answers on.

    Raises :class:`SimulatorError` if a simulator already answers there. Callers
    that may race (two starters) hold the run directory's lock around this.
    """
    path = Path(path)
    if len(os.fsencode(str(path))) > MAX_SOCKET_PATH:
        raise SimulatorError(
            f"control socket {path}: {len(os.fsencode(str(path)))} bytes long, a Unix socket "
            f"path may have at most {MAX_SOCKET_PATH}: put the bench's run directory "
            "([service] socket) on a shorter path"
        )
    private_directory(path.parent)
    if path.exists() or path.is_symlink():
        if answers(path):
            raise SimulatorError(f"a simulator already answers on {path}")
        path.unlink(missing_ok=True)  # left by a simulator that died
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o600)
        sock.listen(16)
    except OSError as exc:
        sock.close()
        raise SimulatorError(f"cannot listen on {path}: {exc}") from exc
    return sock


def private_directory(directory: Path) -> None:
    """Create ``directory`` owner-only (0700) if it does not exist."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise SimulatorError(f"cannot create {directory}: {exc}") from exc


class ControlServer:
    """Serves the control channel on a bound socket (see :func:`bind_control`).

    Runs on the bench's event loop; ``handler`` runs in a worker thread. The
    socket file is removed on close (this server bound it, or was handed it).
    """

    def __init__(self, handler: Handler, sock: socket.socket) -> None:
        self.handler = handler
        self._sock = sock
        self.path = Path(sock.getsockname())
        # Remove at close only the file this socket is bound to, never a successor's.
        self._inode = _inode(self.path)
        self._server: asyncio.Server | None = None
        self._again: list[asyncio.Server] = []  # the socket bound again after its file went
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    @property
    def address(self) -> str:
        return str(self.path)

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(
            self._serve, sock=self._sock, limit=MAX_REQUEST
        )

    def gone(self) -> bool:
        """Whether the socket file went (``rm -rf`` of the run directory): nothing there.
        Another file in its place is not gone: it is left alone."""
        return not (self.path.exists() or self.path.is_symlink())

    async def listen_again(self) -> None:
        """Bind the socket file again (it went) and serve it too, so that the tools and
        the service find the simulator there; closed with the first at close."""
        if self._server is None:
            return
        sock = bind_control(self.path)
        bound = _inode(self.path)
        try:
            again = await asyncio.start_unix_server(self._serve, sock=sock, limit=MAX_REQUEST)
        except BaseException:
            sock.close()
            _remove_if(self.path, bound)  # bound, never served: free for the next try
            raise
        if self._server is None:  # closed meanwhile
            again.close()
            _remove_if(self.path, bound)
            return
        for before in self._again:  # their files went: nobody reaches them any more
            before.close()
        self._again = [again]
        self._inode = bound

    async def close(self) -> None:
        for again in self._again:
            again.close()
        self._again = []
        server, self._server = self._server, None
        if server is not None:
            server.close()
            for writer in list(self._connections.values()):
                writer.transport.abort()
            if self._connections:
                await asyncio.wait(list(self._connections), timeout=CLOSE_TIMEOUT)
            await server.wait_closed()
        else:
            self._sock.close()
        _remove_if(self.path, self._inode)

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
                    # Longer than MAX_REQUEST: say so and hang up (the rest is not read).
                    await _reply(
                        writer, {"ok": False, "error": f"request longer than {MAX_REQUEST} bytes"}
                    )
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
                await _reply(writer, reply)
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
        except Exception as exc:
            # A bug must not end the simulator nor hand its traceback to the client.
            log.exception("control request %.200r failed", request)
            return {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}


def _remove_if(path: Path, inode: int | None) -> None:
    """Remove the file at ``path`` if it is still the one with ``inode``, never another's."""
    if inode is not None and _inode(path) == inode:
        path.unlink(missing_ok=True)


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


async def _reply(writer: asyncio.StreamWriter, reply: dict[str, Any]) -> None:
    # NaN/inf (a model driven to the edge) travel as JSON's common extension.
    writer.write(json.dumps(reply).encode() + b"\n")
    await writer.drain()


def request(path: str | Path, message: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """Send one request to a running simulator's control channel; return its reply.

    Raises :class:`SimulatorError` if it cannot be reached or refuses.
    """
    data = b""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(json.dumps(message).encode() + b"\n")
            while not data.endswith(b"\n"):
                chunk = sock.recv(1 << 16)
                if not chunk:
                    break
                data += chunk
    except (ConnectionRefusedError, FileNotFoundError) as exc:
        raise SimulatorError(
            f"no simulator answers on {path} ({exc.strerror}): start one with "
            "`interlock sim start`, or any command that starts the bench's service"
        ) from exc
    except (OSError, ValueError) as exc:
        raise SimulatorError(f"simulator control channel {path}: {exc}") from exc
    with contextlib.suppress(ValueError):
        reply = json.loads(data)
        if isinstance(reply, dict):
            if not reply.get("ok"):
                raise SimulatorError(str(reply.get("error", "refused")))
            return reply
    raise SimulatorError(f"simulator control channel {path}: garbled reply {data[:200]!r}")
