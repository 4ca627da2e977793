"""uvicorn's HTTP/1.1 protocol (h11) with a deadline on each request's head.

uvicorn bounds a request's head (request line and headers) in size, with
h11's largest incomplete event (:data:`MAX_HEAD`), but not in time: a client
that sends its head a byte at a time, or nothing at all once connected, held
its connection for ever, and enough such clients would leave nobody else a
file descriptor, the emergency stop's included. Here a request's head must
be whole within :data:`HEAD_TIMEOUT_S` of the connection, or of the previous
response on it, or the connection is closed. (A request's body has its own
deadline, :data:`~.guard.BODY_TIMEOUT_S`.)
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

#: The largest request head taken, in bytes: a longer one is answered 400 and closed.
MAX_HEAD = 16 * 1024
#: A request's head must be whole within this.
HEAD_TIMEOUT_S = 10.0


class DeadlineH11Protocol(H11Protocol):
    """H11Protocol closing a connection whose request head is not whole in time."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._await_head()

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a whole head arrived: its request is under way
            self._cancel()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self._idle():
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def _idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _await_head(self) -> None:
        self._cancel()
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_too_slow)

    def _cancel(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        # A request being served (a stream, a slow ramp) is not waiting for a head.
        if self._idle() and not self.transport.is_closing():
            self.transport.close()
