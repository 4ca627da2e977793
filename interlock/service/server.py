"""uvicorn serving a :class:`~interlock.service.runtime.Service`.

The service listens on the bench's Unix socket (``[service] socket``),
owner-only (mode 0600, its directory 0700 when the service makes it), and
on TCP only when asked (``tcp=(host, port)``); tokens are required either
way. TCP beyond loopback is served only over TLS, with the bench's
``[service] tls_certificate`` and ``tls_key``, and refused without them
(tokens would cross the network in clear); with them, TCP is TLS on
loopback too. Its command channel (:mod:`.channel`) listens on a second
Unix socket next to the first, never on TCP. The sockets are bound here,
before the instruments are opened, so a second service for the same bench
is refused instead of fighting the first over its instruments. A socket
file left by a service that died is recognised (nothing answers on it) and
replaced. Refusals of access, over HTTP and the channel alike, are counted
by one :class:`~.refusals.RefusalLog`, journaled in aggregate.

:func:`serve` runs in the foreground (``interlock serve``); :class:`ServiceThread`
runs the same server in a thread of the calling process (tests, tools).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn

from interlock.errors import ConfigError, InterlockError
from interlock.output_file import OutputFile
from interlock.service.access import Gatekeeper
from interlock.service.app import create_app
from interlock.service.background import log_path, pid_path, private_directory
from interlock.service.channel import CommandChannel
from interlock.service.protocol import MAX_HEAD, DeadlineH11Protocol
from interlock.service.refusals import RefusalLog
from interlock.service.runtime import Service
from interlock.service.tcp import TcpPlan, listen_tcp, tcp_plan
from interlock.service.wire import channel_path

log = logging.getLogger(__name__)

# Longest path a Unix socket address holds on Linux (sun_path is 108 bytes, NUL included).
MAX_SOCKET_PATH = 107
# Streams poll the stopping flag every 0.25 s; this only bounds a stuck request.
GRACEFUL_SHUTDOWN = 3
# How often the service looks whether the files clients find it by are still there.
KEEP_PERIOD_S = 0.5


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
    private_directory(path.parent)
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
    try:
        return _bound(path)
    except OSError as exc:
        raise ConfigError(bench_file, "service.socket", f"cannot listen on {path}: {exc}") from exc


def _bound(path: Path) -> socket.socket:
    """A Unix socket bound at ``path``, owner-only (only the owner, who can read the
    tokens, may connect); OSError if it cannot be, anything at ``path`` included (a
    file it bound but could not make owner-only is removed again)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
    except OSError:
        sock.close()
        raise
    try:
        os.chmod(path, 0o600)
    except OSError:
        sock.close()
        path.unlink(missing_ok=True)
        raise
    return sock


class _Server(uvicorn.Server):
    """uvicorn, told to stop through the service's own flag, never re-raising signals.

    (uvicorn re-raises a caught SIGTERM after shutting down, which would end
    the process before the controller has driven the bench safe.)
    """

    def __init__(self, config: uvicorn.Config, service: Service, *, signals: bool = True) -> None:
        super().__init__(config)
        self.service = service
        self.signals = signals

    def handle_exit(self, sig: int, frame: object) -> None:  # type: ignore[override]
        self.service.stopping.set()
        super().handle_exit(sig, frame)  # type: ignore[arg-type]

    async def on_tick(self, counter: int) -> bool:
        # Each server of the service (Unix socket, TCP) ends with the service.
        if self.service.stopping.is_set():
            self.should_exit = True
        return await super().on_tick(counter)

    async def listen_also(self, sock: socket.socket) -> None:
        """Serve ``sock`` too (its socket file was removed and bound again), as
        ``startup`` serves the sockets it is given; closed with the others at shutdown."""
        config = self.config

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config,
                server_state=self.server_state,
                app_state=self.lifespan.state,
                _loop=_loop,
            )

        server = await asyncio.get_running_loop().create_server(
            create_protocol, sock=sock, ssl=config.ssl, backlog=config.backlog
        )
        self.servers.append(server)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if not self.signals or threading.current_thread() is not threading.main_thread():
            yield
            return
        # SIGHUP: the terminal of a service run in the foreground closed (a remote session
        # ended, say): stopped as cleanly as by the others, not killed.
        handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


class _Servers:
    """The service's uvicorn servers, one per kind of listener, on one event loop.

    Two, because uvicorn's TLS applies to every socket of a server: the Unix
    socket is served plain, TCP with TLS when the bench has a certificate.
    """

    def __init__(self, service: Service, gate: Gatekeeper, listening: _Listening) -> None:
        self.service = service
        self._loop: asyncio.AbstractEventLoop | None = None
        app = create_app(service, gate)
        self.sockets = [[listening.unix_socket]]
        self.servers = [_Server(_config(app, None), service)]
        if listening.tcp_socket is not None:
            self.sockets.append([listening.tcp_socket])
            self.servers.append(_Server(_config(app, listening.tcp), service, signals=False))

    @property
    def started(self) -> bool:
        return all(server.started for server in self.servers)

    def exit(self) -> None:
        for server in self.servers:
            server.should_exit = True

    def run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(s.serve(sockets=socks) for s, socks in zip(self.servers, self.sockets, strict=True))
        )

    def serve_also(self, sock: socket.socket) -> None:
        """From another thread: the HTTP API served on ``sock`` too (a listening Unix
        socket bound again after its file went). InterlockError if it cannot be."""
        loop = self._loop
        if loop is None or self.service.stopping.is_set():
            raise InterlockError("the service is not serving")
        try:
            asyncio.run_coroutine_threadsafe(self.servers[0].listen_also(sock), loop).result(
                timeout=5
            )
        except Exception as error:  # the socket is not served: the caller lets it go
            raise InterlockError(f"cannot serve {sock.getsockname()}: {error!r}") from error


def _config(app: Any, tcp: TcpPlan | None) -> uvicorn.Config:
    tls = tcp is not None and tcp.tls
    return uvicorn.Config(
        app,
        lifespan="off",
        http=DeadlineH11Protocol,
        h11_max_incomplete_event_size=MAX_HEAD,
        loop="asyncio",
        log_config=None,  # only the CLI configures logging
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
        ssl_certfile=str(tcp.certificate) if tls else None,
        ssl_keyfile=str(tcp.key) if tls else None,
    )


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
        # Refused before anything is bound: plain TCP beyond loopback, a key others may read.
        self.tcp = tcp_plan(service, *tcp) if tcp is not None else None
        # The files this service made, as it made them: removed at its close only if
        # they are still those (another service's, made after one went, stay).
        self._made: dict[Path, tuple[int, int] | None] = {}
        self.unix_socket = self._listen(self.path, bench_file)
        self.tcp_socket: socket.socket | None = None
        self.channel_socket: socket.socket | None = None
        self.channel: CommandChannel | None = None
        self._bound_again: list[socket.socket] = []  # the Unix socket, after its file went
        self._told: dict[Path, str] = {}  # what the keeper last logged of each file
        try:
            self.channel_socket = self._listen(self.channel_path, bench_file)
            if self.tcp is not None:
                self.tcp_socket = listen_tcp(self.tcp.host, self.tcp.port)
        except BaseException:
            self.close()
            raise

    @property
    def tcp_address(self) -> tuple[str, int] | None:
        if self.tcp_socket is None:
            return None
        return self.tcp_socket.getsockname()[:2]

    @property
    def addresses(self) -> list[str]:
        tcp = self.tcp_address
        shown = []
        if tcp is not None and self.tcp is not None:
            host = f"[{tcp[0]}]" if ":" in tcp[0] else tcp[0]
            clear = "" if self.tcp.tls else " (plain HTTP: loopback only)"
            shown = [f"tcp:{tcp[0]}:{tcp[1]} as {self.tcp.scheme}://{host}:{tcp[1]}{clear}"]
        return (
            [f"unix:{self.path}"]
            + shown
            + ([f"command channel unix:{self.channel_path}"] if self.channel_socket else [])
        )

    def write_pid(self, *, exclusive: bool = False) -> None:
        # Owner-only, as the sockets are; O_NOFOLLOW: never written through a planted link.
        # Exclusive when put back: nothing another process put there since is overwritten.
        fd = os.open(
            self.pid_file,
            os.O_WRONLY
            | os.O_CREAT
            | (os.O_EXCL if exclusive else os.O_TRUNC)
            | os.O_NOFOLLOW
            | os.O_CLOEXEC,
            0o600,
        )
        with os.fdopen(fd, "w", encoding="ascii") as file:
            os.fchmod(fd, 0o600)
            file.write(f"{os.getpid()}\n")
        self._made[self.pid_file] = _identity(self.pid_file)

    def _listen(self, path: Path, bench_file: str) -> socket.socket:
        sock = listen_unix(path, bench_file)
        self._made[path] = _identity(path)
        return sock

    def start_channel(self, service: Service, gate: Gatekeeper) -> None:
        """Serve the command channel (once the service is open: it needs the controller)."""
        if self.channel_socket is not None:
            self.channel = CommandChannel(service, self.channel_socket, gate).start()

    def stop_channel(self) -> None:
        if self.channel is not None:
            self.channel.stop()
            self.channel = None

    def keep(self, serve_http: Callable[[socket.socket], None]) -> None:
        """Put back what went of the files clients find this service by (its directory
        removed, say, while it runs the bench): each socket bound again where its file
        went, listening, and the pid file. Without them nothing reaches a service that
        still runs the bench, the emergency stop from a shell included (its tokens:
        :meth:`~interlock.service.tokens.TokenStore.keep`). Something another process
        put in a place is left alone. Each file on its own: one that cannot be put
        back now is tried again at the next round."""
        if _gone(self.path):
            sock = self._bind_listening(self.path)
            if sock is not None:
                try:
                    serve_http(sock)
                except InterlockError:
                    self._let_go(self.path, sock)
                    raise
                self._bound_again.append(sock)
        channel = self.channel
        if channel is not None and _gone(self.channel_path):
            sock = self._bind_listening(self.channel_path)
            if sock is not None:
                channel.listen_on(sock)
                self.channel_socket = sock
        if self.pid_file in self._made and _gone(self.pid_file):
            self.write_pid(exclusive=True)
            self._said(self.pid_file, "was removed while the service runs: written again")

    def _bind_listening(self, path: Path) -> socket.socket | None:
        """A listening socket bound at ``path`` (owner-only), or None if something is
        there now (left alone)."""
        private_directory(path.parent)
        try:
            sock = _bound(path)  # fails if anything is there, a link included
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                self._said(path, "was taken by another file: left alone, nothing listens there")
                return None
            raise
        try:
            sock.listen(socket.SOMAXCONN)
        except OSError:
            self._let_go(path, sock)
            raise
        self._made[path] = _identity(path)
        self._said(path, "was removed while the service runs: bound again")
        return sock

    def _let_go(self, path: Path, sock: socket.socket) -> None:
        """A socket bound again but not served: closed, and its file removed, so that the
        next round tries again."""
        made = _identity(path)
        sock.close()
        if made is not None and made == self._made.get(path, made):
            path.unlink(missing_ok=True)

    def _said(self, path: Path, what: str) -> None:
        """Logged once for each thing that happens to a file (the keeper looks every
        KEEP_PERIOD_S: a place taken for good must not fill the log)."""
        if self._told.get(path) != what:
            self._told[path] = what
            log.critical("%s %s", path, what)

    def close(self) -> None:
        """Close and remove what this service made, never another service's files."""
        self.stop_channel()
        for sock in (self.unix_socket, self.tcp_socket, self.channel_socket, *self._bound_again):
            if sock is not None:
                sock.close()
        for path, made in self._made.items():
            if made is not None and _identity(path) == made:
                path.unlink(missing_ok=True)


class _Keeper:
    """A thread that puts back, every KEEP_PERIOD_S, what went of the files clients find
    the service by (:meth:`_Listening.keep`, :meth:`TokenStore.keep`), and of its log
    (started in the background: :class:`~interlock.output_file.OutputFile`). A thread of
    its own: a ``stat`` on a hung file system must not hold up the event loop that serves
    the HTTP stop."""

    def __init__(self, service: Service, listening: _Listening, servers: _Servers) -> None:
        self._service, self._listening, self._servers = service, listening, servers
        self._output = OutputFile(log_path(service.settings.socket))
        self._stop = threading.Event()
        self._failed: dict[str, str] = {}  # what failed last, logged once each
        self._thread = threading.Thread(target=self._run, name="interlock-keeper", daemon=True)

    def start(self) -> _Keeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=KEEP_PERIOD_S * 4)

    def _run(self) -> None:
        while not self._stop.wait(KEEP_PERIOD_S):
            if self._service.stopping.is_set():
                return
            # The log first: what the others say of this round goes where it is found.
            self._once("log", self._log)
            self._once("sockets", lambda: self._listening.keep(self._servers.serve_also))
            self._once("tokens", self._tokens)

    def _log(self) -> None:
        if self._output.keep():
            log.critical("%s went while the service runs: made again", self._output.path)

    def _tokens(self) -> None:
        roles = self._service.tokens.keep()
        if roles:
            log.critical(
                "the tokens directory %s was removed while the service runs: made again, "
                "with the same tokens (%s)",
                self._service.tokens.directory,
                ", ".join(roles),
            )

    def _once(self, what: str, work: Callable[[], None]) -> None:
        try:
            work()
        except Exception as error:  # the next round tries again; logged once per cause
            said = f"{type(error).__name__}: {error}"
            if self._failed.get(what) != said:
                self._failed[what] = said
                log.error("putting back the service's %s: %s", what, said)
        else:
            self._failed.pop(what, None)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _gone(path: Path) -> bool:
    return not (path.exists() or path.is_symlink())


def _gatekeeper(service: Service) -> Gatekeeper:
    """The one gate of HTTP and the channel; its refusals go to the service's journal."""
    return Gatekeeper(
        service.tokens, RefusalLog(lambda: service.journal), lambda: service.reservations
    )


# How long a thread holding the GIL keeps it while another waits (Python's default: 5 ms).
# The stop's thread gives the GIL up at every exchange and commit it makes, and waits
# this long to get it back from a thread that is busy (serving a flood of requests):
# at 1 ms, the stop's p99 under a flood of script requests was 16-17 ms; at 0.1 ms,
# 7.9 ms (benchmarks.estop_flood). The cost is more switches while threads contend.
SWITCH_INTERVAL_S = 0.0001


def _ready_for_the_stop() -> None:
    """The process serves the stop first: short GIL turns, no full collection of start-up.

    ``gc.freeze()`` moves what start-up made (the configuration, the units registry,
    the app, the simulator) out of the collector's sight: a full collection, which
    every flood of requests brings sooner, scanned all of it on the stop's thread
    too (tens of milliseconds). Those objects live as long as the service anyway.
    (No collection here: the relay board's heartbeat is running by now.)
    """
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    gc.freeze()


def serve(
    service: Service,
    *,
    tcp: tuple[str, int] | None = None,
    ready: Callable[[list[str]], None] | None = None,
) -> None:
    """Bind, open the service, serve until SIGINT/SIGTERM, drive safe and close.

    ``ready`` is told where the service listens (``unix:PATH``, ``tcp:HOST:PORT``
    with its scheme, the port the OS chose for port 0) once the bench is open,
    before serving.
    """
    listening = _Listening(service, tcp)
    gate = _gatekeeper(service)
    try:
        gc.collect()  # start-up's garbage, while nothing waits on this process yet
        service.open()
        try:  # from the very next line: whatever comes (a second Ctrl-C) closes it
            _ready_for_the_stop()
            listening.write_pid()
            listening.start_channel(service, gate)
            if ready is not None:
                ready(listening.addresses)
            servers = _Servers(service, gate, listening)
            keeper = _Keeper(service, listening, servers).start()
            try:
                servers.run()
            finally:
                keeper.stop()
        finally:
            listening.stop_channel()
            gate.refusals.stop()
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
        self.gate = _gatekeeper(service)
        self._tcp = tcp
        self._listening: _Listening | None = None
        self._servers: _Servers | None = None
        self._keeper: _Keeper | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def socket_path(self) -> Path:
        return self.service.settings.socket

    @property
    def tcp_address(self) -> tuple[str, int] | None:
        return self._listening.tcp_address if self._listening else None

    @property
    def addresses(self) -> list[str]:
        return self._listening.addresses if self._listening else []

    def start(self, timeout: float = 15.0) -> ServiceThread:
        self._listening = _Listening(self.service, self._tcp)
        try:
            self.service.open()
            self._listening.start_channel(self.service, self.gate)
            self._servers = _Servers(self.service, self.gate, self._listening)
            self._keeper = _Keeper(self.service, self._listening, self._servers).start()
            self._thread = threading.Thread(target=self._run, name="interlock-service", daemon=True)
            self._thread.start()
            deadline = time.monotonic() + timeout
            while not self._servers.started:
                if not self._thread.is_alive() or time.monotonic() > deadline:
                    raise InterlockError(f"the service did not start: {self._error!r}")
                time.sleep(0.01)
        except BaseException:
            self.stop()
            raise
        return self

    def _run(self) -> None:
        try:
            self._servers.run()
        except BaseException as error:  # reported by start() / stop()
            self._error = error

    def stop(self) -> None:
        self.service.stopping.set()
        if self._keeper is not None:
            self._keeper.stop()
            self._keeper = None
        if self._servers is not None:
            self._servers.exit()
        if self._thread is not None:
            self._thread.join(timeout=GRACEFUL_SHUTDOWN + 5)
            self._thread = None
        if self._listening is not None:
            self._listening.stop_channel()
        self.gate.refusals.stop()
        self.service.close()
        if self._listening is not None:
            self._listening.close()
            self._listening = None

    def __enter__(self) -> ServiceThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
