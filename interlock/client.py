"""The Python client: a script's way to the bench, through the controller service.

::

    import interlock

    with interlock.connect() as bench:          # bench.toml, role "script"
        with bench.lease():                     # the dead man's switch
            bench.set_current_limit("VLOGIC", 0.3)
            bench.set_voltage("VLOGIC", 5.0)
            bench.output_on("VLOGIC")
            print(bench.measure("VLOGIC"))      # {"voltage": 5.0, "current": 0.15}
            bench.output_off("VLOGIC")

``connect()`` reaches the service over the bench's Unix sockets, reading the
role's token from the bench's tokens directory. Setpoints, relays, outputs,
measurements and the status go over the service's command channel (one JSON
line each way, see :mod:`interlock.service.channel`); arming, leases, events
and the emergency stop over its HTTP API. When nothing answers and the
bench is a ``simulation`` bench, it starts a service in the background; a
service for real hardware is only ever started by someone on purpose.

From another machine, ``connect(bench, address="https://bench-07.lab:8443",
ca="lab-ca.pem")`` reaches a service started with ``--tcp`` and a TLS
certificate: the server's certificate must be signed by ``ca`` (a PEM file:
the lab's CA, or the server's own self-signed certificate) and name the
host, or nothing is sent. Everything goes over HTTPS then (the command
channel is local only). ``http://`` is taken only for a loopback address.

The service's refusals come back as the project's own exceptions
(:class:`~interlock.errors.LimitViolation` with ``rule``, ``where`` and
``reason``; :class:`~interlock.errors.StateError`;
:class:`~interlock.errors.FaultLatched`; ...), plus
:class:`~interlock.service.wire.AccessDenied` and
:class:`~interlock.service.wire.ServiceUnavailable`.

Units: ``volts`` and ``amps`` are SI numbers; the service refuses anything
outside the pinned limits, it never clamps.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import select
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import quote, urlsplit

import httpx

from interlock.config import Bench, load_bench
from interlock.errors import InterlockError
from interlock.service.background import answers, start_background
from interlock.service.tokens import ROLES, read_token
from interlock.service.wire import (
    CHANNEL_VERSION,
    InvalidRequest,
    LineReader,
    LineTooLong,
    ServiceUnavailable,
    channel_path,
    error_from_wire,
    is_loopback,
    result_of,
)

if TYPE_CHECKING:
    from interlock.sim.client import SimulatorClient

log = logging.getLogger(__name__)

DEFAULT_BENCH = "bench.toml"
# Room for the slowest operation: arming, or a slew-limited ramp across a whole range.
REQUEST_TIMEOUT = 120.0
# A service that accepts but does not answer a hello within this is not serving.
HELLO_TIMEOUT = 5.0
LEASE_HEADER = "X-Interlock-Lease"


class Measurement(TypedDict):
    voltage: float
    current: float


def connect(
    bench: str | Path = DEFAULT_BENCH,
    *,
    role: str = "script",
    token: str | None = None,
    start: bool = True,
    who: str | None = None,
    address: str | None = None,
    ca: str | Path | None = None,
) -> Client:
    """A :class:`Client` of the service of ``bench``, acting in ``role``.

    ``token`` defaults to the role's token file. ``start``: when no service
    answers and the bench is a simulation bench, start one in the background.
    ``address``: the service's TCP address, ``https://HOST:PORT`` (its
    certificate verified against the PEM file ``ca``, or the system's CAs),
    or ``http://`` on loopback only; never started from here.
    """
    if role not in ROLES:
        raise InvalidRequest(f'unknown role "{role}" (roles: {", ".join(ROLES)})')
    description = load_bench(bench)
    if address is not None:
        remote = Remote.of(address, ca)
        if token is None:
            token = read_token(description.service.tokens, role)
        return Client(description, role=role, token=token, who=who, remote=remote)
    socket_path = description.service.socket
    if not answers(socket_path):
        if not start:
            raise ServiceUnavailable(
                f"no service answers on {socket_path}: start one with "
                f"`interlock serve --bench {bench}`"
            )
        if description.environment != "simulation":
            raise ServiceUnavailable(
                f"no service answers on {socket_path}, and bench {description.name} is a "
                f"{description.environment} bench: its service is started by an operator "
                f"(`interlock serve --bench {bench}`), never implicitly"
            )
        log.info("no service for %s: starting one in the background", description.name)
        start_background(description.path, socket_path)
    if token is None:
        token = read_token(description.service.tokens, role)
    return Client(description, role=role, token=token, who=who)


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


class Client:
    """A connection to one bench's service. Close it (or use it as a context manager)."""

    def __init__(
        self,
        bench: Bench,
        *,
        role: str,
        token: str,
        who: str | None = None,
        remote: Remote | None = None,
    ) -> None:
        self.bench = bench
        self.role = role
        self.remote = remote
        self._headers = {
            "Authorization": f"Bearer {token}",
            "X-Interlock-User": who or _user(),
            "X-Interlock-Client": f"{Path(sys.argv[0] or 'python').name} pid {os.getpid()}",
        }
        self._http = self._new_http()
        # Over TCP everything goes through HTTP: the command channel is local only.
        self._channel = (
            None
            if remote is not None
            else _ChannelPool(
                channel_path(bench.service.socket),
                {
                    "hello": CHANNEL_VERSION,
                    "token": token,
                    "user": self._headers["X-Interlock-User"],
                    "client": self._headers["X-Interlock-Client"],
                },
                f"bench {bench.name}",
            )
        )
        self._lease: Lease | None = None

    @property
    def where(self) -> str:
        """Where the service is reached: its address, or its Unix socket."""
        return self.remote.url if self.remote else str(self.bench.service.socket)

    def _new_http(self) -> httpx.Client:
        timeout = httpx.Timeout(REQUEST_TIMEOUT, connect=5.0)
        if self.remote is not None:
            return httpx.Client(
                base_url=self.remote.url,
                verify=self.remote.tls or False,  # no context: plain HTTP on loopback
                headers=self._headers,
                timeout=timeout,
            )
        return httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.bench.service.socket)),
            base_url="http://interlock",
            headers=self._headers,
            timeout=timeout,
        )

    # -- plumbing ------------------------------------------------------------------

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        # NaN and infinities travel (as JSON's common extension) so that the interlock
        # itself refuses them, with its rule, in its journal: never dropped on the way.
        content = None if body is None else json.dumps(body, allow_nan=True)
        headers = None if body is None else {"Content-Type": "application/json"}
        try:
            response = self._http.request(method, path, content=content, headers=headers)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(
                f"service of bench {self.bench.name} on {self.where}: {exc}"
            ) from exc
        return result_of(response)

    def _command(self, op: str, **arguments: Any) -> Any:
        """One operation over the command channel, with the lease held (if any)."""
        if self._channel is None:
            return self._http_command(op, **arguments)
        lease = self._lease
        if lease is not None and lease.id is not None:
            arguments["lease"] = lease.id
        return self._channel.call({"op": op, **arguments})

    def _http_command(self, op: str, **arguments: Any) -> Any:
        """The same operation through the HTTP API (the lease goes in its header)."""
        name = quote(str(arguments.get("net", arguments.get("relay", ""))), safe="")
        if op == "status":
            return self._request("GET", "/status")
        if op == "measure":
            return self._request("GET", f"/nets/{name}/measurement")
        path, body = {
            "set_voltage": ("voltage", {"volts": arguments.get("volts")}),
            "set_current_limit": ("current-limit", {"amps": arguments.get("amps")}),
            "set_output": ("output", {"on": arguments.get("on")}),
            "set_relay": ("", {"closed": arguments.get("closed")}),
        }[op]
        route = f"/relays/{name}" if op == "set_relay" else f"/nets/{name}/{path}"
        self._request("PUT", route, body)
        return None

    @property
    def name(self) -> str:
        return self.bench.name

    @property
    def environment(self) -> str:
        return self.bench.environment

    @property
    def sim(self) -> SimulatorClient:
        """The simulator behind a simulation bench (inject, clear, truth, history);
        :class:`~interlock.errors.SimulatorError` on any other bench."""
        from interlock.sim.client import SimulatorClient

        return SimulatorClient.of_bench(self.bench)

    # -- reading ---------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """State, fault, nets (setpoints, limits, last measured), relays, lease holder."""
        return self._command("status")

    def measure(self, net: str) -> Measurement:
        result = self._command("measure", net=net)
        return Measurement(voltage=result["voltage"], current=result["current"])

    def events(self, period: float = 1.0) -> Iterator[dict[str, Any]]:
        """Live events (state, fault, refused, lease) and a status every ``period`` seconds.

        A generator: close it (or leave the ``for`` loop) to end the stream.
        """
        http = self._new_http()
        try:
            with http.stream(
                "GET", "/events", params={"period": period}, timeout=httpx.Timeout(10, read=None)
            ) as response:
                if not response.is_success:
                    response.read()
                    result_of(response)
                for line in response.iter_lines():
                    if line:
                        yield json.loads(line)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"event stream of bench {self.bench.name}: {exc}") from exc
        finally:
            http.close()

    # -- operator ------------------------------------------------------------------------

    def arm(self, confirm: str | None = None) -> None:
        """Arm (operator). A flight bench needs its name typed as ``confirm``."""
        self._request("POST", "/arm", {"confirm": confirm})

    def disarm(self) -> None:
        self._request("POST", "/disarm")

    def reset(self) -> None:
        """Acknowledge a latched fault (operator); the bench stays off."""
        self._request("POST", "/reset")

    def estop(self) -> None:
        """Emergency stop: any role may."""
        self._request("POST", "/estop")

    # -- script ----------------------------------------------------------------------------

    def set_voltage(self, net: str, volts: float) -> None:
        self._command("set_voltage", net=net, volts=volts)

    def set_current_limit(self, net: str, amps: float) -> None:
        self._command("set_current_limit", net=net, amps=amps)

    def set_relay(self, relay: str, closed: bool) -> None:
        self._command("set_relay", relay=relay, closed=closed)

    def output_on(self, net: str) -> None:
        """Make ``net`` live (safe-to-mate, readback, settle, window). Needs the lease."""
        self._command("set_output", net=net, on=True)

    def output_off(self, net: str) -> None:
        self._command("set_output", net=net, on=False)

    # -- lease ---------------------------------------------------------------------------------

    def lease(self) -> Lease:
        """The bench's lease, as a context manager, heartbeating in a background thread.

        Leaving the block releases it. Leaving it with a net still live trips
        the bench to the safe state: turn outputs off before.
        """
        return Lease(self)

    @property
    def lease_lost(self) -> str | None:
        """Why the lease held now stopped heartbeating, or None."""
        return self._lease.lost if self._lease else None

    # -- life cycle ------------------------------------------------------------------------------

    def close(self) -> None:
        try:
            if self._lease is not None:
                self._lease.release()
        finally:
            if self._channel is not None:
                self._channel.close()
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<interlock.Client bench {self.name} [{self.environment}] as {self.role}>"


class Lease:
    """The bench's lease held by one client (see :meth:`Client.lease`)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.id: str | None = None
        self.timeout = 0.0
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> Lease:
        if self.client._lease is not None:
            raise InvalidRequest("this client already holds the lease")
        granted = self.client._request("POST", "/leases")
        self.id, self.timeout = granted["id"], float(granted["timeout"])
        self.client._http.headers[LEASE_HEADER] = self.id
        self.client._lease = self
        self._thread = threading.Thread(
            target=self._keep,
            args=(float(granted["heartbeat"]),),
            name="interlock-lease",
            daemon=True,
        )
        self._thread.start()
        return self

    def _keep(self, period: float) -> None:
        """Hold the watch stream open and heartbeat; ends on release or any failure."""
        http = self.client._new_http()
        try:
            last = time.monotonic()
            with http.stream(
                "GET",
                f"/leases/{self.id}/watch",
                timeout=httpx.Timeout(10, read=max(1.0, self.timeout)),
            ) as response:
                if not response.is_success:
                    response.read()
                    result_of(response)
                for line in response.iter_lines():
                    if self._stop.is_set() or (line and json.loads(line).get("ended")):
                        return
                    if time.monotonic() - last >= period:
                        result_of(http.post(f"/leases/{self.id}/heartbeat"))
                        last = time.monotonic()
            if not self._stop.is_set():
                self.lost = "the service ended the lease"
        except (httpx.HTTPError, InterlockError) as exc:
            if not self._stop.is_set():
                self.lost = f"{type(exc).__name__}: {exc}"
                log.error("lease of bench %s lost: %s", self.client.name, self.lost)
        finally:
            http.close()

    def release(self) -> None:
        """Give the lease back (the service trips the bench if a net is still live)."""
        if self.client._lease is not self:
            return
        self._stop.set()
        self.client._lease = None
        self.client._http.headers.pop(LEASE_HEADER, None)
        try:
            if self.lost is None:
                self.client._request("DELETE", f"/leases/{self.id}")
        finally:
            if self._thread is not None:
                self._thread.join(timeout=5)
                self._thread = None

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.release()
        except InterlockError:
            if exc is None:
                raise
            log.exception("releasing the lease after %s", exc_type.__name__ if exc_type else "")


# Built once (json.dumps with options builds an encoder per call); NaN allowed.
_CHANNEL_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=True)
_CHANNEL_DECODER = json.JSONDecoder()


class _ChannelConnection:
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


class _ChannelPool:
    """Command channel connections, one per concurrent caller, opened when first needed.

    A call whose reply did not come back closes its connection and raises
    ServiceUnavailable: it is never sent again (the service may have acted on it).
    An idle connection the service has closed is dropped before it is used.
    """

    def __init__(self, path: Path, hello: dict[str, Any], what: str) -> None:
        self.path, self.hello, self.what = path, hello, what
        self._idle: list[_ChannelConnection] = []
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

    def _take(self) -> _ChannelConnection:
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
            return _ChannelConnection(self.path, self.hello, self.what)
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

    def _give_back(self, connection: _ChannelConnection) -> None:
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


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


__all__ = ["Client", "Lease", "Measurement", "connect"]
