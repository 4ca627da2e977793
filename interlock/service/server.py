"""uvicorn serving a :class:`~interlock.service.runtime.Service`.

The service listens on the bench's Unix socket (``[service] socket``),
owner-only (mode 0600), and on TCP only when asked (``tcp=(host, port)``);
tokens are required either way. Its command channel (:mod:`.channel`)
listens on a second Unix socket next to the first, never on TCP. The
sockets are bound here, before the instruments are opened, so a second
service for the same bench is refused instead of fighting the first over
its instruments. A socket file left by a
service that died is recognised (nothing answers on it) and replaced.

:func:`serve` runs in the foreground (``interlock serve``); :class:`ServiceThread`
runs the same server in a thread of the calling process (tests, tools).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import uvicorn

from interlock.errors import ConfigError, InterlockError
from interlock.service.app import create_app
from interlock.service.background import pid_path
from interlock.service.channel import CommandChannel
from interlock.service.runtime import Service
from interlock.service.wire import channel_path

log = logging.getLogger(__name__)

# Longest path a Unix socket address holds on Linux (sun_path is 108 bytes, NUL included).
MAX_SOCKET_PATH = 107
# Streams poll the stopping flag every 0.25 s; this only bounds a stuck request.
GRACEFUL_SHUTDOWN = 3


class AlreadyServing(InterlockError):
    """Another service already answers on the bench's socket."""


def listen_unix(path: Path, bench_file: str = "bench.toml") -> socket.socket:
    path = Path(path)
    if len(os.fsencode(str(path))) > MAX_SOCKET_PATH:
        raise ConfigError(
            bench_file,
            "service.socket",
            f"{path} is {len(os.fsencode(str(path)))} bytes long: a Unix socket path may have "
            f"at most {MAX_SOCKET_PATH}",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            log.info("removing a stale socket %s (nothing answers on it)", path)
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise ConfigError(bench_file, "service.socket", f"{path}: {exc}") from exc
        else:
            raise AlreadyServing(f"a service already answers on {path}: stop it first")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o600)  # only the owner (who can read the tokens) may connect
    except OSError as exc:
        sock.close()
        raise ConfigError(bench_file, "service.socket", f"cannot listen on {path}: {exc}") from exc
    return sock


def parse_tcp(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f'expected HOST:PORT, got "{text}"')
    return host.strip("[]"), int(port)


def listen_tcp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError("--tcp", "", f"cannot listen on {host}:{port}: {exc}") from exc
    return sock


class _Server(uvicorn.Server):
    """uvicorn, told to stop through the service's own flag, never re-raising signals.

    (uvicorn re-raises a caught SIGTERM after shutting down, which would end
    the process before the controller has driven the bench safe.)
    """

    def __init__(self, config: uvicorn.Config, service: Service) -> None:
        super().__init__(config)
        self.service = service

    def handle_exit(self, sig: int, frame: object) -> None:  # type: ignore[override]
        self.service.stopping.set()
        super().handle_exit(sig, frame)  # type: ignore[arg-type]

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def _uvicorn(service: Service) -> _Server:
    config = uvicorn.Config(
        create_app(service),
        lifespan="off",
        http="h11",
        loop="asyncio",
        log_config=None,  # only the CLI configures logging
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
    )
    return _Server(config, service)


class _Listening:
    """The sockets of one service and the files that go with them."""

    def __init__(self, service: Service, tcp: tuple[str, int] | None) -> None:
        self.path = service.settings.socket
        self.channel_path = channel_path(self.path)
        self.pid_file = pid_path(self.path)
        bench_file = service.bench.shown_path
        needed = len(os.fsencode(str(self.channel_path)))
        if needed > MAX_SOCKET_PATH:
            raise ConfigError(
                bench_file,
                "service.socket",
                f"{self.path} leaves no room for its command channel socket "
                f"{self.channel_path} ({needed} bytes; a Unix socket path may have at most "
                f"{MAX_SOCKET_PATH}): choose a shorter path",
            )
        self.sockets = [listen_unix(self.path, bench_file)]
        self.channel_socket: socket.socket | None = None
        self.channel: CommandChannel | None = None
        self._pid_written = False
        try:
            self.channel_socket = listen_unix(self.channel_path, bench_file)
            if tcp is not None:
                self.sockets.append(listen_tcp(*tcp))
        except BaseException:
            self.close()
            raise

    @property
    def tcp_address(self) -> tuple[str, int] | None:
        for sock in self.sockets[1:]:
            return sock.getsockname()[:2]
        return None

    @property
    def addresses(self) -> list[str]:
        tcp = self.tcp_address
        return (
            [f"unix:{self.path}"]
            + ([f"tcp:{tcp[0]}:{tcp[1]}"] if tcp else [])
            + ([f"command channel unix:{self.channel_path}"] if self.channel_socket else [])
        )

    def write_pid(self) -> None:
        self.pid_file.write_text(f"{os.getpid()}\n", encoding="ascii")
        self._pid_written = True

    def start_channel(self, service: Service) -> None:
        """Serve the command channel (once the service is open: it needs the controller)."""
        if self.channel_socket is not None:
            self.channel = CommandChannel(service, self.channel_socket).start()

    def stop_channel(self) -> None:
        if self.channel is not None:
            self.channel.stop()
            self.channel = None

    def close(self) -> None:
        """Close and remove what this service made, never another service's files."""
        self.stop_channel()
        for sock in self.sockets:
            sock.close()
        self.path.unlink(missing_ok=True)  # bound by this service (the first socket)
        if self.channel_socket is not None:
            self.channel_socket.close()
            self.channel_path.unlink(missing_ok=True)
        if self._pid_written:
            self.pid_file.unlink(missing_ok=True)


def serve(
    service: Service,
    *,
    tcp: tuple[str, int] | None = None,
    ready: Callable[[list[str]], None] | None = None,
) -> None:
    """Bind, open the service, serve until SIGINT/SIGTERM, drive safe and close.

    ``ready`` is told where the service listens (``unix:PATH``, ``tcp:HOST:PORT``,
    the port the OS chose for port 0) once the bench is open, before serving.
    """
    listening = _Listening(service, tcp)
    try:
        service.open()
        try:
            listening.write_pid()
            listening.start_channel(service)
            if ready is not None:
                ready(listening.addresses)
            _uvicorn(service).run(sockets=listening.sockets)
        finally:
            listening.stop_channel()
            service.close()
    finally:
        listening.close()


class ServiceThread:
    """The service's server in a thread of this process; a context manager.

    ``start()`` returns once the server accepts connections; ``stop()`` ends
    the streams, stops the server, drives the bench safe and closes it.
    """

    def __init__(self, service: Service, *, tcp: tuple[str, int] | None = None) -> None:
        self.service = service
        self._tcp = tcp
        self._listening: _Listening | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def socket_path(self) -> Path:
        return self.service.settings.socket

    @property
    def tcp_address(self) -> tuple[str, int] | None:
        return self._listening.tcp_address if self._listening else None

    def start(self, timeout: float = 15.0) -> ServiceThread:
        self._listening = _Listening(self.service, self._tcp)
        try:
            self.service.open()
            self._listening.start_channel(self.service)
            self._server = _uvicorn(self.service)
            self._thread = threading.Thread(target=self._run, name="interlock-service", daemon=True)
            self._thread.start()
            deadline = time.monotonic() + timeout
            while not self._server.started:
                if not self._thread.is_alive() or time.monotonic() > deadline:
                    raise InterlockError(f"the service did not start: {self._error!r}")
                time.sleep(0.01)
        except BaseException:
            self.stop()
            raise
        return self

    def _run(self) -> None:
        try:
            self._server.run(sockets=self._listening.sockets)
        except BaseException as error:  # reported by start() / stop()
            self._error = error

    def stop(self) -> None:
        self.service.stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=GRACEFUL_SHUTDOWN + 5)
            self._thread = None
        if self._listening is not None:
            self._listening.stop_channel()
        self.service.close()
        if self._listening is not None:
            self._listening.close()
            self._listening = None

    def __enter__(self) -> ServiceThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
