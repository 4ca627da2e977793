"""The Python client against a real service: its API, its errors, its event stream, starting."""

from __future__ import annotations

import os
import signal
import time

import pytest

import interlock
from interlock.errors import FaultLatched, LimitViolation, StateError
from interlock.service.background import answers
from interlock.service.runtime import Service
from interlock.service.server import AlreadyServing, ServiceThread, pid_path
from interlock.service.wire import ServiceUnavailable
from tests.service.conftest import OFF_VOLTS, assert_bench_safe, bring_up, write_bench


def test_a_script_drives_a_net_and_reads_it_back(served):
    served.client("operator").arm()
    with served.client("script") as script, script.lease():
        bring_up(script)
        measured = script.measure("VLOGIC")
        truth = served.truth()["nets"]["VLOGIC"]
        assert measured["voltage"] == pytest.approx(truth["voltage"], abs=0.02)
        assert measured["voltage"] == pytest.approx(5.0, abs=0.05)
        assert measured["current"] == pytest.approx(5.0 / 33, rel=0.05)  # the 33 ohm load
        status = script.status()
        assert status["nets"]["VLOGIC"]["output"] is True
        assert status["relays"]["K1"] is True
        script.output_off("VLOGIC")
        script.set_relay("K1", False)
    assert_bench_safe(served.truth())


def test_refusals_come_back_as_the_projects_exceptions(served):
    script = served.client("script")
    with pytest.raises(StateError, match="not allowed while safe"):
        script.set_voltage("VLOGIC", 1.0)
    served.client("operator").arm()
    with pytest.raises(LimitViolation) as refused:
        script.set_voltage("VLOGIC", 6.0)
    error = refused.value
    assert error.rule == "nets.VLOGIC.max_voltage"
    assert error.where.endswith("profiles/mdb24.toml: nets.VLOGIC.max_voltage")
    assert error.reason == "6 V is above the maximum of 5.5 V"
    assert str(error).startswith("refused by nets.VLOGIC.max_voltage")
    with pytest.raises(LimitViolation, match='unknown net "NOPE"'):
        script.measure("NOPE")
    with pytest.raises(LimitViolation, match="must be a finite number"):
        script.set_voltage("VLOGIC", float("inf"))  # refused by the interlock, never clamped
    with pytest.raises(LimitViolation, match="must be a finite number"):
        script.set_current_limit("VLOGIC", float("nan"))
    with pytest.raises(interlock.InterlockError, match="volts"):
        script.set_voltage("VLOGIC", "5 V")  # a string is not a number of volts
    assert served.truth()["nets"]["VLOGIC"]["max_voltage"] < OFF_VOLTS


def test_a_stop_latches_until_an_operator_resets(served):
    operator, script = served.client("operator"), served.client("script")
    operator.arm()
    with script.lease():
        bring_up(script)
        script.estop()
        with pytest.raises(FaultLatched):
            script.output_on("VLOGIC")
    assert_bench_safe(served.truth())
    operator.reset()
    status = operator.status()
    assert (status["state"], status["fault"]) == ("safe", None)
    assert_bench_safe(served.truth())


def test_the_event_stream_shows_state_changes_as_they_happen(served):
    viewer = served.client("viewer")
    events = viewer.events(period=0.1)
    try:
        first = next(events)
        assert (first["event"], first["state"], first["bench"]) == (
            "status",
            "safe",
            "sim-bench-01",
        )
        served.client("operator").arm()
        served.client("viewer").estop()
        seen = []
        deadline = time.monotonic() + 5
        for event in events:
            seen.append(event)
            if event["event"] == "fault" or time.monotonic() > deadline:
                break
    finally:
        events.close()
    changes = [(e["source"], e["dest"]) for e in seen if e["event"] == "state"]
    assert ("safe", "armed") in changes
    assert seen[-1]["event"] == "fault"
    assert seen[-1]["cause"] == "estop"
    assert any(e["event"] == "status" for e in seen)


def test_no_service_and_no_start(short_dir):
    bench = write_bench(short_dir)
    with pytest.raises(ServiceUnavailable, match="no service answers"):
        interlock.connect(bench, start=False)
    engineering = short_dir / "eng"
    engineering.mkdir()
    bench = write_bench(engineering, environment="engineering")
    with pytest.raises(ServiceUnavailable, match="never implicitly"):
        interlock.connect(bench)  # real hardware: only ever started on purpose
    assert not (engineering / "interlock.sock").exists()


def test_connect_starts_a_service_for_a_simulation_bench(short_dir):
    bench = write_bench(short_dir)
    socket_path = short_dir / "interlock.sock"
    client = interlock.connect(bench, role="viewer")
    pid = int(pid_path(socket_path).read_text())
    try:
        status = client.status()
        assert (status["state"], status["service"]["pid"]) == ("safe", pid)
        assert status["service"]["simulated"]
    finally:
        client.close()
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)  # started by this process: reap it
    assert not answers(socket_path)
    assert not socket_path.exists()
    log = (short_dir / "service.log").read_text()
    assert log.splitlines()[0] == "bench sim-bench-01 [simulation]"
    assert "driven to the safe state" in log


def test_a_second_service_for_the_same_bench_is_refused(served):
    with pytest.raises(AlreadyServing):
        ServiceThread(Service(served.bench_path)).start()
    assert served.client("viewer").status()["state"] == "safe"  # the first one serves on


def test_a_stale_socket_is_replaced(short_dir):
    import socket

    bench = write_bench(short_dir)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(short_dir / "interlock.sock"))
    stale.close()  # the file stays, nothing answers: a service that died
    with (
        ServiceThread(Service(bench)),
        interlock.connect(bench, role="viewer", start=False) as viewer,
    ):
        assert viewer.status()["state"] == "safe"


def test_connect_is_part_of_the_public_api():
    import interlock.client

    assert "connect" in interlock.__all__
    assert interlock.connect is interlock.client.connect
    assert set(interlock.client.__all__) == {
        "Client",
        "Lease",
        "Measurement",
        "connect",
        # The async face, beside the sync one.
        "AsyncClient",
        "AsyncLease",
        "connect_async",
    }
    assert interlock.AsyncClient is interlock.client.AsyncClient
