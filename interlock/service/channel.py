"""The command channel: a script's fast way in, next to the HTTP API.

A test sequence changes setpoints and measures in tight loops; through HTTP
each call costs more than the instrument exchange it stands for. The
command channel carries the same script actions (:mod:`.actions`: the same
checks, the same journal, the same errors) as newline-delimited JSON over a
Unix socket of its own, next to the HTTP one (``interlock.sock`` ->
``interlock.cmd.sock``, owner-only, local only). Each connection is served
by a thread of its own, with blocking I/O: nothing between the line and the
controller but JSON. Operator actions, taking and giving back
leases and the event streams stay on HTTP. The emergency stop is on both: on
the channel it is served by its connection's own thread, behind no other
request (on HTTP it runs on the server's event loop).

Protocol (one JSON object per line, UTF-8, at most :data:`~.wire.MAX_LINE` bytes;
strictly one reply per request, in order)::

    -> {"hello": 1, "token": "...", "user": "alice", "client": "soak.py pid 42"}
    <- {"ok": {"role": "script", "bench": "bench-07"}}
    -> {"op": "set_voltage", "net": "VLOGIC", "volts": 5.0, "lease": "..."}
    <- {"ok": null}
    -> {"op": "measure", "net": "VLOGIC"}
    <- {"ok": {"voltage": 5.0, "current": 0.15}}
    -> {"op": "set_voltage", "net": "VLOGIC", "volts": 9.0}
    <- {"error": "LimitViolation", "message": "...", "rule": "...", "where": "...", ...}

Operations and the least role each needs: ``status``, ``measure`` and
``estop`` (viewer); ``set_voltage`` (``volts``), ``set_current_limit`` (``amps``),
``set_relay`` (``relay``, ``closed``), ``set_output`` (``on``), ``note``
(``text``, ``step``: a marker in the run's journal) and ``heartbeat``
(``lease_id``: a lease's heartbeat, served by the connection's own thread,
never queued behind the HTTP server's event loop) (script).
Each line is parsed into the model its HTTP route takes, defined once in
:mod:`.schema` (strict: ``true`` is not ``1.0``, ``"5"`` is not ``5``).
``lease`` names the lease held, as the HTTP ``X-Interlock-Lease`` header
does. Errors are those of the HTTP API (:mod:`.wire`). A bad token ends the
connection after its error; a malformed request gets an ``InvalidRequest``
and the connection goes on; an over-long line ends it. Refusals of access
are counted and journaled as on HTTP (:mod:`.refusals`), with ``channel``
and ``op`` instead of the path. No error repeats what the hello said: it
may hold a token.

Connections are bounded per role (:data:`QUOTAS`), each role's room its
own, so that viewers or scripts that never let go cannot keep an operator
out; a connection beyond its role's quota is told so after its hello
(``ServiceUnavailable``) and closed. A connection has :data:`HELLO_TIMEOUT_S`
for its whole hello; at most :data:`MAX_PENDING` wait for theirs, at most
:data:`MAX_PENDING_PER_PEER` from one process, so that one that opens
connections and says nothing cannot keep the others from saying hello.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from interlock.controller.stop_first import stopping, yield_to_stop
from interlock.errors import InterlockError
from interlock.service.access import UNIX_PEER, Gatekeeper, Identity
from interlock.service.actions import ScriptActions
from interlock.service.schema import (
    CHANNEL,
    ESTOP,
    HEARTBEAT,
    MEASURE,
    NOTE,
    SET_CURRENT_LIMIT,
    SET_OUTPUT,
    SET_RELAY,
    SET_VOLTAGE,
    STATUS,
    Operation,
    summary,
)
from interlock.service.wire import (
    CHANNEL_VERSION,
    MAX_LINE,
    InvalidRequest,
    LineReader,
    LineTooLong,
    ServiceUnavailable,
    error_to_wire,
    status_of,
)

log = logging.getLogger(__name__)

#: Connections served at once per role, past their hello; one more is told so and closed.
QUOTAS = {"viewer": 16, "script": 64, "operator": 16}
#: Connections still waiting for their hello, in all and from one process (its pid);
#: one more is told so and closed.
MAX_PENDING = 64
MAX_PENDING_PER_PEER = 16
MAX_CONNECTIONS = MAX_PENDING + sum(QUOTAS.values())
#: A connection's whole hello must arrive within this; an idle one is closed after
#: IDLE_TIMEOUT_S (the Python client opens a new one when it next needs one).
HELLO_TIMEOUT_S = 2.0
IDLE_TIMEOUT_S = 600.0
# How often the accepting thread looks at the stopping flag; how long it backs off
# after a failed accept (out of file descriptors, say) before it tries again.
ACCEPT_POLL_S = 0.25
ACCEPT_BACKOFF_S = 0.1
# How long stop() waits for requests under way to finish.
STOP_WAIT_S = 5.0


# op -> handler(actions, who, lease, arguments): the arguments parsed by the op's model
# (interlock.service.schema), the same models the HTTP routes take.
_Handler = Callable[[ScriptActions, Identity, str | None, Any], Any]
HANDLERS: dict[str, _Handler] = {
    STATUS.name: lambda actions, who, lease, a: actions.status(who),
    MEASURE.name: lambda actions, who, lease, a: actions.measure(a.net),
    SET_VOLTAGE.name: lambda actions, who, lease, a: _measured(
        actions.set_voltage(who, lease, a.net, a.volts, a.measure)
    ),
    SET_CURRENT_LIMIT.name: (
        lambda actions, who, lease, a: actions.set_current_limit(who, lease, a.net, a.amps)
    ),
    SET_RELAY.name: lambda actions, who, lease, a: actions.set_relay(who, lease, a.relay, a.closed),
    SET_OUTPUT.name: lambda actions, who, lease, a: actions.set_output(who, lease, a.net, a.on),
    NOTE.name: lambda actions, who, lease, a: actions.note(who, lease, a.text, a.step),
    HEARTBEAT.name: lambda actions, who, lease, a: actions.heartbeat(a.lease_id),
    ESTOP.name: lambda actions, who, lease, a: actions.estop(who),
}


def _measured(measurement: dict[str, float] | None) -> dict[str, Any] | None:
    """A change asked with its measurement answers ``{"measurement": ...}`` (as on HTTP,
    beside the status there)."""
    return None if measurement is None else {"measurement": measurement}


# Built once: json.dumps/loads with options build a new coder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)
_DECODER = json.JSONDecoder()


def _encode(reply: dict[str, Any]) -> bytes:
    return (_ENCODER.encode(reply) + "\n").encode()


def _decode(line: bytes) -> dict[str, Any]:
    try:
        request = _DECODER.decode(line.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidRequest(f"not a JSON line: {exc}"[:300]) from None
    if not isinstance(request, dict):
        raise InvalidRequest("a request is a JSON object")
    return request


class CommandChannel:
    """Serves the command channel of ``service`` on a bound Unix socket ``listening``."""

    def __init__(self, service: Any, listening: socket.socket, gate: Gatekeeper) -> None:
        self.service = service
        self.gate = gate
        self.actions = ScriptActions(service)
        self._listening = listening
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._roles: dict[socket.socket, str] = {}  # past their hello
        self._peers: dict[socket.socket, int] = {}  # the pid of each connection's process
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._next: socket.socket | None = None  # bound again: accepted on from the next poll

    # -- life cycle -----------------------------------------------------------------

    def start(self) -> CommandChannel:
        self._listening.listen(MAX_CONNECTIONS)
        self._listening.settimeout(ACCEPT_POLL_S)
        self._thread = threading.Thread(target=self._accept, name="interlock-channel", daemon=True)
        self._thread.start()
        return self

    def listen_on(self, listening: socket.socket) -> None:
        """Accept on ``listening`` from the next poll on (the socket's file was removed and
        bound again): connections already made go on."""
        listening.listen(MAX_CONNECTIONS)
        listening.settimeout(ACCEPT_POLL_S)
        self._next = listening

    def stop(self) -> None:
        """Stop accepting, then end every connection once its request under way is answered."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=ACCEPT_POLL_S * 4)
            self._thread = None
        self._listening.close()  # from now on a client is refused at once, not queued
        if self._next is not None:
            self._next.close()
        with self._lock:
            connections = dict(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RD)  # ends a wait for the next line, not a reply
        deadline = time.monotonic() + STOP_WAIT_S
        for thread in connections.values():
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _accept(self) -> None:
        while not self._stopping.is_set():
            if self._next is not None:  # taken here, so that no accept is under way on it
                previous, self._listening, self._next = self._listening, self._next, None
                previous.close()
            try:
                conn, _ = self._listening.accept()
            except TimeoutError:
                continue
            except OSError as error:
                if self._stopping.is_set() or self._listening.fileno() < 0:
                    return
                # Out of descriptors or buffers, an aborted connection: serve on.
                log.error("command channel: accept failed (%s); retrying", error)
                time.sleep(ACCEPT_BACKOFF_S)
                continue
            thread = threading.Thread(
                target=self._serve, args=(conn,), name="interlock-channel-conn", daemon=True
            )
            peer = _peer_pid(conn)
            with self._lock:
                waiting = [c for c in self._connections if c not in self._roles]
                crowded = len(waiting) >= MAX_PENDING
                of_peer = sum(1 for c in waiting if self._peers.get(c) == peer)
                admitted = not crowded and of_peer < MAX_PENDING_PER_PEER
                if admitted:
                    self._connections[conn] = thread
                    self._peers[conn] = peer
            if not admitted:
                whose = f"{MAX_PENDING}" if crowded else f"{of_peer} of this process's"
                error = ServiceUnavailable(
                    f"{whose} command channel connections are waiting for their hello: "
                    f"say hello on those, or wait {HELLO_TIMEOUT_S:g} s"
                )
                self._refuse(conn, error)
                continue
            thread.start()

    @staticmethod
    def _refuse(conn: socket.socket, error: InterlockError) -> None:
        with contextlib.suppress(OSError):
            conn.settimeout(0.1)  # a client that reads nothing cannot hold the accepting thread
            conn.sendall(_encode(error_to_wire(error)))
        conn.close()

    def _admit(self, conn: socket.socket, role: str) -> bool:
        """Take a place in ``role``'s quota for ``conn``, if one is free."""
        with self._lock:
            if sum(1 for r in self._roles.values() if r == role) >= QUOTAS[role]:
                return False
            self._roles[conn] = role
            return True

    # -- one connection --------------------------------------------------------------

    def _serve(self, conn: socket.socket) -> None:
        lines = LineReader(conn)
        try:
            identity = self._hello(conn, lines)
            if identity is None:
                return
            if not self._admit(conn, identity.role):
                error = ServiceUnavailable(
                    f"the {identity.role} role already has {QUOTAS[identity.role]} command "
                    "channel connections, its most: close one of them first"
                )
                conn.sendall(_encode(error_to_wire(error)))
                return
            conn.sendall(_encode({"ok": {"role": identity.role, "bench": self.service.bench.name}}))
            conn.settimeout(IDLE_TIMEOUT_S)
            while not self._stopping.is_set():
                line = lines.next()
                if line is None:
                    return
                if self.service.stopping.is_set():
                    error = ServiceUnavailable("the service is stopping")
                    conn.sendall(_encode(error_to_wire(error)))
                    return
                conn.sendall(self._answer(identity, line))
        except LineTooLong:
            with contextlib.suppress(OSError):
                error = InvalidRequest(f"line longer than {MAX_LINE} bytes: connection closed")
                conn.sendall(_encode(error_to_wire(error)))
        except OSError:
            pass  # the client went away or fell silent, or the service is stopping
        finally:
            with self._lock:
                self._connections.pop(conn, None)
                self._roles.pop(conn, None)
                self._peers.pop(conn, None)
            conn.close()

    def _hello(self, conn: socket.socket, lines: LineReader) -> Identity | None:
        """Who is calling, or None (answered with the error, never with what they sent)."""
        try:
            line = lines.next(deadline=time.monotonic() + HELLO_TIMEOUT_S)
        except TimeoutError:
            error = InvalidRequest(f"no hello within {HELLO_TIMEOUT_S:g} s: connection closed")
            conn.sendall(_encode(error_to_wire(error)))
            return None
        if line is None:
            return None
        try:
            try:
                hello = _DECODER.decode(line.decode("utf-8"))
            except (ValueError, RecursionError):
                hello = None
            expected = f'{{"hello": {CHANNEL_VERSION}, "token": "..."}}'
            if not isinstance(hello, dict):
                raise InvalidRequest(f"the first line must be a JSON hello: {expected}")
            version = hello.get("hello")
            if type(version) is not int or version != CHANNEL_VERSION:
                seen = f"version {version}" if type(version) is int else "no version number"
                raise InvalidRequest(
                    f"the first line must be a hello of version {CHANNEL_VERSION} "
                    f"({expected}), got {seen}"
                )
            token = hello.get("token")
            return self.gate.authorize(
                token if isinstance(token, str) else None,
                _optional_text(hello.get("user")),
                _optional_text(hello.get("client")),
                "viewer",
                peer=UNIX_PEER,
                channel="command",
                op="hello",
            )
        except InterlockError as error:
            conn.sendall(_encode(error_to_wire(error)))
            return None

    def _answer(self, identity: Identity, line: bytes) -> bytes:
        op = None
        try:
            request = _decode(line)
            op = request.get("op")
            found = CHANNEL.get(op) if isinstance(op, str) else None
            if found is None:
                raise InvalidRequest(f"unknown op {op!r} (ops: {', '.join(CHANNEL)})"[:300])
            operation, model = found
            if operation is ESTOP:
                with stopping():
                    return self._handle(identity, operation, model, request)
            if operation is not HEARTBEAT:  # a lease's heartbeat goes on through a stop
                yield_to_stop()  # a request begun now would only slow a stop under way
            return self._handle(identity, operation, model, request)
        except InterlockError as error:
            if status_of(error) >= 500:
                log.warning("command channel %s: %s", op, error)
            return _encode(error_to_wire(error))
        except Exception as error:  # a bug: answer, keep serving, leave the trace in the log
            log.exception("command channel %s", op)
            return _encode(error_to_wire(InterlockError(f"internal error: {error!r}"[:300])))

    def _handle(
        self, identity: Identity, operation: Operation, model: Any, request: dict[str, Any]
    ) -> bytes:
        op = operation.name
        # Access first, as on HTTP: a refused role is journaled whatever the arguments.
        self.gate.require_role(identity, operation.role, peer=UNIX_PEER, channel="command", op=op)
        del request["op"]
        try:
            arguments = model.model_validate(request)
        except ValidationError as invalid:
            raise InvalidRequest(summary(invalid.errors(), f"{op}: ")[:300]) from None
        result = HANDLERS[op](self.actions, identity, arguments.lease, arguments)
        return _encode({"ok": result})


def _peer_pid(conn: socket.socket) -> int:
    """The pid of the process at the other end of a Unix socket connection (Linux), or -1."""
    try:
        pid, _, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    except (OSError, AttributeError, struct.error):
        return -1
    return pid


def _optional_text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
