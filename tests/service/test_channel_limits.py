"""The command channel's bounds: per-role quotas, hellos in time, and no secret echoed back."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from typing import Any

import pytest

from interlock.errors import ServiceUnavailable
from interlock.service import channel
from interlock.service.wire import CHANNEL_VERSION, channel_path
from tests.service.conftest import Served


class Line:
    """A raw connection to the command channel."""

    def __init__(self, served: Served) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(channel_path(served.service.settings.socket)))
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes) -> dict[str, Any] | None:
        self.sock.sendall(data)
        return self.reply()

    def reply(self) -> dict[str, Any] | None:
        line = self.file.readline()
        return json.loads(line) if line else None

    def hello(self, token: str) -> dict[str, Any] | None:
        return self.send((json.dumps({"hello": CHANNEL_VERSION, "token": token}) + "\n").encode())

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def lines(served: Served):
    opened: list[Line] = []

    def open_line() -> Line:
        line = Line(served)
        opened.append(line)
        return line

    yield open_line
    for line in opened:
        line.close()


def test_a_flood_of_viewers_leaves_room_for_scripts_and_the_operator(served, lines):
    viewers = [lines() for _ in range(channel.QUOTAS["viewer"])]
    for viewer in viewers:
        assert viewer.hello(served.token("viewer"))["ok"]["role"] == "viewer"
    one_more = lines()
    refused = one_more.hello(served.token("viewer"))
    assert refused["error"] == "ServiceUnavailable"
    assert "viewer role already has" in refused["message"]
    assert one_more.reply() is None  # and closed
    # The others' rooms are their own.
    assert served.client("operator").status()["state"] == "safe"
    assert "voltage" in served.client("script").measure("VLOGIC")
    assert lines().hello(served.token("operator"))["ok"]["role"] == "operator"
    viewers[0].close()  # a place freed is a place taken again, once its thread has ended
    deadline = time.monotonic() + 10
    while "error" in (reply := lines().hello(served.token("viewer"))):
        assert time.monotonic() < deadline, reply
        time.sleep(0.01)
    assert reply["ok"]["role"] == "viewer"


def test_a_role_over_its_quota_is_told_so_and_the_python_client_sees_it(served, monkeypatch):
    monkeypatch.setitem(channel.QUOTAS, "script", 2)
    first, second, third = (served.client("script") for _ in range(3))
    first.status(), second.status()  # each holds a connection of its pool
    with pytest.raises(ServiceUnavailable, match="script role already has 2"):
        third.status()
    assert served.client("operator").status()["state"] == "safe"


def test_silent_connections_of_one_process_do_not_keep_others_out(served, lines):
    silent = [lines() for _ in range(channel.MAX_PENDING_PER_PEER)]
    refused = lines().reply()  # this process's next one is refused at once
    assert refused["error"] == "ServiceUnavailable"
    assert "waiting for their hello" in refused["message"]
    # Another process says hello and is served meanwhile.
    other = subprocess.run(
        [sys.executable, "-c", _HELLO, str(channel_path(served.service.settings.socket))],
        input=served.token("viewer"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(other.stdout)["ok"]["role"] == "viewer", other.stderr
    assert len(silent) == channel.MAX_PENDING_PER_PEER


_HELLO = """
import json, socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.settimeout(30)
sock.connect(sys.argv[1])
sock.sendall((json.dumps({"hello": 1, "token": sys.stdin.read().strip()}) + "\\n").encode())
print(sock.makefile("rb").readline().decode())
"""

SECRET = "Zq7-secret-token-that-must-not-come-back-9x"


@pytest.mark.parametrize(
    "hello",
    [
        {"hello": CHANNEL_VERSION, "token": SECRET},
        {"hello": SECRET},
        {"hello": 2, "token": SECRET},
        {"hello": True, "token": SECRET},
        {"token": SECRET},
        {"op": "status", "token": SECRET},
        {"hello": CHANNEL_VERSION, "token": [SECRET]},
        {"hello": CHANNEL_VERSION, "token": {"t": SECRET}},
        {"hello": CHANNEL_VERSION, "token": 7, "user": SECRET, "client": SECRET},
        [SECRET],
        SECRET,
    ],
)
def test_no_error_of_the_hello_repeats_what_it_said(served, lines, hello):
    reply = lines().send((json.dumps(hello) + "\n").encode())
    assert reply is not None and "error" in reply
    assert SECRET not in json.dumps(reply)


@pytest.mark.parametrize(
    "raw",
    [
        f'{{"hello": 1, "token": "{SECRET}"'.encode(),  # cut short
        f'{{"hello": 1, "token": "{SECRET}\xff"}}'.encode("latin-1"),  # not UTF-8
        f"hello {SECRET}".encode(),
        f'{{"hello": 1, "token": "{SECRET}", }}'.encode(),
    ],
)
def test_no_error_of_a_garbled_hello_repeats_it(served, lines, raw):
    reply = lines().send(raw + b"\n")
    assert reply is not None and reply["error"] == "InvalidRequest"
    assert SECRET not in json.dumps(reply)
    assert "hello" in reply["message"]  # it still says what was expected
