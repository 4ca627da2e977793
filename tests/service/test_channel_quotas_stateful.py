"""Random openings and closings of command channel connections, by every role and by nobody.

Against a running service with small quotas (so that they are reached
often), a model of who holds which connection predicts every hello's
answer: beyond its role's quota, always refused at once; within it,
accepted (once the service has seen the closings the model counts, which
it learns a moment after they happen). A wrong token never takes a place.
Whatever the others hold, the operator gets in while its own room lasts.
"""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from interlock.service import channel
from interlock.service.runtime import Service
from interlock.service.server import ServiceThread
from interlock.service.tokens import ROLES, read_token
from interlock.service.wire import CHANNEL_VERSION, channel_path
from tests.service.conftest import stop_simulators, write_bench

QUOTAS = {"viewer": 2, "script": 3, "operator": 2}
# A place freed by a closing is given back once the service has seen the closing.
RELEASE_WAIT_S = 10.0


class ChannelMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._saved = dict(channel.QUOTAS)
        channel.QUOTAS.update(QUOTAS)
        self.directory = Path(tempfile.mkdtemp(prefix="ilk-", dir="/tmp"))
        bench = write_bench(self.directory)
        self.thread = ServiceThread(Service(bench)).start()
        self.path = str(channel_path(self.thread.socket_path))
        tokens = self.thread.service.settings.tokens
        self.tokens = {role: read_token(tokens, role) for role in ROLES}
        self.held: list[tuple[str, socket.socket]] = []

    def teardown(self) -> None:
        try:
            for _, sock in self.held:
                sock.close()
            self.thread.stop()
        finally:
            channel.QUOTAS.clear()
            channel.QUOTAS.update(self._saved)
            stop_simulators(self.directory)  # the service's simulator outlives the service
            shutil.rmtree(self.directory, ignore_errors=True)

    def _hello(self, token: str) -> tuple[dict[str, Any], socket.socket]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
        sock.connect(self.path)
        sock.sendall((json.dumps({"hello": CHANNEL_VERSION, "token": token}) + "\n").encode())
        line = b""
        while not line.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            line += chunk
        return json.loads(line), sock

    def _count(self, role: str) -> int:
        return sum(1 for r, _ in self.held if r == role)

    @rule(role=st.sampled_from(ROLES))
    def open_one(self, role: str) -> None:
        full = self._count(role) >= QUOTAS[role]
        deadline = time.monotonic() + RELEASE_WAIT_S
        while True:
            reply, sock = self._hello(self.tokens[role])
            if "ok" in reply:
                assert not full, f"a {role} connection beyond its quota of {QUOTAS[role]}"
                assert reply["ok"]["role"] == role
                self.held.append((role, sock))
                return
            sock.close()
            assert reply["error"] == "ServiceUnavailable", reply
            assert f"the {role} role already has" in reply["message"]
            if full:
                return
            # Within the quota by the model: a closing the service has not seen yet.
            assert time.monotonic() < deadline, f"{role} refused within its quota"
            time.sleep(0.01)

    @rule(token=st.sampled_from(["", "wrong", "x" * 43]))
    def open_with_a_wrong_token(self, token: str) -> None:
        reply, sock = self._hello(token)
        sock.close()
        assert reply["error"] == "AccessDenied", reply

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def close_one(self, data: Any) -> None:
        index = data.draw(st.integers(0, len(self.held) - 1))
        _, sock = self.held.pop(index)
        sock.close()

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def use_one(self, data: Any) -> None:
        role, sock = self.held[data.draw(st.integers(0, len(self.held) - 1))]
        sock.sendall(b'{"op": "status"}\n')
        reply = json.loads(sock.makefile("rb").readline())
        assert reply["ok"]["you"]["role"] == role

    @invariant()
    def within_quotas(self) -> None:
        for role in ROLES:
            assert self._count(role) <= QUOTAS[role]


ChannelMachine.TestCase.settings = settings(
    max_examples=8,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
test_channel_quotas_stateful = ChannelMachine.TestCase
