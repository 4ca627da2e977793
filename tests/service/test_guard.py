"""Nothing is read for a caller without a valid token; every request is bounded before its work.

A 300 MB body is streamed at the service (generated as it is sent, so the
test holds none of it): without a valid token it is refused from its headers
and the service reads almost none of it, nor does its memory grow; with a
valid token it is refused once past the largest body the API takes. Heads
and bodies that trickle in are cut off; no refusal repeats the token.
"""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from interlock.service import guard, protocol
from tests.service.conftest import Served, assert_bench_safe, bring_up

BIG = 300 * 1024 * 1024
CHUNK = b"x" * (256 * 1024)
# What may be sent before the refusal arrives: the kernel's socket buffers and the
# server's read-ahead (a few hundred KiB); reading the body would take all 300 MB.
SENT_BOUND = 16 * 1024 * 1024
# Peak memory growth allowed for the whole test process (service included): reading
# the body into memory would add at least 300 MB.
MEMORY_BOUND_KIB = 64 * 1024


class Stream:
    """A body made as it is sent, counting what the client could push out."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        while self.sent < self.total:
            self.sent += len(CHUNK)
            yield CHUNK


def _raw(served: Served, timeout: float = 30.0) -> httpx.Client:
    transport = httpx.HTTPTransport(uds=str(served.service.settings.socket))
    return httpx.Client(transport=transport, base_url="http://interlock", timeout=timeout)


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _send_big(served: Served, token: str | None, *, declared: bool) -> tuple[int | None, Stream]:
    """PUT 300 MB at a route that takes a body; the status, or None if the connection broke.

    A service that closes a connection with the client's bytes unread resets it, and
    the client may lose the answer with them.
    """
    body = Stream(BIG)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if declared:
        headers["Content-Length"] = str(BIG)
    with _raw(served) as raw:
        try:
            response = raw.put("/nets/VLOGIC/voltage", content=body, headers=headers)
        except httpx.TransportError:
            return None, body
        assert response.headers.get("connection") == "close"  # nothing more is read
        return response.status_code, body


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_huge_body_without_a_token_is_refused_unread(served, declared):
    operator = served.client("operator")
    operator.arm()
    script = served.client("script")
    with script.lease():
        bring_up(script)
        before, refused = _peak_kib(), served.thread.gate.refusals.total
        status, body = _send_big(served, None, declared=declared)
        assert status in (401, None)
        assert served.thread.gate.refusals.total == refused + 1  # refused for its token
        assert body.sent < SENT_BOUND, f"{body.sent} bytes sent before the refusal"
        assert _peak_kib() - before < MEMORY_BOUND_KIB
        operator.estop()  # the service answers, and the stop works
        assert served.controller.state == "fault"
    assert_bench_safe(served.truth())


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_huge_body_with_a_valid_token_is_refused_past_the_bound(served, declared):
    before = _peak_kib()
    status, body = _send_big(served, served.token("script"), declared=declared)
    assert status in (413, None)
    assert body.sent < SENT_BOUND
    assert _peak_kib() - before < MEMORY_BOUND_KIB
    assert served.controller.commanded.net("VLOGIC").voltage == 0


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_stop_with_a_huge_body_stops_and_reads_none_of_it(served, declared):
    """Anyone may stop, whatever they send with it: the stop takes no body and reads none."""
    served.client("operator").arm()
    script = served.client("script")
    body = Stream(BIG)
    headers = {"Authorization": f"Bearer {served.token('viewer')}"}
    if declared:
        headers["Content-Length"] = str(BIG)
    with script.lease():
        bring_up(script)
        before = _peak_kib()
        with _raw(served) as raw:
            try:
                response = raw.post("/estop", content=body, headers=headers)
            except httpx.TransportError:
                response = None  # closed with our bytes unread: the answer may be lost
        assert served.controller.state == "fault"
        assert served.controller.fault_cause.startswith("estop")
        assert body.sent < SENT_BOUND
        assert _peak_kib() - before < MEMORY_BOUND_KIB
        if response is not None:
            assert response.status_code == 200
            assert response.headers["connection"] == "close"
    assert_bench_safe(served.truth())


def test_a_body_just_over_the_bound_is_refused_and_one_within_it_is_taken(served):
    operator = served.client("operator")
    operator.arm()
    headers = {
        "Authorization": f"Bearer {served.token('script')}",
        "Content-Type": "application/json",
    }
    within = json.dumps({"volts": 3.0}).encode()
    padded = within[:-1] + b" " * (guard.MAX_BODY - len(within)) + b"}"
    assert len(padded) == guard.MAX_BODY
    with _raw(served) as raw:
        over = raw.put("/nets/VLOGIC/voltage", content=padded + b" ", headers=headers)
        taken = raw.put("/nets/VLOGIC/voltage", content=padded, headers=headers)
    assert over.status_code == 413, over.text
    assert over.json()["error"] == "InvalidRequest"
    assert taken.status_code == 200, taken.text
    assert served.controller.commanded.net("VLOGIC").voltage == 3.0


def _connect(served: Served) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(served.service.settings.socket))
    return sock


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_a_head_that_trickles_in_is_cut_off(served, monkeypatch):
    monkeypatch.setattr(protocol, "HEAD_TIMEOUT_S", 0.3)
    with _connect(served) as silent, _connect(served) as slow:  # one says nothing at all
        slow.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n")  # one never ends its head
        assert _read_all(silent) == b""  # closed by the service
        assert _read_all(slow) == b""
    assert served.client("viewer").status()["state"] == "safe"


def test_a_keep_alive_connection_gets_a_new_deadline_for_each_head(served, monkeypatch):
    monkeypatch.setattr(protocol, "HEAD_TIMEOUT_S", 0.3)
    request = f"GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {served.token('viewer')}"
    with _connect(served) as sock, sock.makefile("rb") as replies:
        sock.sendall(request.encode() + b"\r\n\r\n")
        assert replies.readline().startswith(b"HTTP/1.1 200")
        head = b"".join(iter(replies.readline, b"\r\n")).lower()
        length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
        assert len(replies.read(length)) == length  # the whole answer, kept alive
        sock.sendall(b"GET /status HTTP/1.1\r\n")  # the next head, never finished
        assert replies.read() == b""


def test_a_body_that_trickles_in_is_refused(served, monkeypatch):
    monkeypatch.setattr(guard, "BODY_TIMEOUT_S", 0.3)
    head = (
        "PUT /nets/VLOGIC/voltage HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: 20\r\nAuthorization: Bearer {served.token('script')}\r\n\r\n"
    )
    with _connect(served) as sock:
        sock.sendall(head.encode() + b'{"volts":')  # and the rest never comes
        reply = _read_all(sock)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert served.controller.commanded.net("VLOGIC").voltage == 0


def test_a_head_over_the_bound_is_refused(served, caplog):
    # h11 bounds the head still incomplete after a read (MAX_HEAD); one read takes 256 KiB.
    padding = "a" * (1024 * 1024)
    head = f"GET /status HTTP/1.1\r\nHost: x\r\nX-Padding: {padding}\r\n\r\n".encode()
    with _connect(served) as sock:
        with contextlib.suppress(BrokenPipeError):  # refused and closed before it was all sent
            sock.sendall(head)
        # Closed with our bytes unread: the answer may be lost with them.
        with contextlib.suppress(ConnectionResetError):
            assert _read_all(sock).startswith(b"HTTP/1.1 400")
    assert "Invalid HTTP request received" in caplog.text


def test_no_refusal_repeats_the_token(served, monkeypatch):
    """A token sent where it does not belong, or to a role that may not, comes back nowhere."""
    monkeypatch.setattr(guard, "BODY_TIMEOUT_S", 0.3)
    secret = "Zq7-secret-token-that-must-not-come-back-9x"
    viewer = served.token("viewer")
    cases = [
        ("POST", "/arm", {"Authorization": f"Bearer {secret}"}, None),
        ("POST", "/arm", {"Authorization": f"Basic {secret}"}, None),
        ("POST", "/arm", {"Authorization": secret, "X-Interlock-User": secret}, None),
        ("POST", "/arm", {"Authorization": f"Bearer {viewer}"}, {"confirm": secret}),
        ("PUT", "/nets/VLOGIC/voltage", {"Authorization": f"Bearer {viewer}"}, {"volts": secret}),
        ("PUT", f"/nets/{secret}/voltage", {"Authorization": f"Bearer {secret}"}, {"volts": 1}),
    ]
    with _raw(served) as raw:
        for method, path, headers, body in cases:
            response = raw.request(method, path, headers=headers, json=body)
            assert response.status_code in (401, 403), (method, path, response.text)
            seen = response.text + json.dumps(dict(response.headers))
            assert secret not in seen and viewer not in seen, (method, path, response.text)
        big = raw.put(
            "/nets/VLOGIC/voltage",
            content=b"x" * (guard.MAX_BODY + 1),
            headers={"Authorization": f"Bearer {served.token('script')}"},
        )
        assert big.status_code == 413
        assert served.token("script") not in big.text


def test_requests_after_a_refusal_on_another_connection_are_served(served):
    """A refusal closes its own connection only."""
    with _raw(served) as raw:
        assert raw.get("/status").status_code == 401
        ok = raw.get("/status", headers={"Authorization": f"Bearer {served.token('viewer')}"})
    assert ok.status_code == 200
    deadline = time.monotonic() + 10
    while served.controller.state != "safe" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ok.json()["state"] == "safe"
