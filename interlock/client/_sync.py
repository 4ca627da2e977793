"""The sync face of the client library: :func:`connect`, :class:`Client`, :class:`Lease`."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from interlock.client._channel import ChannelPool
from interlock.client._common import (
    CONNECT_TIMEOUT,
    DEFAULT_BENCH,
    REQUEST_TIMEOUT,
    Measurement,
    Remote,
    RemoteBench,
    ensure_service,
    http_call,
    http_options,
    identity_headers,
    resolve,
    token_of,
    unavailable,
)
from interlock.config import Bench
from interlock.errors import InterlockError, SimulatorError
from interlock.interrupts import calling
from interlock.service.schema import (
    ACQUIRE_LEASE,
    ARM,
    CLIENT_HEADER,
    DISARM,
    ESTOP,
    EVENTS,
    HEARTBEAT,
    LEASE_HEADER,
    MEASURE,
    NOTE,
    RELEASE_LEASE,
    RESET,
    SET_CURRENT_LIMIT,
    SET_OUTPUT,
    SET_RELAY,
    SET_VOLTAGE,
    STATUS,
    USER_HEADER,
    WATCH_LEASE,
    Operation,
)
from interlock.service.wire import CHANNEL_VERSION, InvalidRequest, channel_path, result_of

if TYPE_CHECKING:
    from interlock.sim.client import SimulatorClient

log = logging.getLogger(__name__)


def connect(
    bench: str | Path | None = DEFAULT_BENCH,
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
    or ``http://`` on loopback only; never started from here. ``bench`` None: no
    bench file here (a bench of a lab, reached by its address with ``token``).
    """
    description, remote = resolve(bench, role, token, address, ca, who)
    if remote is None:
        ensure_service(description, bench, start)
    token = token_of(description, role, token)
    return Client(description, role=role, token=token, who=who, remote=remote)


class Client:
    """A connection to one bench's service. Close it (or use it as a context manager).

    ``program`` names the calling program in the journal (default: its script and pid).
    """

    def __init__(
        self,
        bench: Bench | RemoteBench,
        *,
        role: str,
        token: str,
        who: str | None = None,
        remote: Remote | None = None,
        program: str | None = None,
    ) -> None:
        self.bench = bench
        self.role = role
        self.remote = remote
        self._headers = identity_headers(token, who, program)
        self._http = self._new_http()
        # Over TCP everything goes through HTTP: the command channel is local only.
        self._channel = (
            None
            if remote is not None
            else ChannelPool(
                channel_path(bench.service.socket),
                {
                    "hello": CHANNEL_VERSION,
                    "token": token,
                    "user": self._headers[USER_HEADER],
                    "client": self._headers[CLIENT_HEADER],
                },
                f"bench {bench.name}",
            )
        )
        self._lease: Lease | PlaceLease | None = None

    @property
    def where(self) -> str:
        """Where the service is reached: its address, or its Unix socket."""
        return self.remote.url if self.remote else str(self.bench.service.socket)

    def _new_http(self) -> httpx.Client:
        return httpx.Client(
            headers=self._headers,
            timeout=httpx.Timeout(REQUEST_TIMEOUT, connect=CONNECT_TIMEOUT),
            **http_options(self.bench, self.remote, httpx.HTTPTransport),
        )

    # -- plumbing ------------------------------------------------------------------

    def _call(self, operation: Operation, **arguments: Any) -> Any:
        """One operation: over the command channel if it carries it, else over HTTP.

        The lease held (if any) goes with it: ``lease`` on the channel, its header on HTTP.
        """
        # A signal taken as Ctrl-C (interlock.interrupts) interrupts once the reply is in.
        with calling():
            if operation.channel and self._channel is not None:
                lease = self._lease
                if lease is not None and lease.id is not None:
                    arguments["lease"] = lease.id
                return self._channel.call(operation.channel_request(arguments))
            return self._request(operation, arguments)

    def _request(self, operation: Operation, arguments: dict[str, Any]) -> Any:
        call = http_call(operation, arguments)
        try:
            response = self._http.request(
                call.method, call.path, content=call.content, headers=call.headers
            )
        except httpx.TransportError as exc:
            raise unavailable(f"service of bench {self.bench.name} on {self.where}", exc) from exc
        return result_of(response)

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

        if isinstance(self.bench, RemoteBench):
            raise SimulatorError(f"bench {self.name} is reached by address: no simulator here")
        return SimulatorClient.of_bench(self.bench)

    # -- reading ---------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """State, fault, nets (setpoints, limits, last measured), relays, lease holder."""
        return self._call(STATUS)

    def measure(self, net: str) -> Measurement:
        result = self._call(MEASURE, net=net)
        return Measurement(voltage=result["voltage"], current=result["current"])

    def events(self, period: float = 1.0) -> Iterator[dict[str, Any]]:
        """Live events (state, fault, refused, lease) and a status every ``period`` seconds.

        A generator: close it (or leave the ``for`` loop) to end the stream.
        """
        http = self._new_http()
        try:
            with http.stream(
                EVENTS.method,
                EVENTS.path({}),
                params={"period": period},
                timeout=httpx.Timeout(10, read=None),
            ) as response:
                if not response.is_success:
                    response.read()
                    result_of(response)
                for line in response.iter_lines():
                    if line:
                        yield json.loads(line)
        except httpx.TransportError as exc:
            raise unavailable(f"event stream of bench {self.bench.name}", exc) from exc
        finally:
            http.close()

    # -- operator: each returns the bench's status after it ------------------------------

    def arm(self, confirm: str | None = None) -> dict[str, Any]:
        """Arm (operator). A flight bench needs its name typed as ``confirm``."""
        return self._call(ARM, confirm=confirm)

    def disarm(self) -> dict[str, Any]:
        return self._call(DISARM)

    def reset(self) -> dict[str, Any]:
        """Acknowledge a latched fault (operator); the bench stays off."""
        return self._call(RESET)

    def estop(self) -> dict[str, Any]:
        """Emergency stop: any role may."""
        return self._call(ESTOP)

    # -- script ----------------------------------------------------------------------------

    def set_voltage(self, net: str, volts: float, *, measure: bool = False) -> Measurement | None:
        """Program a setpoint; with ``measure``, answer with the net's measurement once
        the setpoint is in force (one round trip instead of two)."""
        if not measure:
            self._call(SET_VOLTAGE, net=net, volts=volts)
            return None
        result = self._call(SET_VOLTAGE, net=net, volts=volts, measure=True)["measurement"]
        return Measurement(voltage=result["voltage"], current=result["current"])

    def set_current_limit(self, net: str, amps: float) -> None:
        self._call(SET_CURRENT_LIMIT, net=net, amps=amps)

    def set_relay(self, relay: str, closed: bool) -> None:
        self._call(SET_RELAY, relay=relay, closed=closed)

    def output_on(self, net: str) -> None:
        """Make ``net`` live (safe-to-mate, readback, settle, window). Needs the lease."""
        self._call(SET_OUTPUT, net=net, on=True)

    def output_off(self, net: str) -> None:
        self._call(SET_OUTPUT, net=net, on=False)

    def note(self, text: str, step: int | None = None) -> None:
        """Journal a marker in the run (``step``: the sequence step it begins, 1-based):
        the post-mortem shows it on the time axis. At most 200 characters."""
        self._call(NOTE, text=text, step=step)

    # -- lease ---------------------------------------------------------------------------------

    def lease(self) -> Lease:
        """The bench's lease, as a context manager, heartbeating in a background thread.

        Leaving the block releases it. Leaving it with a net still live trips
        the bench to the safe state: turn outputs off before.
        """
        return Lease(self)

    def place_lease(self, place: str) -> PlaceLease:
        """The bench's *place lease*: held on the bench host for as long as this client's
        user holds the labgrid ``place`` (the service's ``[service] reservations =
        "labgrid"``), with no heartbeat; the same user asking again, from any process,
        gets the same lease. Closing the client keeps it; :meth:`PlaceLease.release`
        gives it back (the bench trips if a net is still live)."""
        if self._lease is not None:
            raise InvalidRequest("this client already holds a lease")
        granted = self._call(ACQUIRE_LEASE, place=place)
        lease = PlaceLease(self, granted["id"], place)
        self._http.headers[LEASE_HEADER] = lease.id
        self._lease = lease
        return lease

    @property
    def lease_lost(self) -> str | None:
        """Why the lease held now stopped heartbeating, or None."""
        return self._lease.lost if self._lease else None

    # -- life cycle ------------------------------------------------------------------------------

    def close(self) -> None:
        try:
            if self._lease is not None:
                self._lease.client_closing()
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
        self._threads: list[threading.Thread] = []

    def acquire(self) -> Lease:
        if self.client._lease is not None:
            raise InvalidRequest("this client already holds the lease")
        granted = self.client._call(ACQUIRE_LEASE)
        self.id, self.timeout = granted["id"], float(granted["timeout"])
        self.client._http.headers[LEASE_HEADER] = self.id
        self.client._lease = self
        # Two threads: the heartbeats keep their own schedule, whatever the watch stream
        # does; the watch stream only tells the service at once that we are gone.
        self._threads = [
            threading.Thread(target=self._watch, name="interlock-lease-watch", daemon=True),
            threading.Thread(
                target=self._beat,
                args=(float(granted["heartbeat"]),),
                name="interlock-lease",
                daemon=True,
            ),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def _watch(self) -> None:
        """Hold the watch stream open; ends on release or any failure."""
        http = self.client._new_http()
        try:
            with http.stream(
                WATCH_LEASE.method,
                WATCH_LEASE.path({"lease_id": self.id}),
                timeout=httpx.Timeout(10, read=max(1.0, self.timeout)),
            ) as response:
                if not response.is_success:
                    response.read()
                    result_of(response)
                for line in response.iter_lines():
                    if self._stop.is_set() or (line and json.loads(line).get("ended")):
                        break
            if not self._stop.is_set():
                self._lose("the service ended the lease")
        except (httpx.HTTPError, InterlockError) as exc:
            self._lose(f"{type(exc).__name__}: {exc}")
        finally:
            http.close()

    def _beat(self, period: float) -> None:
        """Heartbeat every ``period`` on a fixed schedule (over the command channel when
        local: served by a thread of its own in the service, never queued behind the
        event loop); ends on release or any failure."""
        next_at = time.monotonic()
        try:
            while True:
                next_at += period
                # Late (a busy machine): beat now, and keep the schedule from here.
                next_at = max(next_at, time.monotonic())
                if self._stop.wait(next_at - time.monotonic()):
                    return
                self.client._call(HEARTBEAT, lease_id=self.id)
        except InterlockError as exc:
            self._lose(f"{type(exc).__name__}: {exc}")
        finally:
            self._stop.set()  # one gone, both gone: the watch stream closes too

    def _lose(self, why: str) -> None:
        if self._stop.is_set() or self.lost is not None:
            return
        self.lost = why
        self._stop.set()
        log.error("lease of bench %s lost: %s", self.client.name, why)

    def release(self) -> None:
        """Give the lease back (the service trips the bench if a net is still live)."""
        if self.client._lease is not self:
            return
        self._stop.set()
        self.client._lease = None
        self.client._http.headers.pop(LEASE_HEADER, None)
        try:
            if self.lost is None:
                self.client._call(RELEASE_LEASE, lease_id=self.id)
        finally:
            for thread in self._threads:
                thread.join(timeout=5)
            self._threads = []

    def client_closing(self) -> None:
        """Its client is closing: nobody would heartbeat any more, so it is given back."""
        self.release()

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


class PlaceLease:
    """A place lease held through one client (see :meth:`Client.place_lease`)."""

    lost: str | None = None  # kept by the place, not by this process: never lost here

    def __init__(self, client: Client, lease_id: str, place: str) -> None:
        self.client = client
        self.id = lease_id
        self.place = place

    def client_closing(self) -> None:
        """Its client is closing: the lease stays with the place holder on the bench host."""
        self._forget()

    def release(self) -> None:
        """Give the lease back (the service trips the bench if a net is still live)."""
        if self.client._lease is not self:
            return
        self._forget()
        self.client._call(RELEASE_LEASE, lease_id=self.id)

    def _forget(self) -> None:
        if self.client._lease is self:
            self.client._lease = None
            self.client._http.headers.pop(LEASE_HEADER, None)
