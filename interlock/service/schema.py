"""The service's operations, defined once: name, least role, HTTP route and arguments.

One table for both ways in and for both faces of the client library: the
HTTP routes (:mod:`.app`) take the body models below and the role each
operation names; the command channel (:mod:`.channel`) parses its JSON line
into the same models; the clients (:mod:`interlock.client`,
:mod:`interlock.client.aio`) build their requests from the same routes,
headers and argument names. A check cannot be present on one transport and
missing on the other.

Arguments are strict: ``true`` is not ``1.0`` and ``"5"`` is not ``5``; a
number too large for a float is refused; a name must be Unicode text (JSON's
``"\\udcff"`` is a lone surrogate, which no journal entry can hold). NaN and
infinities pass: the interlock refuses them itself, by its rule, on the
record. Quantities are SI numbers in fields named after their unit
(``volts``, ``amps``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model
from pydantic_core import PydanticCustomError

#: The lease held, as ``lease`` names it on the command channel.
LEASE_HEADER = "X-Interlock-Lease"
#: Who is calling and from which program, for the journal (the token alone gives the role).
USER_HEADER = "X-Interlock-User"
CLIENT_HEADER = "X-Interlock-Client"


def _unicode(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError(
            "unicode", "not Unicode text (a lone surrogate): no name, no record"
        ) from None
    return text


#: A net's or a relay's name; also the arming confirmation.
Name = Annotated[str, Field(strict=True), AfterValidator(_unicode)]


class Arguments(BaseModel):
    """An operation's arguments: strict, nothing unexpected."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ArmBody(Arguments):
    confirm: Name | None = Field(
        None, description="the bench name, typed: required to arm a flight bench"
    )


class VoltageBody(Arguments):
    volts: float = Field(description="setpoint in volts")
    measure: bool = Field(
        False, description="answer with the net's measurement once the setpoint is in force"
    )


class CurrentLimitBody(Arguments):
    amps: float = Field(description="current limit in amperes")


class OutputBody(Arguments):
    on: bool


class RelayBody(Arguments):
    closed: bool


class LeaseBody(Arguments):
    place: Name | None = Field(
        None,
        description="a place lease: held while the caller holds this labgrid place "
        '(only with [service] reservations = "labgrid")',
    )


#: A note's text is bounded: it goes to the journal whole.
MAX_NOTE = 200


class NoteBody(Arguments):
    text: Name = Field(max_length=MAX_NOTE, description="what the script is doing, briefly")
    step: int | None = Field(
        None, ge=1, le=1_000_000, description="the sequence step it begins (1-based)"
    )


@dataclass(frozen=True)
class Operation:
    """One operation of the service.

    ``target`` is the path parameter naming what it acts on (``net``, ``relay``,
    ``lease_id``); on the command channel it is an argument like the body's.
    """

    name: str
    role: str  # the least role that may (roles include the weaker ones)
    method: str
    route: str
    target: str | None = None
    body: type[Arguments] | None = None
    channel: bool = False  # carried by the command channel too

    def path(self, arguments: dict[str, Any]) -> str:
        """The HTTP path, its target quoted (a name with a "/" stays one segment)."""
        if self.target is None:
            return self.route
        return self.route.replace(f"{{{self.target}}}", quote(str(arguments[self.target]), safe=""))

    def http_body(self, arguments: dict[str, Any]) -> dict[str, Any] | None:
        if self.body is None:
            return None
        return {name: arguments[name] for name in self.body.model_fields if name in arguments}

    def channel_request(self, arguments: dict[str, Any]) -> dict[str, Any]:
        return {"op": self.name, **arguments}


class _ChannelArguments(Arguments):
    lease: str | None = None  # the lease held, as the HTTP header carries it


def _channel_model(operation: Operation) -> type[Arguments]:
    """What a command channel line holds besides ``op``: target, body fields, lease."""
    fields: dict[str, Any] = {}
    if operation.target is not None:
        fields[operation.target] = (Name, ...)
    bases = (_ChannelArguments,) if operation.body is None else (operation.body, _ChannelArguments)
    return create_model(f"{operation.name}_line", __base__=bases, **fields)


STATUS = Operation("status", "viewer", "GET", "/status", channel=True)
MEASURE = Operation("measure", "viewer", "GET", "/nets/{net}/measurement", "net", channel=True)
EVENTS = Operation("events", "viewer", "GET", "/events")
# On the command channel too: a connection's own thread serves it, behind nothing.
ESTOP = Operation("estop", "viewer", "POST", "/estop", channel=True)
SET_VOLTAGE = Operation(
    "set_voltage", "script", "PUT", "/nets/{net}/voltage", "net", VoltageBody, channel=True
)
SET_CURRENT_LIMIT = Operation(
    "set_current_limit",
    "script",
    "PUT",
    "/nets/{net}/current-limit",
    "net",
    CurrentLimitBody,
    channel=True,
)
SET_OUTPUT = Operation(
    "set_output", "script", "PUT", "/nets/{net}/output", "net", OutputBody, channel=True
)
SET_RELAY = Operation(
    "set_relay", "script", "PUT", "/relays/{relay}", "relay", RelayBody, channel=True
)
NOTE = Operation("note", "script", "POST", "/notes", body=NoteBody, channel=True)
ACQUIRE_LEASE = Operation("acquire_lease", "script", "POST", "/leases", body=LeaseBody)
HEARTBEAT = Operation(
    "heartbeat", "script", "POST", "/leases/{lease_id}/heartbeat", "lease_id", channel=True
)
WATCH_LEASE = Operation("watch_lease", "script", "GET", "/leases/{lease_id}/watch", "lease_id")
RELEASE_LEASE = Operation("release_lease", "script", "DELETE", "/leases/{lease_id}", "lease_id")
ARM = Operation("arm", "operator", "POST", "/arm", body=ArmBody)
DISARM = Operation("disarm", "operator", "POST", "/disarm")
RESET = Operation("reset", "operator", "POST", "/reset")

OPERATIONS = (
    STATUS,
    MEASURE,
    EVENTS,
    ESTOP,
    SET_VOLTAGE,
    SET_CURRENT_LIMIT,
    SET_OUTPUT,
    SET_RELAY,
    NOTE,
    ACQUIRE_LEASE,
    HEARTBEAT,
    WATCH_LEASE,
    RELEASE_LEASE,
    ARM,
    DISARM,
    RESET,
)
#: The command channel's operations, by their ``op``, with the model its line is parsed into.
CHANNEL: dict[str, tuple[Operation, type[Arguments]]] = {
    op.name: (op, _channel_model(op)) for op in OPERATIONS if op.channel
}


# A setpoint that is not a number is most often one written with its unit, as the
# configuration files write them: the wire takes SI numbers.
_SI = {"volts": "volts", "amps": "amperes"}
_NOT_A_NUMBER = ("float_parsing", "float_type")


def _said(error: Any) -> str:
    loc = error.get("loc", ())
    field = str(loc[-1]) if loc else ""
    if field in _SI and error.get("type") in _NOT_A_NUMBER:
        said = f"expected a plain number of {_SI[field]} (5.0, 0.25)"
        # Of the input, its type alone: a message never echoes what was sent.
        return said + (", not a text with its unit" if isinstance(error.get("input"), str) else "")
    return str(error.get("msg", ""))


def summary(errors: list[Any], prefix: str = "") -> str:
    """pydantic's errors in one line, ``where: what; ...``, never echoing the input."""
    return "; ".join(
        f"{prefix}{'.'.join(str(part) for part in error.get('loc', ()))}: {_said(error)}"
        for error in errors
    )


__all__ = [
    "CHANNEL",
    "CLIENT_HEADER",
    "LEASE_HEADER",
    "OPERATIONS",
    "USER_HEADER",
    "Arguments",
    "Name",
    "Operation",
    "summary",
]
