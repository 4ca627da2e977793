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

``connect()`` reaches the service over the bench's Unix socket, reading the
role's token from the bench's tokens directory. When nothing answers and the
bench is a ``simulation`` bench, it starts a service in the background; a
service for real hardware is only ever started by someone on purpose.

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

import getpass
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypedDict

import httpx

from interlock.config import Bench, load_bench
from interlock.errors import InterlockError
from interlock.service.background import answers, start_background
from interlock.service.tokens import ROLES, read_token
from interlock.service.wire import InvalidRequest, ServiceUnavailable, result_of

log = logging.getLogger(__name__)

DEFAULT_BENCH = "bench.toml"
# Room for the slowest operation: arming, or a slew-limited ramp across a whole range.
REQUEST_TIMEOUT = 120.0
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
) -> Client:
    """A :class:`Client` of the service of ``bench``, acting in ``role``.

    ``token`` defaults to the role's token file. ``start``: when no service
    answers and the bench is a simulation bench, start one in the background.
    """
    if role not in ROLES:
        raise InvalidRequest(f'unknown role "{role}" (roles: {", ".join(ROLES)})')
    description = load_bench(bench)
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


class Client:
    """A connection to one bench's service. Close it (or use it as a context manager)."""

    def __init__(self, bench: Bench, *, role: str, token: str, who: str | None = None) -> None:
        self.bench = bench
        self.role = role
        self._headers = {
            "Authorization": f"Bearer {token}",
            "X-Interlock-User": who or _user(),
            "X-Interlock-Client": f"{Path(sys.argv[0] or 'python').name} pid {os.getpid()}",
        }
        self._http = self._new_http()
        self._lease: Lease | None = None

    def _new_http(self) -> httpx.Client:
        return httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.bench.service.socket)),
            base_url="http://interlock",
            headers=self._headers,
            timeout=httpx.Timeout(REQUEST_TIMEOUT, connect=5.0),
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
                f"service of bench {self.bench.name} on {self.bench.service.socket}: {exc}"
            ) from exc
        return result_of(response)

    @property
    def name(self) -> str:
        return self.bench.name

    @property
    def environment(self) -> str:
        return self.bench.environment

    # -- reading ---------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """State, fault, nets (setpoints, limits, last measured), relays, lease holder."""
        return self._request("GET", "/status")

    def measure(self, net: str) -> Measurement:
        result = self._request("GET", f"/nets/{_segment(net)}/measurement")
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
        self._request("PUT", f"/nets/{_segment(net)}/voltage", {"volts": volts})

    def set_current_limit(self, net: str, amps: float) -> None:
        self._request("PUT", f"/nets/{_segment(net)}/current-limit", {"amps": amps})

    def set_relay(self, relay: str, closed: bool) -> None:
        self._request("PUT", f"/relays/{_segment(relay)}", {"closed": closed})

    def output_on(self, net: str) -> None:
        """Make ``net`` live (safe-to-mate, readback, settle, window). Needs the lease."""
        self._request("PUT", f"/nets/{_segment(net)}/output", {"on": True})

    def output_off(self, net: str) -> None:
        self._request("PUT", f"/nets/{_segment(net)}/output", {"on": False})

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
        if self._lease is not None:
            self._lease.release()
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


def _segment(name: str) -> str:
    """A net or relay name as one path segment (never a path of its own)."""
    from urllib.parse import quote

    return quote(str(name), safe="")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


__all__ = ["Client", "Lease", "Measurement", "connect"]
