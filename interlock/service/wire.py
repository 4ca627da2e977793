"""The error format on the wire, shared by the service and the client.

An error response carries ``{"error": <class name>, "message": str(error), ...}``
plus the attributes of the error (``rule``, ``where``, ``reason`` of a
:class:`~interlock.errors.LimitViolation`; ``instrument`` of an
:class:`~interlock.errors.InstrumentError`...). The client rebuilds the same
exception class, so a script catches ``LimitViolation`` whether the
controller runs in its process or behind the service.

:class:`~interlock.errors.AccessDenied`, :class:`~interlock.errors.ServiceUnavailable`
and :class:`~interlock.errors.InvalidRequest` are met only by clients of the
service; they live in the one hierarchy with the others and are re-exported
here for the service's modules.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from typing import Any

from interlock import errors
from interlock.config.bench import channel_path  # defined with the socket it derives from
from interlock.errors import AccessDenied, InterlockError, InvalidRequest, ServiceUnavailable

__all__ = [
    "CHANNEL_VERSION",
    "MAX_LINE",
    "AccessDenied",
    "InvalidRequest",
    "LineReader",
    "LineTooLong",
    "ServiceUnavailable",
    "channel_path",
    "error_from_wire",
    "error_to_wire",
    "is_loopback",
    "result_of",
]


# The attributes each error carries besides its message (see interlock.errors).
_FIELDS = (
    "rule",
    "where",
    "reason",
    "instrument",
    "expected",
    "seen",
    "file",
    "key",
    "problem",
    "seq",
    "role",
    "needs",
)

# HTTP status of each error family; the body's "error" tells the exact class.
_STATUS: list[tuple[type[InterlockError], int]] = [
    (AccessDenied, 403),
    (InvalidRequest, 422),
    (errors.InvalidArgument, 422),
    (errors.LimitViolation, 422),
    (errors.StateError, 409),
    (errors.FaultLatched, 409),
    (errors.ConfigError, 400),
    (errors.InstrumentError, 502),
    (errors.JournalError, 503),
]

_KNOWN: dict[str, type[InterlockError]] = {name: getattr(errors, name) for name in errors.__all__}


def status_of(error: InterlockError) -> int:
    for cls, status in _STATUS:
        if isinstance(error, cls):
            return status
    return 500


def error_to_wire(error: InterlockError) -> dict[str, Any]:
    # The nearest class a client knows (a service-only subclass travels as its parent).
    name = next(c.__name__ for c in type(error).__mro__ if c.__name__ in _KNOWN)
    body: dict[str, Any] = {"error": name, "message": str(error)}
    for name in _FIELDS:
        value = getattr(error, name, None)
        if isinstance(value, str | int | float | bool):
            body[name] = value
    return body


def error_from_wire(body: Any, status: int) -> InterlockError:
    """The exception an error response stands for (same class, message and attributes)."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return InterlockError(f"service answered HTTP {status}: {body!r}"[:500])
    cls = _KNOWN.get(body["error"], InterlockError)
    error = cls.__new__(cls)
    # Not cls(...): constructors format their message; the service already did.
    Exception.__init__(error, str(body.get("message", "")))
    for name in _FIELDS:
        if name in body:
            setattr(error, name, body[name])
    return error


def result_of(response: Any) -> Any:
    """The JSON body of a successful response; the error it stands for otherwise.

    ``response`` is an httpx response (sync or async client alike).
    """
    if response.is_success:
        return response.json()
    try:
        body = response.json()
    except ValueError:
        body = response.text[:500]
    raise error_from_wire(body, response.status_code)


# -- the command channel (see interlock.service.channel) ---------------------------

#: The version a client names in its hello line.
CHANNEL_VERSION = 1
#: The longest line either side accepts (bytes, newline included).
MAX_LINE = 64 * 1024


class LineTooLong(InvalidRequest):
    """A line of the command channel over :data:`MAX_LINE` bytes (either side's)."""


class LineReader:
    """The command channel's lines off a blocking socket, either side of it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def next(self, deadline: float | None = None) -> bytes | None:
        """The next line without its newline; None once the peer closed.

        ``deadline`` (``time.monotonic()``): the whole line must be there by then,
        however slowly it trickles in (TimeoutError), not only each piece of it.
        """
        while True:
            end = self.buffer.find(b"\n")
            if end >= MAX_LINE or (end < 0 and len(self.buffer) >= MAX_LINE):
                raise LineTooLong(f"line longer than {MAX_LINE} bytes")
            if end >= 0:
                line, self.buffer = self.buffer[:end], self.buffer[end + 1 :]
                return line
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no whole line in time")
                self.sock.settimeout(left)
            data = self.sock.recv(MAX_LINE)
            if not data:
                return None
            self.buffer += data


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is this machine's loopback (0.0.0.0 is not)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not address.is_loopback:
            return False
    return bool(infos)
