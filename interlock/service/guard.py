"""In front of the HTTP API: no valid token, no body read; every body bounded and in time.

FastAPI reads and parses a request's body before a route's dependencies
run, so a token checked there comes after the work it should have spared
(a 300 MB body with no token was read into memory first). The
:class:`RequestGuard` is a plain ASGI middleware in front of the application:

1. the token, from the ``Authorization`` header alone: without a valid one
   the request is refused (401) at once, before a byte of its body is read;
2. the body's size: over :data:`MAX_BODY` bytes (the API's bodies are a few
   dozen) it is refused (413), from ``Content-Length`` before reading, or
   while reading a body sent in chunks;
3. the body's time: one not all there within :data:`BODY_TIMEOUT_S` is
   refused (408).

Each of these refusals closes the connection, so what the client still
sends is never read. The body, whole and bounded, is then handed to the
application, whose :class:`~.access.Access` dependencies check each route's
role. The emergency stop takes no body and reads none: whatever a caller
sends with it, the stop is made (and the connection closed after, if a
body was coming). The request's head is bounded by the server
(:mod:`.protocol`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from interlock.controller.stop_first import yield_to_stop
from interlock.errors import InterlockError
from interlock.service.access import Gatekeeper, bearer_token, peer_of
from interlock.service.schema import CLIENT_HEADER, USER_HEADER
from interlock.service.wire import AccessDenied, InvalidRequest, error_to_wire

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The largest request body taken, in bytes (the largest the API needs is well under 1 KiB).
MAX_BODY = 4096
#: A request's body must have arrived whole within this, from the end of its head.
BODY_TIMEOUT_S = 10.0
#: Routes that take no body and read none of what is sent: anyone may stop, whatever they send.
BODYLESS = frozenset({("POST", "/estop")})


class _Refused(Exception):
    def __init__(self, status: int, error: InterlockError) -> None:
        self.status = status
        self.error = error


class RequestGuard:
    """ASGI middleware: authenticate from the headers, then read the bounded body, then the app."""

    def __init__(self, app: ASGIApp, gate: Gatekeeper) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if (scope["method"], scope["path"]) not in BODYLESS:
            # Blocks the event loop while a stop is under way, deliberately: nothing it
            # would serve meanwhile matters more than the stop, which it would slow.
            yield_to_stop()
        headers = _headers(scope)
        try:
            # Every route needs at least a viewer; the route's own dependency checks more.
            self.gate.authorize(
                bearer_token(headers.get("authorization")),
                headers.get(USER_HEADER.lower()),
                headers.get(CLIENT_HEADER.lower()),
                "viewer",
                peer=peer_of(scope),
                method=str(scope["method"]),
                path=str(scope["path"])[:200],
            )
        except AccessDenied as error:
            await _refuse(send, 401, error, ((b"www-authenticate", b"Bearer"),))
            return
        if (scope["method"], scope["path"]) in BODYLESS:
            coming = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
            await self.app(scope, _replay(b"", receive), _closing(send) if coming else send)
            return
        try:
            body = await _read_body(receive, headers.get("content-length"))
        except _Refused as refused:
            await _refuse(send, refused.status, refused.error)
            return
        if body is None:
            return  # the client went away before its body was whole: nobody to answer
        await self.app(scope, _replay(body, receive), send)


def _headers(scope: Scope) -> dict[str, str]:
    """The first value of each header, as the application reads them (Starlette's Headers)."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return headers


async def _read_body(receive: Receive, content_length: str | None) -> bytes | None:
    """The whole body, if it is at most MAX_BODY bytes and arrives in time; None on a disconnect."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise _Refused(400, InvalidRequest("Content-Length is not a number")) from None
        if declared > MAX_BODY:
            raise _Refused(413, _too_large())
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > MAX_BODY:
                    raise _Refused(413, _too_large())
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        raise _Refused(
            408, InvalidRequest(f"the request's body did not arrive within {BODY_TIMEOUT_S:g} s")
        ) from None


def _too_large() -> InvalidRequest:
    return InvalidRequest(f"request body over {MAX_BODY} bytes: the API takes no bodies this large")


def _replay(body: bytes, receive: Receive) -> Receive:
    """The application's receive: the body read already, then what the server says next."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # the disconnect a streaming response listens for

    return replay


def _closing(send: Send) -> Send:
    """``send``, closing the connection after the response: a body sent is left unread."""

    async def closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {
                **message,
                "headers": [*message.get("headers", []), (b"connection", b"close")],
            }
        await send(message)

    return closing


async def _refuse(
    send: Send, status: int, error: InterlockError, extra: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    """Answer with the error and close: nothing more of this request is read."""
    content = json.dumps(error_to_wire(error)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(content)).encode()),
                (b"connection", b"close"),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})
