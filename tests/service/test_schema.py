"""One schema for both transports: the HTTP routes and the command channel take the same models."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from interlock.service import channel
from interlock.service.app import create_app
from interlock.service.runtime import Service
from interlock.service.schema import CHANNEL, OPERATIONS, SET_VOLTAGE, VoltageBody
from interlock.service.wire import CHANNEL_VERSION, channel_path
from tests.service.conftest import ROOT_BENCH, Served


def test_every_route_is_an_operation_of_the_schema_with_its_role():
    schema = create_app(Service(ROOT_BENCH)).openapi()
    routes = {
        (method.upper(), path): operation["x-interlock-role"]
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    }
    assert routes == {(op.method, op.route): op.role for op in OPERATIONS}


def test_every_operation_of_the_channel_has_its_handler_and_its_routes_model():
    assert channel.HANDLERS.keys() == CHANNEL.keys()
    for operation, model in CHANNEL.values():
        body = set(operation.body.model_fields) if operation.body else set()
        target = {operation.target} if operation.target else set()
        assert set(model.model_fields) == body | target | {"lease"}


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**1023, max_value=2**1030),
    st.floats(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=300)
@given(value=_values)
def test_the_channel_and_the_route_decide_every_value_alike(value):
    """Strict: true is not 1.0, "5" is not 5, 10**400 is no float; NaN and inf pass."""
    _, line_model = CHANNEL[SET_VOLTAGE.name]
    outcomes = []
    for model, data in (
        (VoltageBody, {"volts": value}),
        (line_model, {"net": "N", "volts": value}),
    ):
        try:
            outcomes.append(("ok", repr(model.model_validate(data).volts)))
        except ValidationError as invalid:
            outcomes.append(("invalid", invalid.errors()[0]["msg"]))
    assert outcomes[0] == outcomes[1]
    assert (outcomes[0][0] == "ok") == _is_a_float(value)


def _is_a_float(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


class _Line:
    def __init__(self, served: Served) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(channel_path(served.service.settings.socket)))
        self.file = self.sock.makefile("rb")
        assert "ok" in self.send(
            json.dumps({"hello": CHANNEL_VERSION, "token": served.token("script")}).encode()
        )

    def send(self, line: bytes) -> dict[str, Any]:
        self.sock.sendall(line + b"\n")
        return json.loads(self.file.readline())

    def close(self) -> None:
        self.file.close()
        self.sock.close()


BODIES = [
    b'{"volts": true}',
    b'{"volts": "5"}',
    b'{"volts": null}',
    b'{"volts": 1' + b"0" * 400 + b"}",
    b'{"volts": [5]}',
    b"{}",
    b'{"volts": 5, "force": true}',
    b'{"volts": NaN}',
    b'{"volts": -Infinity}',
    b'{"volts": 5}',
    b'{"volts": -0.0}',
    b'{"volts": 1e308}',
]


@pytest.mark.parametrize("body", BODIES, ids=[b.decode()[:30] for b in BODIES])
def test_one_body_gets_the_same_answer_from_both_transports(served, body):
    """The same error class, and for a malformed body the same words from the same model."""
    settings_ = served.service.settings
    headers = {"Authorization": f"Bearer {served.token('script')}"}
    transport = httpx.HTTPTransport(uds=str(settings_.socket))
    with httpx.Client(transport=transport, base_url="http://interlock", headers=headers) as http:
        response = http.put(
            "/nets/VLOGIC/voltage", content=body, headers={"Content-Type": "application/json"}
        )
    over_http = response.json()
    line = _Line(served)
    try:
        request = b'{"op": "set_voltage", "net": "VLOGIC", ' + body[1:]
        over_channel = line.send(request.replace(b", }", b"}"))
    finally:
        line.close()
    assert over_channel["error"] == over_http["error"], (over_channel, over_http)
    assert over_http["error"] in ("InvalidRequest", "LimitViolation", "StateError")
    if over_http["error"] == "InvalidRequest":
        # "body.volts: ..." on HTTP, "set_voltage: volts: ..." on the channel.
        http_words = over_http["message"].removeprefix("body.")
        assert over_channel["message"] == f"set_voltage: {http_words}"
    else:
        assert over_channel["message"] == over_http["message"]
    assert served.controller.commanded.net("VLOGIC").voltage == 0
