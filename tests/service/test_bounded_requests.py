"""JSON numbers no one would type (1e308, -0.0, 5e-324, 1e400), over the command channel
and the HTTP API, with nets live: each request gets one answer, a refusal sends
nothing to the bench, and no net goes beyond its limit.

Time is bounded loosely (a refusal takes about a millisecond; the absurd setpoints
these tests are for took from seconds to forever, with the bench tripping)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from interlock.client import LEASE_HEADER
from interlock.errors import InterlockError
from interlock.service.wire import CHANNEL_VERSION, channel_path
from tests.service.conftest import Served, assert_within_limits, bring_up

ANSWER_S = 2.0  # a refusal's answer (about a millisecond), widely: a loaded machine
# A done request ramps at most across VBUS's range (0.64 s at 40 V/s) plus its exchanges.
DONE_S = 5.0

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# A number as JSON text: Python's repr of any float (NaN, Infinity as Python's json
# writes them), and texts that decode beyond a float's range.
numbers = st.one_of(
    st.floats().map(json.dumps),
    st.floats(0.0, 25.0).map(json.dumps),
    st.sampled_from(["1e308", "-1e308", "5e-324", "-0.0", "3e7", "1e400", "-1e400", "1" * 400]),
)
NETS = ["VLOGIC", "VBUS", "MOTOR"]
QUANTITIES = {"volts": ("set_voltage", "voltage"), "amps": ("set_current_limit", "current-limit")}


class Bench:
    """A served bench with VLOGIC and VBUS live, held by one lease for the whole test."""

    def __init__(self, served: Served, holder: Any, lease: Any) -> None:
        self.served, self.holder, self.lease = served, holder, lease
        self.operator = served.client("operator")

    def live(self) -> None:
        controller = self.served.controller
        if controller.state == "fault":
            self.operator.reset()
        if controller.state == "safe":
            self.operator.arm()
        if not controller.commanded.net("VLOGIC").output:
            bring_up(self.holder, "VLOGIC", 5.0)
        if not controller.commanded.net("VBUS").output:
            bring_up(self.holder, "VBUS", 4.0)
            self.holder.set_voltage("VBUS", 12.0)

    def settings_sent(self) -> int:
        """Setpoints and current limits the supply received (not a trip's OUTP OFF lines,
        which the last example may set off at any time)."""
        lines = [c["line"] for c in self.served.truth()["instruments"]["psu"]["commands"]]
        return sum(line.startswith(("VOLT ", "CURR ")) for line in lines)


@pytest.fixture
def bench(served: Served) -> Iterator[Bench]:
    served.client("operator").arm()
    holder = served.client("script", who="holder")
    with holder.lease() as lease:
        yield Bench(served, holder, lease)
        for net in ("MOTOR", "VBUS", "VLOGIC"):  # off before the lease goes
            try:
                holder.output_off(net)
            except Exception:  # a latched fault: already off
                break


def exchange(bench: Bench, send, net: str, field: str, number: str) -> None:
    """One request through ``send``; its answer checked, and the bench after it."""
    for _ in range(3):  # a trip the last example set off may land in the middle of this
        with contextlib.suppress(InterlockError):
            bench.live()
            break
    before = bench.settings_sent()
    started = time.monotonic()
    outcome = send(net, field, number)
    elapsed = time.monotonic() - started
    sent = bench.settings_sent() - before
    event(f"{field} on {net}: {outcome}")
    if outcome in ("LimitViolation", "InvalidRequest"):
        assert sent == 0, f"{number} on {net}: {outcome} after {sent} settings went out"
        assert elapsed < ANSWER_S, f"{number} on {net}: {outcome} after {elapsed:.2f} s"
    else:
        assert elapsed < DONE_S, f"{number} on {net}: {outcome} after {elapsed:.2f} s"
    assert_within_limits(bench.served.truth(), bench.served.controller)


@pytest.fixture
def channel(bench: Bench) -> Iterator[Any]:
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(str(channel_path(bench.served.service.settings.socket)))
    reader = sock.makefile("rb")

    def call(text: str) -> dict[str, Any]:
        sock.sendall(text.encode() + b"\n")
        line = reader.readline()
        assert line, "the service closed the connection"
        return json.loads(line)

    hello = {"hello": CHANNEL_VERSION, "token": bench.served.token("script"), "user": "fuzz"}
    assert "ok" in call(json.dumps(hello))

    def send(net: str, field: str, number: str) -> str:
        op = QUANTITIES[field][0]
        lease = json.dumps(bench.lease.id)
        reply = call(f'{{"op":"{op}","net":"{net}","{field}":{number},"lease":{lease}}}')
        assert ("ok" in reply) != ("error" in reply), reply
        return "done" if "ok" in reply else reply["error"]

    yield send
    reader.close()
    sock.close()


@SETTINGS
@given(net=st.sampled_from(NETS), field=st.sampled_from(sorted(QUANTITIES)), number=numbers)
@example(net="VLOGIC", field="volts", number="3e7")
@example(net="VLOGIC", field="volts", number="1e308")
@example(net="VBUS", field="volts", number="-1e308")
@example(net="VBUS", field="volts", number="5e-324")
@example(net="VBUS", field="volts", number="-0.0")
@example(net="VBUS", field="amps", number="5e-324")
def test_the_command_channel_answers_any_number_once(bench, channel, net, field, number):
    exchange(bench, channel, net, field, number)


@pytest.fixture
def http(bench: Bench) -> Iterator[Any]:
    transport = httpx.HTTPTransport(uds=str(bench.served.service.settings.socket))
    headers = {
        "Authorization": f"Bearer {bench.served.token('script')}",
        LEASE_HEADER: bench.lease.id,
        "Content-Type": "application/json",
    }
    client = httpx.Client(transport=transport, base_url="http://interlock", timeout=30)

    def send(net: str, field: str, number: str) -> str:
        path = f"/nets/{net}/{QUANTITIES[field][1]}"
        reply = client.put(path, content=f'{{"{field}":{number}}}', headers=headers)
        body = reply.json()
        if reply.status_code == 200:
            return "done"
        assert reply.status_code in (409, 422, 503), (reply.status_code, body)
        return body["error"]

    yield send
    client.close()


@SETTINGS
@given(net=st.sampled_from(NETS), field=st.sampled_from(sorted(QUANTITIES)), number=numbers)
@example(net="VLOGIC", field="volts", number="3e7")
@example(net="VLOGIC", field="volts", number="1e308")
@example(net="VBUS", field="volts", number="-1e308")
@example(net="VBUS", field="volts", number="5e-324")
@example(net="VBUS", field="volts", number="-0.0")
@example(net="VBUS", field="amps", number="5e-324")
def test_the_http_api_answers_any_number_once(bench, http, net, field, number):
    exchange(bench, http, net, field, number)
