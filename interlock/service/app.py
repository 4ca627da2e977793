"""The HTTP/JSON API of the controller service (FastAPI).

Routes and the role each needs (roles include the weaker ones):

========================================  ========  =========================================
``GET /status``                            viewer    state, fault, nets, relays, lease holder
``GET /events``                            viewer    NDJSON stream: status, then events
``GET /nets/{net}/measurement``            viewer    measured voltage and current
``POST /estop``                            viewer    anyone authenticated may stop the bench
``PUT /nets/{net}/voltage``                script    ``{"volts": 5.0}``
``PUT /nets/{net}/current-limit``          script    ``{"amps": 0.2}``
``PUT /nets/{net}/output``                 script    ``{"on": true}`` (on needs the lease)
``PUT /relays/{relay}``                    script    ``{"closed": true}``
``POST /leases``                           script    take the bench's lease (``{"place": ...}``)
``POST /leases/{id}/heartbeat``            script    keep it
``GET /leases/{id}/watch``                 script    NDJSON stream; its drop loses the lease
``DELETE /leases/{id}``                    script    give it back
``POST /arm``                              operator  ``{"confirm": "<bench name>"}`` on flight
``POST /disarm``, ``POST /reset``          operator
``GET /openapi.json``                      viewer    this API's schema
========================================  ========  =========================================

Quantities are SI numbers in fields named after their unit (``volts``,
``amps``). Errors come back as ``{"error": <class>, "message": ...}`` (see
:mod:`.wire`): 401/403 access, 409 state or lease, 422 refused by a limit
(``rule``, ``where``, ``reason``) or malformed, 502 instrument, 503 journal;
408 and 413 for a body too slow or too large (:mod:`.guard`: the token is
checked before any body is read).
While a client holds the lease, setpoint and relay changes from anyone else
are refused; turning outputs off and stopping are never refused for that.

Each route's path, method, least role and body are those of its operation
in :mod:`.schema`, the one definition the command channel and the clients
use too.
"""

# No ``from __future__ import annotations``: each route's caller annotation is built from
# its operation (see ``caller``), which FastAPI can only read as an object.
import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute

from interlock.controller import Controller
from interlock.controller.stop_first import stopping
from interlock.errors import InterlockError
from interlock.service.access import Access, Gatekeeper, Identity
from interlock.service.actions import ScriptActions
from interlock.service.guard import RequestGuard
from interlock.service.refusals import RefusalLog
from interlock.service.runtime import Service
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
    ArmBody,
    CurrentLimitBody,
    LeaseBody,
    NoteBody,
    Operation,
    OutputBody,
    RelayBody,
    VoltageBody,
    summary,
)
from interlock.service.wire import AccessDenied, error_to_wire, status_of

log = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"

Viewer = Annotated[Identity, Depends(Access("viewer"))]


def caller(operation: Operation) -> Any:
    """A route's caller: its :class:`Identity`, if its role is at least the operation's."""
    return Annotated[Identity, Depends(Access(operation.role, operation.name))]


_ERROR = {"content": {"application/json": {"schema": {"type": "object"}}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no valid token", **_ERROR},
    403: {"description": "the role may not do this", **_ERROR},
    404: {"description": "no such route (a name with a '/' in it)", **_ERROR},
    408: {"description": "the body did not arrive in time", **_ERROR},
    409: {"description": "not allowed in this state, or the bench is leased", **_ERROR},
    413: {"description": "the body is larger than any the API takes", **_ERROR},
    422: {"description": "refused by a limit, or a malformed request", **_ERROR},
    502: {"description": "an instrument failed (the bench was driven safe)", **_ERROR},
    503: {"description": "the journal cannot be written (nothing was done)", **_ERROR},
}


def _line(item: dict[str, Any]) -> bytes:
    return (json.dumps(item, separators=(",", ":"), default=str) + "\n").encode()


def create_app(service: Service, gate: Gatekeeper | None = None) -> FastAPI:
    """The API of ``service`` (opened and closed by its owner, not by the app).

    ``gate`` tells roles and counts refusals (shared with the command channel);
    by default one of the app's own.
    """
    app = FastAPI(
        title=f"interlock controller: bench {service.bench.name} [{service.bench.environment}]",
        version="1",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        responses=ERRORS,
    )
    app.state.service = service
    app.state.gate = gate or Gatekeeper(
        service.tokens, RefusalLog(lambda: service.journal), lambda: service.reservations
    )
    app.add_middleware(RequestGuard, gate=app.state.gate)

    actions = ScriptActions(service)

    def route(operation: Operation, **options: Any) -> Any:
        return app.api_route(operation.route, methods=[operation.method], **options)

    def controller() -> Controller:  # InterlockError while the service is down
        return service.require_controller()

    # -- errors ------------------------------------------------------------------

    @app.exception_handler(InterlockError)
    async def interlock_error(request: Request, error: InterlockError) -> JSONResponse:
        status = status_of(error)
        headers = None
        if isinstance(error, AccessDenied) and error.role is None:
            status, headers = 401, {"WWW-Authenticate": "Bearer"}
        if status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, error)
        return JSONResponse(error_to_wire(error), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = jsonable_encoder(error.errors(), exclude={"input", "ctx"})
        # The message from the errors as raised (the input's type is read, never shown),
        # as the command channel makes it: one answer whichever way a body comes.
        message = summary(error.errors())[:1000]
        body = {"error": "InvalidRequest", "message": message, "detail": problems}
        return JSONResponse(body, status_code=422)

    # -- reading -----------------------------------------------------------------

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(_: Viewer) -> dict[str, Any]:
        return app.openapi()

    @route(STATUS, summary="the bench's state")
    def status(who: caller(STATUS)) -> dict[str, Any]:
        return actions.status(who)

    @route(MEASURE, summary="measure a net's voltage and current")
    def measure(net: str, _: caller(MEASURE)) -> dict[str, float]:
        return actions.measure(net)

    @route(
        EVENTS,
        summary="live state and events (newline-delimited JSON)",
        response_class=StreamingResponse,
        responses={200: {"content": {NDJSON: {}}}},
    )
    async def events(
        _: caller(EVENTS),
        period: Annotated[float, Query(ge=0.05, le=60, description="seconds between status")] = 1.0,
    ) -> StreamingResponse:
        return StreamingResponse(_event_lines(service, period), media_type=NDJSON)

    # -- operator ----------------------------------------------------------------

    @route(ARM, summary="arm the bench (operator; flight benches need confirm)")
    def arm(who: caller(ARM), body: ArmBody | None = None) -> dict[str, Any]:
        controller().arm(who.who, confirm=body.confirm if body else None, client=who.client)
        return service.status()

    @route(DISARM, summary="disarm the bench (operator)")
    def disarm(who: caller(DISARM)) -> dict[str, Any]:
        # The controller opens every relay and verifies the safe state before disarming.
        controller().disarm(who.who, client=who.client)
        return service.status()

    @route(RESET, summary="clear a latched fault after verifying the safe state (operator)")
    def reset(who: caller(RESET)) -> dict[str, Any]:
        controller().reset(who.who, client=who.client)
        return service.status()

    @route(ESTOP, summary="emergency stop: anyone authenticated may")
    async def estop(who: caller(ESTOP)) -> dict[str, Any]:
        # Run right here on the event loop, not queued for a worker thread: for these few
        # milliseconds nothing else the service does matters more.
        with stopping():
            return actions.estop(who)

    # -- script --------------------------------------------------------------------

    @route(SET_VOLTAGE, summary="program a net's voltage (ramped if live)")
    def set_voltage(
        net: str, body: VoltageBody, who: caller(SET_VOLTAGE), request: Request
    ) -> dict[str, Any]:
        measured = actions.set_voltage(
            who, request.headers.get(LEASE_HEADER), net, body.volts, body.measure
        )
        status = service.status()
        return status if measured is None else {**status, "measurement": measured}

    @route(SET_CURRENT_LIMIT, summary="program a net's current limit")
    def set_current_limit(
        net: str, body: CurrentLimitBody, who: caller(SET_CURRENT_LIMIT), request: Request
    ) -> dict[str, Any]:
        actions.set_current_limit(who, request.headers.get(LEASE_HEADER), net, body.amps)
        return service.status()

    @route(
        SET_OUTPUT,
        summary="turn a net's output on (lease holder only) or off (anyone with script)",
        description=f"Turning on needs the bench's lease: send its id in {LEASE_HEADER}.",
    )
    def set_output(
        net: str, body: OutputBody, who: caller(SET_OUTPUT), request: Request
    ) -> dict[str, Any]:
        actions.set_output(who, request.headers.get(LEASE_HEADER), net, body.on)
        return service.status()

    @route(SET_RELAY, summary="close or open a relay")
    def set_relay(
        relay: str, body: RelayBody, who: caller(SET_RELAY), request: Request
    ) -> dict[str, Any]:
        actions.set_relay(who, request.headers.get(LEASE_HEADER), relay, body.closed)
        return service.status()

    @route(NOTE, summary="journal a marker in the run (a step begun, say)")
    def note(body: NoteBody, who: caller(NOTE), request: Request) -> None:
        actions.note(who, request.headers.get(LEASE_HEADER), body.text, body.step)

    # -- leases ----------------------------------------------------------------------

    @route(ACQUIRE_LEASE, status_code=201, summary="take the bench's lease (dead man's switch)")
    def acquire(who: caller(ACQUIRE_LEASE), body: LeaseBody | None = None) -> dict[str, Any]:
        place = body.place if body else None
        lease = service.acquire_lease(who, place)
        leases = service.leases
        return {
            "id": lease.id,
            "timeout": lease.timeout,
            "heartbeat": lease.timeout / 4,
            "holder": lease.public(leases.clock()),
        }

    @route(HEARTBEAT, summary="keep the lease")
    def heartbeat(lease_id: str, _: caller(HEARTBEAT)) -> dict[str, Any]:
        return actions.heartbeat(lease_id)

    @route(RELEASE_LEASE, summary="give the lease back (trips if a net is live)")
    def release(lease_id: str, _: caller(RELEASE_LEASE)) -> dict[str, Any]:
        service.leases.release(lease_id)
        return service.status()

    @route(
        WATCH_LEASE,
        summary="hold this open while holding the lease: if it drops, the lease is lost",
        response_class=StreamingResponse,
        responses={200: {"content": {NDJSON: {}}}},
    )
    async def watch(lease_id: str, _: caller(WATCH_LEASE)) -> StreamingResponse:
        lease = service.leases.watch_opened(lease_id)
        return StreamingResponse(_watch_lines(service, lease), media_type=NDJSON)

    _document_roles(app)
    return app


def _document_roles(app: FastAPI) -> None:
    """Put the least role each route needs into its OpenAPI operation (``x-interlock-role``).

    Read from the route's own :class:`Access` dependency: one source of truth.
    """
    for route in app.routes:
        if isinstance(route, APIRoute):
            for dependency in route.dependant.dependencies:
                if isinstance(dependency.call, Access):
                    route.openapi_extra = {"x-interlock-role": dependency.call.needs}


async def _event_lines(service: Service, period: float) -> AsyncIterator[bytes]:
    queue = service.events.subscribe()
    loop = asyncio.get_running_loop()
    try:
        yield _line({"event": "status", **service.status()})
        next_status = loop.time() + period
        while not service.stopping.is_set():
            # Wake at least every 0.25 s, so a stopping service is never held up by a stream.
            wait = min(0.25, max(0.0, next_status - loop.time()))
            with contextlib.suppress(TimeoutError):
                yield _line(await asyncio.wait_for(queue.get(), wait))
            if loop.time() >= next_status:
                next_status += period
                yield _line({"event": "status", **service.status()})
    finally:
        service.events.unsubscribe(queue)


async def _watch_lines(service: Service, lease: Any) -> AsyncIterator[bytes]:
    leases = service.leases
    try:
        while not service.stopping.is_set() and leases.holder() is lease:
            yield _line(
                {"event": "lease", "expires_in": round(lease.expires_in(leases.clock()), 3)}
            )
            await asyncio.sleep(min(0.25, lease.timeout / 4))
        yield _line({"event": "lease", "ended": True})
    finally:
        # Reached on a normal end and when the client's connection drops (cancellation).
        leases.watch_closed(lease)
