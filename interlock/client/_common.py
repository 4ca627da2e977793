"""What the client library's two faces share: where the service is, who calls, how to ask.

The operations themselves (routes, arguments, headers) are the service's
own, in :mod:`interlock.service.schema`; errors come back through
:mod:`interlock.service.wire`. This module adds the client's side: finding
the service (its Unix sockets, or a TCP address with TLS), starting one for
a simulation bench, the identity headers, and turning an operation and its
arguments into an HTTP request.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import ssl
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import urlsplit

import httpx

from interlock.config import Bench, load_bench
from interlock.lookup import locate_bench
from interlock.service.background import answers, start_background
from interlock.service.schema import CLIENT_HEADER, USER_HEADER, Operation
from interlock.service.tokens import ROLES, read_token
from interlock.service.wire import InvalidRequest, ServiceUnavailable, is_loopback, result_of

log = logging.getLogger(__name__)

#: No bench given: found as :func:`interlock.lookup.locate_bench` says.
DEFAULT_BENCH = None
# Room for the slowest operation: arming, or a slew-limited ramp across a whole range.
REQUEST_TIMEOUT = 120.0
CONNECT_TIMEOUT = 5.0
# A service that accepts but does not answer a hello within this is not serving.
HELLO_TIMEOUT = 5.0


class Measurement(TypedDict):
    voltage: float
    current: float


class Remote:
    """A service's TCP address and how its certificate is checked (see :func:`connect`)."""

    def __init__(self, url: str, tls: ssl.SSLContext | None) -> None:
        self.url = url
        self.tls = tls

    @classmethod
    def of(cls, address: str, ca: str | Path | None) -> Remote:
        parts = urlsplit(address)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme not in ("https", "http") or not parts.hostname or port is None:
            raise InvalidRequest(
                f'expected an address such as "https://HOST:PORT", got "{address}"'[:300]
            )
        if parts.path not in ("", "/") or parts.query or parts.username:
            raise InvalidRequest(f'an address is "https://HOST:PORT" alone, got "{address}"')
        url = f"{parts.scheme}://{parts.netloc}"
        if parts.scheme == "http":
            if not is_loopback(parts.hostname):
                raise InvalidRequest(
                    f"{url} is plain HTTP beyond loopback, where the token would travel in "
                    "clear: use https:// (the service needs its TLS certificate)"
                )
            return cls(url, None)
        try:
            # Verifies the chain against ca (or the system's CAs) and that it names the host.
            tls = ssl.create_default_context(cafile=None if ca is None else str(ca))
        except (OSError, ssl.SSLError) as exc:
            raise InvalidRequest(f"cannot load the CA certificates {ca}: {exc}") from None
        return cls(url, tls)


@dataclass(frozen=True)
class RemoteBench:
    """A bench reached by its service's address alone, without a copy of its bench file:
    its name and class as its service says them (a labgrid place's bench, the fleet)."""

    name: str
    environment: str
    address: str
    description: str = ""
    relays: dict[str, Any] = field(default_factory=dict)  # no wiring descriptions here
    path: None = None


def resolve(
    bench: str | Path | None,
    role: str,
    token: str | None,
    address: str | None,
    ca: str | Path | None,
    who: str | None = None,
) -> tuple[Bench | RemoteBench, Remote | None]:
    """The bench file found and read, the role checked; the remote address, if any, parsed.

    ``bench`` None: with an address and a token and no bench file named, the bench's
    name and class are asked of its service (one ``GET /status``); else
    ``$INTERLOCK_BENCH``, else ``bench.toml`` here or above
    (:func:`interlock.lookup.locate_bench`; which one was taken is logged).
    """
    if role not in ROLES:
        raise InvalidRequest(f'unknown role "{role}" (roles: {", ".join(ROLES)})')
    remote = Remote.of(address, ca) if address is not None else None
    if bench is None and remote is not None and token is not None:
        return remote_bench(remote, token, who), remote
    found = locate_bench(bench)
    if found.implicit:
        log.info("%s", found.describe())
    return load_bench(found.path), remote


def remote_bench(remote: Remote, token: str, who: str | None) -> RemoteBench:
    """The bench behind ``remote``, as its service's status names it."""
    try:
        with httpx.Client(
            base_url=remote.url,
            verify=remote.tls or False,
            headers=identity_headers(token, who, None),
            timeout=httpx.Timeout(REQUEST_TIMEOUT, connect=CONNECT_TIMEOUT),
        ) as http:
            response = http.get("/status")
    except httpx.TransportError as exc:
        raise unavailable(f"service on {remote.url}", exc) from exc
    status = result_of(response)
    return RemoteBench(str(status["bench"]), str(status["environment"]), remote.url)


def ensure_service(description: Bench, bench: str | Path | None, start: bool) -> None:
    """A service answering on the bench's socket; for a simulation bench, started if asked."""
    socket_path = description.service.socket
    if answers(socket_path):
        return
    if not start:
        raise ServiceUnavailable(
            f"no service answers on {socket_path}: start one with "
            f"`interlock serve --bench {description.shown_path}`"
        )
    if description.environment != "simulation":
        raise ServiceUnavailable(
            f"no service answers on {socket_path}, and bench {description.name} is a "
            f"{description.environment} bench: its service is started by an operator "
            f"(`interlock serve --bench {description.shown_path}`), never implicitly"
        )
    log.info("no service for %s: starting one in the background", description.name)
    start_background(description.path, socket_path)


def token_of(description: Bench | RemoteBench, role: str, token: str | None) -> str:
    return token if token is not None else read_token(description.service.tokens, role)


def identity_headers(token: str, who: str | None, program: str | None) -> dict[str, str]:
    """The token, and who calls from which program (for the journal; the token gives the role)."""
    return {
        "Authorization": f"Bearer {token}",
        USER_HEADER: who or user(),
        CLIENT_HEADER: program or f"{Path(sys.argv[0] or 'python').name} pid {os.getpid()}",
    }


def http_options(bench: Bench, remote: Remote | None, transport: type[Any]) -> dict[str, Any]:
    """Where an httpx client sends: the address, or the bench's Unix socket through
    ``transport`` (``httpx.HTTPTransport`` or ``httpx.AsyncHTTPTransport``)."""
    if remote is not None:
        # No TLS context: plain HTTP, on loopback only (Remote.of refuses it elsewhere).
        return {"base_url": remote.url, "verify": remote.tls or False}
    return {"base_url": "http://interlock", "transport": transport(uds=str(bench.service.socket))}


@dataclass(frozen=True)
class HttpCall:
    """One operation as an HTTP request."""

    method: str
    path: str
    content: str | None
    headers: dict[str, str] | None


def http_call(operation: Operation, arguments: dict[str, Any]) -> HttpCall:
    body = operation.http_body(arguments)
    # NaN and infinities travel (as JSON's common extension) so that the interlock
    # itself refuses them, with its rule, in its journal: never dropped on the way.
    return HttpCall(
        operation.method,
        operation.path(arguments),
        None if body is None else json.dumps(body, allow_nan=True),
        None if body is None else {"Content-Type": "application/json"},
    )


def unavailable(what: str, exc: BaseException) -> ServiceUnavailable:
    error = ServiceUnavailable(f"{what}: {exc}")
    error.__cause__ = exc
    return error


def transport_reason(exc: BaseException) -> str:
    """Why a service could not be reached, in a few words (the console shows them)."""
    if isinstance(exc, ServiceUnavailable) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, httpx.ConnectError | FileNotFoundError | ConnectionRefusedError):
        return "no service answers on the socket"
    if isinstance(exc, httpx.ReadTimeout):
        return "the service stopped answering"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"
