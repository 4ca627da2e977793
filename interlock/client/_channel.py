"""The command channel's client side: pooled connections, one JSON line each way.

Used by the sync face (:class:`~interlock.client.Client`) for what the channel
carries (setpoints, relays, outputs, measurements, the status); see
:mod:`interlock.service.channel` for the protocol.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import threading
from pathlib import Path
from typing import Any

from interlock.client._common import HELLO_TIMEOUT, REQUEST_TIMEOUT
from interlock.errors import InterlockError
from interlock.service.wire import (
    InvalidRequest,
    LineReader,
    LineTooLong,
    ServiceUnavailable,
    error_from_wire,
)

# Built once (json.dumps with options builds an encoder per call); NaN allowed.
_CHANNEL_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=True)
_CHANNEL_DECODER = json.JSONDecoder()


class ChannelConnection:
    """One connection of the command channel, past its hello."""

    def __init__(self, path: Path, hello: dict[str, Any], what: str) -> None:
        self.what = what
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lines = LineReader(self.sock)
        try:
            self.sock.settimeout(HELLO_TIMEOUT)
            self.sock.connect(str(path))
            self.call(hello)  # a service that answers nothing is found out in seconds
            self.sock.settimeout(REQUEST_TIMEOUT)
        except BaseException:
            self.close()
            raise

    def call(self, request: dict[str, Any]) -> Any:
        # NaN and infinities travel (as JSON's common extension) so that the interlock
        # itself refuses them, with its rule, in its journal: never dropped on the way.
        line = (_CHANNEL_ENCODER.encode(request) + "\n").encode()
        try:
            self.sock.sendall(line)
            line = self.lines.next()
            if line is None:
                raise ConnectionResetError("the service closed the connection")
            reply = _CHANNEL_DECODER.decode(line.decode("utf-8"))
        except (OSError, ValueError, LineTooLong) as exc:  # ValueError: not JSON, not UTF-8
            raise ServiceUnavailable(f"command channel of {self.what}: {exc!r}") from exc
        if isinstance(reply, dict) and "ok" in reply:
            return reply["ok"]
        if isinstance(reply, dict) and isinstance(reply.get("error"), str):
            raise error_from_wire(reply, 0)
        raise ServiceUnavailable(f"command channel of {self.what}: not a reply: {reply!r}"[:300])

    def still_open(self) -> bool:
        """Nothing waiting to be read, and no end of stream: the service kept it open.

        An idle connection the service closed (restarted, stopped, idle timeout) is
        found out here, before a request is sent on it, not after.
        """
        if self.lines.buffer:
            return False
        try:
            # select, not a MSG_DONTWAIT recv: a socket with a timeout would wait that long.
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable  # readable: end of stream, or a reply nobody asked for

    def close(self) -> None:
        self.sock.close()


class ChannelPool:
    """Command channel connections, one per concurrent caller, opened when first needed.

    A call whose reply did not come back closes its connection and raises
    ServiceUnavailable: it is never sent again (the service may have acted on it).
    An idle connection the service has closed is dropped before it is used.
    """

    def __init__(self, path: Path, hello: dict[str, Any], what: str) -> None:
        self.path, self.hello, self.what = path, hello, what
        self._idle: list[ChannelConnection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._pid = os.getpid()

    def call(self, request: dict[str, Any]) -> Any:
        connection = self._take()
        try:
            result = connection.call(request)
        except ServiceUnavailable:
            connection.close()
            raise
        except InterlockError:
            self._give_back(connection)  # an answer: the connection is in step
            raise
        except BaseException:
            connection.close()  # interrupted mid-call: its reply would answer the next one
            raise
        self._give_back(connection)
        return result

    def _take(self) -> ChannelConnection:
        with self._lock:
            if self._closed:
                raise InvalidRequest(f"this client of {self.what} is closed")
            if self._pid != os.getpid():
                # A forked child: the idle sockets are its parent's (and stay open there).
                self._idle, self._pid = [], os.getpid()
            while self._idle:
                connection = self._idle.pop()
                if connection.still_open():
                    return connection
                connection.close()
        try:
            return ChannelConnection(self.path, self.hello, self.what)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise ServiceUnavailable(
                f"no command channel for {self.what} on {self.path} ({exc.strerror}): the "
                "service is stopping, or it was started by an older version of interlock "
                "(`interlock stop` ends it; start it again)"
            ) from exc
        except OSError as exc:
            raise ServiceUnavailable(
                f"command channel of {self.what} on {self.path}: {exc}"
            ) from exc

    def _give_back(self, connection: ChannelConnection) -> None:
        with self._lock:
            if not self._closed and self._pid == os.getpid():
                self._idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            with contextlib.suppress(OSError):
                connection.close()
