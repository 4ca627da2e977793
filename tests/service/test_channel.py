"""The command channel: script actions as JSON lines, with the HTTP API's checks and journal."""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import socket
import stat
import threading
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import interlock
from interlock.errors import FaultLatched, LimitViolation, StateError
from interlock.interrupts import Interrupted, signals_interrupt
from interlock.journal import JournalReader
from interlock.service import channel
from interlock.service.runtime import Service
from interlock.service.server import AlreadyServing, ServiceThread, pid_path
from interlock.service.wire import (
    CHANNEL_VERSION,
    MAX_LINE,
    AccessDenied,
    InvalidRequest,
    ServiceUnavailable,
    channel_path,
)
from tests.service.conftest import Served, assert_bench_safe, bring_up


class Line:
    """A raw connection to the command channel: one JSON line out, one back."""

    def __init__(self, served: Served) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(channel_path(served.service.settings.socket)))
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes) -> dict[str, Any] | None:
        """Send raw bytes; the reply line decoded, or None once the service closed."""
        self.sock.sendall(data)
        reply = self.file.readline()
        return json.loads(reply) if reply else None

    def call(self, request: Any) -> dict[str, Any] | None:
        return self.send((json.dumps(request) + "\n").encode())

    def hello(self, token: str, **extra: Any) -> dict[str, Any] | None:
        return self.call({"hello": CHANNEL_VERSION, "token": token, **extra})

    def closed(self) -> bool:
        try:
            return self.file.readline() == b""
        except ConnectionResetError:  # closed with our unread bytes still in its buffer
            return True

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def line(served: Served):
    connections: list[Line] = []

    def open_line(role: str | None = "script", **hello: Any) -> Line:
        connection = Line(served)
        connections.append(connection)
        if role is not None:
            reply = connection.hello(served.token(role), **hello)
            assert reply == {"ok": {"role": role, "bench": served.service.bench.name}}
        return connection

    yield open_line
    for connection in connections:
        connection.close()


def _journal(served: Served) -> list:
    served.thread.gate.refusals.flush()  # refusals are journaled in aggregate
    served.service.journal.flush()
    with JournalReader(served.service.settings.journal) as reader:
        return list(reader.entries())


def _psu_lines(served: Served) -> list[str]:
    return [c["line"] for c in served.truth()["instruments"]["psu"]["commands"]]


def _arm(served: Served) -> None:
    served.client("operator").arm()


# -- the socket ------------------------------------------------------------------------


def test_the_channel_socket_is_owner_only_and_goes_with_the_service(serve_bench):
    served = serve_bench()
    path = channel_path(served.service.settings.socket)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    served.stop()
    assert not path.exists()


# -- the emergency stop over it --------------------------------------------------------


def test_anyone_stops_the_bench_over_the_channel_while_a_script_holds_another(served, line):
    _arm(served)
    script = served.client("script")
    with script.lease():
        bring_up(script)
        viewer = line("viewer", user="bob", client="panel pid 9")
        reply = viewer.call({"op": "estop"})
        assert reply["ok"]["state"] == "fault"
        assert "emergency stop by bob" in reply["ok"]["fault"]
        assert_bench_safe(served.truth())
        with pytest.raises(FaultLatched):
            script.set_voltage("VLOGIC", 4.0)
    stops = [
        e for e in _journal(served) if e.kind == "operator" and e.payload.get("action") == "estop"
    ]
    assert [(e.actor, e.payload["client"]) for e in stops] == [("bob", "viewer panel pid 9")]


def test_the_clients_stop_goes_over_the_channel(served, monkeypatch):
    viewer = served.client("viewer")
    monkeypatch.setattr(viewer, "_request", lambda *a: pytest.fail("sent over HTTP"))
    assert viewer.estop()["state"] == "fault"


# -- what a script does over it ------------------------------------------------------


def test_setpoints_and_measurements_reach_the_bench_journaled_as_the_caller(served, line):
    _arm(served)
    conn = line("script", user="alice", client="soak.py pid 7")
    assert conn.call({"op": "set_current_limit", "net": "VLOGIC", "amps": 0.3}) == {"ok": None}
    assert conn.call({"op": "set_voltage", "net": "VLOGIC", "volts": 4.5}) == {"ok": None}
    measured = conn.call({"op": "measure", "net": "VLOGIC"})["ok"]
    assert set(measured) == {"voltage", "current"}
    assert served.controller.commanded.net("VLOGIC").voltage == 4.5
    assert any(line.startswith("VOLT 4.5") for line in _psu_lines(served))
    status = conn.call({"op": "status"})["ok"]
    assert status["state"] == "armed"
    assert status["you"] == {"role": "script", "who": "alice", "client": "script soak.py pid 7"}
    requests = [e for e in _journal(served) if e.kind == "request" and e.actor == "alice"]
    assert [(r.payload["quantity"], r.payload["value"]) for r in requests] == [
        ("current_limit", 0.3),
        ("voltage", 4.5),
    ]
    assert all(r.payload["client"] == "script soak.py pid 7" for r in requests)


def test_a_limit_refusal_comes_back_whole_and_the_connection_goes_on(served, line):
    _arm(served)
    conn = line()
    before = _psu_lines(served)
    reply = conn.call({"op": "set_voltage", "net": "VLOGIC", "volts": 40.0})
    assert reply["error"] == "LimitViolation"
    assert reply["rule"] and reply["where"] and reply["reason"]
    assert _psu_lines(served) == before  # refused: nothing went to the supply
    assert conn.call({"op": "measure", "net": "VLOGIC"})["ok"]["voltage"] == pytest.approx(
        0, abs=0.05
    )


def test_the_python_client_uses_the_channel_and_rebuilds_errors(served):
    _arm(served)
    client = served.client("script")
    client.set_voltage("VLOGIC", 3.3)
    assert served.controller.commanded.net("VLOGIC").voltage == 3.3
    with pytest.raises(LimitViolation) as refused:
        client.set_voltage("VLOGIC", 40.0)
    assert refused.value.rule
    with pytest.raises(LimitViolation, match="finite"):
        client.set_voltage("VLOGIC", math.nan)
    assert client.measure("VLOGIC")["current"] == pytest.approx(0, abs=0.01)
    assert client._channel._idle, "the connection went back to the pool after each answer"


def test_concurrent_callers_each_get_their_own_connection(served):
    _arm(served)
    client = served.client("script")
    results: list[Any] = []
    errors: list[BaseException] = []

    def measure() -> None:
        try:
            for _ in range(10):
                results.append(client.measure("VLOGIC"))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=measure) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert len(results) == 40
    assert 1 <= len(client._channel._idle) <= 4


# -- access ---------------------------------------------------------------------------------


def test_a_bad_token_is_refused_journaled_and_the_connection_closed(served, line):
    conn = line(None)
    reply = conn.hello("not-a-token", user="mallory")
    assert reply["error"] == "AccessDenied"
    assert conn.closed()
    refusals = [e for e in _journal(served) if e.kind == "request" and e.actor == "mallory"]
    assert refusals and refusals[-1].payload == {
        "action": "access",
        "channel": "command",
        "client": "no role unnamed client",
        "op": "hello",
        "role": "none",
        "peer": "unix socket",
        "count": 1,
    }


def test_the_first_line_must_be_a_hello(served, line):
    conn = line(None)
    reply = conn.call({"op": "status"})
    assert reply["error"] == "InvalidRequest"
    assert "hello" in reply["message"]
    assert conn.closed()


def test_a_viewer_may_look_but_not_set_and_the_refusal_is_journaled(served, line):
    _arm(served)
    conn = line("viewer", user="eve")
    reply = conn.call({"op": "set_voltage", "net": "VLOGIC", "volts": 3.0})
    assert reply["error"] == "AccessDenied"
    assert reply["needs"] == "script"
    assert served.controller.commanded.net("VLOGIC").voltage == 0
    assert "voltage" in conn.call({"op": "measure", "net": "VLOGIC"})["ok"]
    refusal = [e for e in _journal(served) if e.kind == "request" and e.actor == "eve"][-1]
    assert refusal.payload["op"] == "set_voltage"


def test_the_python_client_with_a_wrong_token_gets_access_denied(served):
    client = served.client("script", token="wrong")
    with pytest.raises(AccessDenied):
        client.measure("VLOGIC")


# -- the lease ------------------------------------------------------------------------------


def test_changes_are_refused_to_all_but_the_lease_holder(served, line):
    _arm(served)
    holder = served.client("script", who="holder")
    with holder.lease() as lease:
        conn = line("script", user="other")
        reply = conn.call({"op": "set_voltage", "net": "VLOGIC", "volts": 3.0})
        assert reply["error"] == "StateError"
        assert "leased by holder" in reply["message"]
        forged = conn.call({"op": "set_voltage", "net": "VLOGIC", "volts": 3.0, "lease": "x"})
        assert forged["error"] == "StateError"
        # Turning an output off is never refused for the lease.
        assert conn.call({"op": "set_output", "net": "VLOGIC", "on": False}) == {"ok": None}
        assert served.controller.commanded.net("VLOGIC").voltage == 0
        holder.set_voltage("VLOGIC", 3.0)  # the holder's client sends its lease
        ok = conn.call({"op": "set_voltage", "net": "VLOGIC", "volts": 2.0, "lease": lease.id})
        assert ok == {"ok": None}  # whoever shows the lease is its holder
    refusals = [
        e for e in _journal(served) if e.kind == "verdict" and e.payload.get("rule") == "lease"
    ]
    assert len(refusals) == 2


def test_turning_on_without_the_lease_is_refused(served):
    _arm(served)
    client = served.client("script")
    with pytest.raises(StateError, match="lease"):
        client.output_on("VLOGIC")
    assert served.truth()["nets"]["VLOGIC"]["voltage"] < 0.05


# -- malformed input --------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_",
    [
        [1, 2],
        "set_voltage",
        {"op": "reboot"},
        {"op": 7},
        {"net": "VLOGIC", "volts": 3.0},
        {"op": "set_voltage", "net": "VLOGIC"},
        {"op": "set_voltage", "net": "VLOGIC", "volts": True},
        {"op": "set_voltage", "net": "VLOGIC", "volts": "3.0"},
        {"op": "set_voltage", "net": "VLOGIC", "volts": None},
        {"op": "set_voltage", "net": "VLOGIC", "volts": 10**400},
        {"op": "set_voltage", "net": 5, "volts": 3.0},
        {"op": "set_voltage", "net": "VLOGIC", "volts": 3.0, "force": True},
        {"op": "set_voltage", "net": "VLOGIC", "volts": 3.0, "lease": 12},
        {"op": "set_relay", "relay": "K1", "closed": 1},
        {"op": "set_output", "net": "VLOGIC", "on": "yes"},
    ],
)
def test_malformed_requests_are_refused_without_touching_the_bench(served, line, request_):
    _arm(served)
    conn = line()
    before = _psu_lines(served)
    reply = conn.call(request_)
    assert reply["error"] == "InvalidRequest", reply
    assert _psu_lines(served) == before
    assert conn.call({"op": "status"})["ok"]["state"] == "armed"  # still in step


def test_garbage_that_is_not_json_gets_an_answer(served, line):
    conn = line()
    reply = conn.send(b"\xff\xfe{not json\n")
    assert reply["error"] == "InvalidRequest"
    assert conn.call({"op": "status"})["ok"]["state"] == "safe"


def test_nan_is_refused_by_its_rule_on_the_record(served, line):
    _arm(served)
    conn = line()
    reply = conn.send(b'{"op": "set_voltage", "net": "VLOGIC", "volts": NaN}\n')
    assert reply["error"] == "LimitViolation"
    assert reply["rule"] == "finite-value"
    verdicts = [e for e in _journal(served) if e.kind == "verdict"]
    assert verdicts[-1].payload["rule"] == "finite-value"


def test_an_over_long_line_ends_the_connection(served, line):
    conn = line()
    reply = conn.send(b"x" * (MAX_LINE + 10))
    assert reply["error"] == "InvalidRequest"
    assert "longer than" in reply["message"]
    assert conn.closed()
    assert line().call({"op": "status"})["ok"]["state"] == "safe"  # the service serves on


_json = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=10,
)
_requests = st.fixed_dictionaries(
    {"op": st.sampled_from(["set_voltage", "set_relay", "set_output", "measure", "status"])},
    optional={
        "net": st.sampled_from(["VLOGIC", "VBUS", "NOPE", "VLOGIC\udcff"]) | _json,
        "volts": st.floats(-100, 100) | _json,
        "relay": _json,
        "closed": _json,
        "on": _json,
        "lease": _json,
    },
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request_=_requests | _json)
def test_any_request_gets_exactly_one_answer_and_never_powers_a_net(served, line, request_):
    """Without the lease nothing can turn on; whatever arrives, one reply, still in step."""
    if served.controller.state == "safe" and served.controller.fault_cause is None:
        _arm(served)
    conn = line()
    reply = conn.send((json.dumps(request_) + "\n").encode())
    assert isinstance(reply, dict)
    assert ("ok" in reply) != ("error" in reply)
    assert "state" in conn.call({"op": "status"})["ok"]
    assert all(rec["voltage"] < 0.05 for rec in served.truth()["nets"].values())
    conn.close()


# -- the service going away ----------------------------------------------------------------


def test_a_stopped_service_is_service_unavailable_not_a_hang(serve_bench):
    served = serve_bench()
    client = served.client("viewer")
    assert client.status()["state"] == "safe"
    served.thread.stop()
    with pytest.raises(ServiceUnavailable):
        client.status()


# -- what a review found: each case once broke something ------------------------------


def test_a_name_that_is_not_unicode_is_refused_and_the_bench_still_stops(served, line):
    """JSON's "\\udcff" is a lone surrogate: it cannot be journaled, so it must be
    refused before anything stages it (once it poisoned every later commit)."""
    _arm(served)
    holder = served.client("script", who="holder")
    with holder.lease():
        bring_up(holder)
        conn = line("script", user="other")
        reply = conn.send(b'{"op": "set_output", "net": "VLOGIC\\udcff", "on": false}\n')
        assert reply["error"] == "InvalidRequest"
        assert "not Unicode" in reply["message"]
        reply = conn.send(b'{"op": "measure", "net": "\\ud800"}\n')
        assert reply["error"] == "InvalidRequest"
        holder.output_off("VLOGIC")  # the journal writes on
    served.client("viewer").estop()
    assert_bench_safe(served.truth())
    offs = [
        e
        for e in _journal(served)  # flushes: nothing unwritable waits in the journal
        if e.kind == "request" and e.actor == "holder" and e.payload.get("quantity") == "output"
    ]
    assert offs and offs[-1].payload["value"] is False


def test_a_silent_connection_is_closed_after_the_hello_timeout(served, line, monkeypatch):
    monkeypatch.setattr(channel, "HELLO_TIMEOUT_S", 0.2)
    conn = line(None)
    reply = json.loads(conn.file.readline())  # it said nothing: the service says why, hangs up
    assert reply["error"] == "InvalidRequest" and "no hello within 0.2 s" in reply["message"]
    assert conn.closed()
    assert line().call({"op": "status"})["ok"]["state"] == "safe"


def test_a_failed_accept_does_not_end_the_channel(served, line, caplog):
    listening = served.thread._listening.channel._listening
    failures = []

    class FailingOnce:
        def __getattr__(self, name: str) -> Any:
            return getattr(listening, name)

        def accept(self):  # type: ignore[no-untyped-def]
            if not failures:
                failures.append(1)
                raise OSError(errno.EMFILE, "Too many open files")
            return listening.accept()

    served.thread._listening.channel._listening = FailingOnce()
    time.sleep(channel.ACCEPT_POLL_S * 2)  # the accepting thread meets the failure
    assert failures
    assert line().call({"op": "status"})["ok"]["state"] == "safe"
    assert "accept failed" in caplog.text


def test_the_client_survives_a_service_restart_without_resending(serve_bench):
    served = serve_bench()
    client = interlock.connect(served.bench_path, role="viewer", start=False)
    try:
        assert client.status()["state"] == "safe"
        served.stop()
        again = serve_bench()
        # The pooled connection was closed by the old service: found out before use.
        assert client.status()["state"] == "safe"
        assert client.status()["service"]["pid"] == again.service.status()["service"]["pid"]
    finally:
        client.close()


def test_a_service_without_a_channel_is_named_as_such(served):
    client = served.client("viewer")
    channel_path(served.service.settings.socket).unlink()
    with pytest.raises(ServiceUnavailable, match="older version"):
        client.status()


def test_a_closed_client_refuses_to_send(served):
    client = served.client("viewer")
    client.status()
    client.close()
    with pytest.raises(InvalidRequest, match="closed"):
        client.status()


def test_access_is_checked_before_the_arguments(served, line):
    conn = line("viewer", user="eve")
    reply = conn.call({"op": "set_voltage", "net": 5})
    assert reply["error"] == "AccessDenied"
    refusal = [e for e in _journal(served) if e.kind == "request" and e.actor == "eve"][-1]
    assert refusal.payload["op"] == "set_voltage"


@pytest.mark.parametrize("version", [True, 1.0, "1", 2, None])
def test_the_hello_names_the_version_exactly(served, line, version):
    conn = line(None)
    reply = conn.call({"hello": version, "token": served.token("viewer")})
    assert reply["error"] == "InvalidRequest"
    assert conn.closed()


def test_a_line_over_the_limit_is_refused_even_in_two_pieces(served, line):
    conn = line()
    half = b"x" * (MAX_LINE // 2 + 10)
    conn.sock.sendall(half)
    time.sleep(0.05)
    reply = conn.send(half + b"\n")
    assert reply["error"] == "InvalidRequest"
    assert conn.closed()


def test_a_stopping_service_takes_no_more_requests(served, line):
    conn = line()
    served.service.stopping.set()
    reply = conn.call({"op": "status"})
    assert reply["error"] == "ServiceUnavailable"
    assert "stopping" in reply["message"]


def test_a_start_refused_for_a_running_service_leaves_its_files_alone(served):
    socket_path = served.service.settings.socket
    pid_file = pid_path(socket_path)
    pid_file.write_text("12345\n")
    socket_path.unlink()  # someone removed the first service's HTTP socket
    with pytest.raises(AlreadyServing):
        ServiceThread(Service(served.bench_path)).start()
    assert pid_file.read_text() == "12345\n"
    assert channel_path(socket_path).exists()


def test_a_change_and_its_measurement_in_one_round_trip(served, line):
    _arm(served)
    script = served.client("script")
    with script.lease():
        bring_up(script)
        measured = script.set_voltage("VLOGIC", 4.5, measure=True)
        assert measured["voltage"] == pytest.approx(4.5, abs=0.05)
        assert script.set_voltage("VLOGIC", 4.6) is None
        conn = line("script")
        request = {"op": "set_voltage", "net": "VLOGIC", "volts": 4.7, "lease": script._lease.id}
        reply = conn.call({**request, "measure": True})
        assert reply["ok"]["measurement"]["voltage"] == pytest.approx(4.7, abs=0.05)
        refused = conn.call({**request, "measure": 1})
        assert refused["error"] == "InvalidRequest" and "measure" in refused["message"]
        script.output_off("VLOGIC")
        script.set_relay("K1", False)
    entries = _journal(served)
    asked = next(i for i, e in enumerate(entries) if e.kind == "request"
                 and e.payload.get("value") == 4.5)  # fmt: skip
    assert any(e.kind == "measurement" for e in entries[asked:])


def test_a_setpoint_written_with_its_unit_is_refused_saying_the_wire_takes_si_numbers(served):
    script = served.client("script")
    with pytest.raises(InvalidRequest, match=r"volts: expected a plain number of volts"):
        script.set_voltage("VLOGIC", "5 V")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match=r"amps: expected a plain number of amperes"):
        script.set_current_limit("VLOGIC", "250 mA")  # type: ignore[arg-type]
    # Not a text: no word of one.
    with pytest.raises(InvalidRequest) as refused:
        script.set_voltage("VLOGIC", None)  # type: ignore[arg-type]
    assert str(refused.value).endswith("volts: expected a plain number of volts (5.0, 0.25)")


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="signal handlers are the main thread's",
)
def test_a_signal_taken_as_ctrl_c_interrupts_once_the_requests_reply_is_in(served, monkeypatch):
    """Within interlock.interrupts' handlers, SIGTERM during a request does not cut the
    client off its reply (the service carries the request out anyway, and whoever
    powers the bench down after needs to know it was): it interrupts once it is in."""
    controller = served.controller
    carry_out = controller.set_voltage

    def set_voltage(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # the client's main thread awaits the reply now
        time.sleep(0.2)
        return carry_out(*args, **kwargs)

    monkeypatch.setattr(controller, "set_voltage", set_voltage)
    client = served.client("operator")
    client.arm()
    with (
        signals_interrupt() as stops,
        pytest.raises(Interrupted, match="SIGTERM"),
        stops.interruptible(),
    ):
        client.set_voltage("VLOGIC", 1.5)
    assert client.status()["nets"]["VLOGIC"]["setpoint"] == 1.5  # carried out and answered
