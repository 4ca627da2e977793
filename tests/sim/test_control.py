"""The control channel: an owner-only Unix socket, bounded requests, errors without tracebacks."""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import pytest

from interlock.errors import SimulatorError
from interlock.sim import control
from interlock.sim.client import SimulatorClient


def raw(path: str | Path, data: bytes) -> list[dict]:
    """Send ``data`` as is; every reply line until the channel hangs up or goes quiet."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(1 << 16):
            received += chunk
    return [json.loads(line) for line in received.splitlines()]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_channel_is_a_private_unix_socket(sim_bench_factory, tmp_path):
    path = tmp_path / "run" / "sim.sock"
    sim = sim_bench_factory(control=path)
    assert sim.control_address == str(path)
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert SimulatorClient(path).describe().pid == os.getpid()
    sim.stop()
    assert not path.exists()  # removed with the simulator


def test_a_temporary_channel_is_private_and_goes_with_the_simulator(sim_bench_factory):
    sim = sim_bench_factory(control=True)
    path = Path(sim.control_address)
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    sim.stop()
    assert not path.parent.exists()


def test_requests_and_their_errors(sim_bench_factory):
    sim = sim_bench_factory(control=True)
    path = sim.control_address
    replies = raw(
        path,
        b'{"op": "inject", "spec": "hang:dmm"}\n'
        b"not json\n"
        b"[1, 2]\n"
        b'{"op": "explode"}\n'
        b'{"op": "inject", "spec": 42}\n'
        b'{"op": "history", "net": "VBUS", "seconds": "a while"}\n'
        b'{"op": "history", "net": ["VBUS"]}\n'
        b'{"op": "faults"}\n',
    )
    assert replies[0] == {"ok": True, "faults": ["hang:dmm"]}
    assert replies[1]["error"].startswith("bad request: Expecting value")
    assert replies[2]["error"] == "bad request: a request is a JSON object"
    assert replies[3]["error"].startswith('unknown op "explode" (ops: inject, clear, truth')
    assert replies[4]["error"] == '"spec": expected a string, got 42'
    assert "positive number of seconds" in replies[5]["error"]
    assert replies[6]["error"].startswith('"net": expected a string')
    assert replies[7] == {"ok": True, "faults": ["hang:dmm"]}  # the channel served on
    assert all(r["ok"] is False for r in replies[1:7])


def test_a_request_beyond_the_bound_is_refused_unread(sim_bench_factory):
    sim = sim_bench_factory(control=True)
    spec = "x" * control.MAX_REQUEST
    replies = raw(
        sim.control_address,
        json.dumps({"op": "inject", "spec": spec}).encode() + b'\n{"op": "faults"}\n',
    )
    # One reply, and the channel hangs up: nothing after the long line is read.
    assert replies == [{"ok": False, "error": f"request longer than {control.MAX_REQUEST} bytes"}]
    assert sim.faults() == []


def test_a_bug_is_an_error_reply_not_a_traceback(sim_bench_factory, monkeypatch, caplog):
    sim = sim_bench_factory(control=True)

    def broken(net, seconds=None):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(sim, "history", broken)
    with pytest.raises(SimulatorError) as error:
        SimulatorClient(sim.control_address).history("VBUS")
    assert str(error.value) == "internal error: ZeroDivisionError: division by zero"
    assert "Traceback" not in str(error.value)
    assert "control request" in caplog.text  # the traceback is the simulator's log's
    assert SimulatorClient(sim.control_address).faults() == []  # and it serves on


def test_a_stale_socket_is_replaced_and_a_live_one_refused(tmp_path, sim_bench_factory):
    path = tmp_path / "sim.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nothing answers: a simulator that died
    sim = sim_bench_factory(control=path)
    assert SimulatorClient(path).faults() == []
    with pytest.raises(SimulatorError, match="a simulator already answers on"):
        control.bind_control(path)
    assert SimulatorClient(path).describe().resources == sim.resources


def test_a_path_too_long_for_a_unix_socket_is_named(tmp_path):
    path = tmp_path / ("d" * 120) / "sim.sock"
    with pytest.raises(SimulatorError, match="a Unix socket path may have at most 107"):
        control.bind_control(path)


def test_nothing_there_is_a_simulator_error(tmp_path):
    with pytest.raises(SimulatorError, match=r"no simulator answers on .*none\.sock"):
        SimulatorClient(tmp_path / "none.sock").truth()
