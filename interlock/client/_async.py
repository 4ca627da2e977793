"""The async face of the client library: :func:`connect_async`, :class:`AsyncClient`.

The same operations as the sync face, built from the same definitions
(:mod:`interlock.service.schema`) and decoded the same way
(:mod:`interlock.service.wire`), for programs that run an event loop (the
operator console). Everything goes over the HTTP API: the command channel
saves a tight loop of script requests their HTTP cost, which an event loop
waiting on people and streams does not need.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from interlock.client._common import (
    CONNECT_TIMEOUT,
    DEFAULT_BENCH,
    REQUEST_TIMEOUT,
    Measurement,
    Remote,
    http_call,
    http_options,
    identity_headers,
    resolve,
    token_of,
    unavailable,
)
from interlock.config import Bench
from interlock.errors import InterlockError
from interlock.service.schema import (
    ACQUIRE_LEASE,
    ARM,
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
    WATCH_LEASE,
    Operation,
)
from interlock.service.wire import InvalidRequest, result_of

log = logging.getLogger(__name__)


def connect_async(
    bench: str | Path | None = DEFAULT_BENCH,
    *,
    role: str = "script",
    token: str | None = None,
    who: str | None = None,
    address: str | None = None,
    ca: str | Path | None = None,
) -> AsyncClient:
    """An :class:`AsyncClient` of the service of ``bench``, acting in ``role``.

    As :func:`~interlock.client.connect`, except that it never starts a service
    (that takes seconds of blocking work; ``interlock serve`` or the sync
    ``connect`` does it) and sends nothing until the first call.
    """
    description, remote = resolve(bench, role, token, address, ca)
    token = token_of(description, role, token)
    return AsyncClient(description, role=role, token=token, who=who, remote=remote)


class AsyncClient:
    """A connection to one bench's service, for ``await``. Close it with :meth:`aclose`
    (or use it as an async context manager).

    ``timeout`` bounds each request, reading included (a service that hangs is
    found out in that time); ``program`` names the calling program in the journal.
    """

    def __init__(
        self,
        bench: Bench,
        *,
        role: str,
        token: str,
        who: str | None = None,
        remote: Remote | None = None,
        program: str | None = None,
        timeout: float = REQUEST_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.bench = bench
        self.role = role
        self.remote = remote
        self._http = httpx.AsyncClient(
            headers=identity_headers(token, who, program),
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            **http_options(bench, remote, httpx.AsyncHTTPTransport),
        )
        self._lease: AsyncLease | None = None

    @property
    def where(self) -> str:
        return self.remote.url if self.remote else str(self.bench.service.socket)

    @property
    def name(self) -> str:
        return self.bench.name

    async def _call(self, operation: Operation, **arguments: Any) -> Any:
        call = http_call(operation, arguments)
        try:
            response = await self._http.request(
                call.method, call.path, content=call.content, headers=call.headers
            )
        except httpx.TransportError as exc:
            raise unavailable(f"service of bench {self.bench.name} on {self.where}", exc) from exc
        return result_of(response)

    # -- reading ---------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        return await self._call(STATUS)

    async def measure(self, net: str) -> Measurement:
        result = await self._call(MEASURE, net=net)
        return Measurement(voltage=result["voltage"], current=result["current"])

    async def events(
        self, period: float = 1.0, *, quiet: float | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Live events and a status every ``period`` seconds, as the sync face's.

        ``quiet``: a stream silent this long is a service that hangs (ServiceUnavailable).
        """
        try:
            async with self._http.stream(
                EVENTS.method,
                EVENTS.path({}),
                params={"period": period},
                timeout=httpx.Timeout(10, read=quiet),
            ) as response:
                if not response.is_success:
                    await response.aread()
                    result_of(response)
                async for line in response.aiter_lines():
                    if line:
                        yield json.loads(line)
        except httpx.TransportError as exc:
            raise unavailable(f"event stream of bench {self.bench.name}", exc) from exc

    # -- operator: each returns the bench's status after it ------------------------------

    async def arm(self, confirm: str | None = None) -> dict[str, Any]:
        return await self._call(ARM, confirm=confirm)

    async def disarm(self) -> dict[str, Any]:
        return await self._call(DISARM)

    async def reset(self) -> dict[str, Any]:
        return await self._call(RESET)

    async def estop(self) -> dict[str, Any]:
        return await self._call(ESTOP)

    # -- script ----------------------------------------------------------------------------

    async def set_voltage(
        self, net: str, volts: float, *, measure: bool = False
    ) -> Measurement | None:
        """As :meth:`interlock.Client.set_voltage`."""
        if not measure:
            await self._call(SET_VOLTAGE, net=net, volts=volts)
            return None
        result = (await self._call(SET_VOLTAGE, net=net, volts=volts, measure=True))["measurement"]
        return Measurement(voltage=result["voltage"], current=result["current"])

    async def set_current_limit(self, net: str, amps: float) -> None:
        await self._call(SET_CURRENT_LIMIT, net=net, amps=amps)

    async def set_relay(self, relay: str, closed: bool) -> None:
        await self._call(SET_RELAY, relay=relay, closed=closed)

    async def output_on(self, net: str) -> None:
        await self._call(SET_OUTPUT, net=net, on=True)

    async def output_off(self, net: str) -> None:
        await self._call(SET_OUTPUT, net=net, on=False)

    async def note(self, text: str, step: int | None = None) -> None:
        """As :meth:`interlock.Client.note`."""
        await self._call(NOTE, text=text, step=step)

    # -- lease ---------------------------------------------------------------------------------

    def lease(self) -> AsyncLease:
        """The bench's lease, as an async context manager, heartbeating in a task."""
        return AsyncLease(self)

    @property
    def lease_lost(self) -> str | None:
        return self._lease.lost if self._lease else None

    # -- life cycle ------------------------------------------------------------------------------

    async def aclose(self) -> None:
        try:
            if self._lease is not None:
                await self._lease.release()
        finally:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        where = f"{self.name} [{self.bench.environment}]"
        return f"<interlock.AsyncClient bench {where} as {self.role}>"


class AsyncLease:
    """The bench's lease held by one :class:`AsyncClient`, as the sync :class:`Lease` is."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.id: str | None = None
        self.timeout = 0.0
        self.lost: str | None = None
        self._released = False
        self._task: asyncio.Task[None] | None = None

    async def acquire(self) -> AsyncLease:
        if self.client._lease is not None:
            raise InvalidRequest("this client already holds the lease")
        granted = await self.client._call(ACQUIRE_LEASE)
        self.id, self.timeout = granted["id"], float(granted["timeout"])
        self.client._http.headers[LEASE_HEADER] = self.id
        self.client._lease = self
        self._task = asyncio.create_task(self._keep(float(granted["heartbeat"])))
        return self

    async def _keep(self, period: float) -> None:
        """Hold the watch stream open and heartbeat on a schedule of its own (a task
        beside the stream: a late line never delays a heartbeat); ends on release
        (cancelled) or a failure."""
        beating = asyncio.create_task(self._beat(period))
        try:
            await self._watch()
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating

    async def _watch(self) -> None:
        http = self.client._http
        try:
            async with http.stream(
                WATCH_LEASE.method,
                WATCH_LEASE.path({"lease_id": self.id}),
                timeout=httpx.Timeout(10, read=max(1.0, self.timeout)),
            ) as response:
                if not response.is_success:
                    await response.aread()
                    result_of(response)
                async for line in response.aiter_lines():
                    if line and json.loads(line).get("ended"):
                        break
            self._lose("the service ended the lease")
        except (httpx.HTTPError, InterlockError) as exc:
            self._lose(f"{type(exc).__name__}: {exc}")

    async def _beat(self, period: float) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        try:
            while True:
                next_at = max(next_at + period, loop.time())
                await asyncio.sleep(next_at - loop.time())
                await self.client._call(HEARTBEAT, lease_id=self.id)
        except InterlockError as exc:
            self._lose(f"{type(exc).__name__}: {exc}")
            # One gone, both gone: end the watch stream too.
            task = self._task
            if task is not None:
                task.cancel()

    def _lose(self, why: str) -> None:
        if self._released or self.lost is not None:
            return
        self.lost = why
        log.error("lease of bench %s lost: %s", self.client.name, why)

    async def release(self) -> None:
        """Give the lease back (the service trips the bench if a net is still live).

        Given back first, then the watch stream closed: a stream that drops before
        the release is a lost lease.
        """
        if self.client._lease is not self:
            return
        self._released = True
        self.client._lease = None
        self.client._http.headers.pop(LEASE_HEADER, None)
        try:
            if self.lost is None:
                await self.client._call(RELEASE_LEASE, lease_id=self.id)
        finally:
            task, self._task = self._task, None
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def __aenter__(self) -> AsyncLease:
        return await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await self.release()
        except InterlockError:
            if exc is None:
                raise
            log.exception("releasing the lease after %s", exc_type.__name__ if exc_type else "")
