"""TCP: where the service is served beyond its Unix socket, and how.

Plain HTTP only on a loopback address (the banner says so); anywhere else
only over TLS, with the bench's ``[service] tls_certificate`` and
``tls_key`` (the key owner-only), and refused without them: the tokens
would cross the network in clear. With a certificate, TCP is TLS on
loopback too.
"""

from __future__ import annotations

import socket
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from interlock.errors import ConfigError, InvalidArgument
from interlock.service.wire import is_loopback

if TYPE_CHECKING:
    from interlock.service.runtime import Service

# uvicorn's own backlog, which it sets again when it starts serving the socket.
LISTEN_BACKLOG = 2048


def parse_tcp(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InvalidArgument(f'expected HOST:PORT, got "{text}"')
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class TcpPlan:
    """How TCP is served: where, and with TLS (certificate and key) or in clear on loopback."""

    host: str
    port: int
    certificate: Path | None
    key: Path | None

    @property
    def tls(self) -> bool:
        return self.certificate is not None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


def tcp_plan(service: Service, host: str, port: int) -> TcpPlan:
    """TLS when the bench has a certificate; plain only on loopback; ConfigError otherwise."""
    settings = service.settings
    bench_file = service.bench.shown_path
    if settings.tls_certificate is None or settings.tls_key is None:
        if not is_loopback(host):
            raise ConfigError(
                bench_file,
                "service.tls_certificate",
                f"--tcp {host}:{port} is reachable beyond this machine, where tokens would "
                "travel in clear: give the service a TLS certificate and key (service."
                "tls_certificate, service.tls_key), or listen on loopback (127.0.0.1)",
            )
        return TcpPlan(host, port, None, None)
    try:
        mode = stat.S_IMODE(settings.tls_key.stat().st_mode)
    except OSError as exc:
        raise ConfigError(bench_file, "service.tls_key", f"{settings.tls_key}: {exc}") from None
    if mode & 0o077:
        raise ConfigError(
            bench_file,
            "service.tls_key",
            f"{settings.tls_key} is open to others (mode {mode:04o}): chmod 600 it",
        )
    try:  # loaded here for a clear error; uvicorn loads the files again to serve
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            settings.tls_certificate, settings.tls_key
        )
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            bench_file,
            "service.tls_certificate",
            f"{settings.tls_certificate} and {settings.tls_key} are not a PEM certificate and "
            f"its key: {exc}",
        ) from None
    return TcpPlan(host, port, settings.tls_certificate, settings.tls_key)


def listen_tcp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP said, not left at 0: asyncio sets TCP_NODELAY on accepted connections only
    # then, and without it every reply on a kept-alive connection waits for the client's
    # delayed ACK (about 40 ms a request instead of 1.5 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        # Listening from now on: a client that read the banner's address is queued until
        # the server takes it, not refused.
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        raise ConfigError("--tcp", "", f"cannot listen on {host}:{port}: {exc}") from exc
    return sock
