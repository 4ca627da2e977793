"""Access control: tokens per role, refusals journaled, flight benches armed by typed name."""

from __future__ import annotations

import os
import stat

import httpx
import pytest

from interlock.errors import StateError
from interlock.journal import JournalReader
from interlock.service.tokens import ROLES, token_path
from interlock.service.wire import AccessDenied
from tests.service.conftest import Served, assert_bench_safe


def _raw(served: Served) -> httpx.Client:
    transport = httpx.HTTPTransport(uds=str(served.service.settings.socket))
    return httpx.Client(transport=transport, base_url="http://interlock")


def _journal(served: Served) -> list:
    with JournalReader(served.service.settings.journal) as reader:
        return list(reader.entries())


def test_tokens_are_owner_only_files_made_once(serve_bench):
    served = serve_bench()
    tokens = served.service.settings.tokens
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o700
    first = {}
    for role in ROLES:
        path = token_path(tokens, role)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, role
        first[role] = path.read_text()
    assert len(set(first.values())) == len(ROLES)
    assert stat.S_IMODE(served.service.settings.socket.stat().st_mode) == 0o600
    served.stop()
    again = serve_bench()  # a restart keeps the tokens clients already hold
    assert {role: token_path(tokens, role).read_text() for role in ROLES} == first
    assert again.client("viewer").status()["state"] == "safe"


def test_a_token_readable_by_others_is_refused(served):
    path = token_path(served.service.settings.tokens, "script")
    os.chmod(path, 0o644)
    with pytest.raises(Exception, match="readable by others"):
        served.client("script")


def test_requests_without_a_valid_token_are_refused_and_journaled(served):
    with _raw(served) as raw:
        missing = raw.post("/estop", headers={"X-Interlock-User": "mallory"})
        wrong = raw.post("/arm", headers={"Authorization": "Bearer not-a-token"})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"] == "AccessDenied"
    assert wrong.status_code == 401
    assert served.controller.state == "safe"  # neither stopped nor armed
    served.thread.gate.refusals.flush()  # counted, journaled in aggregate (test_refusals.py)
    refusals = [
        e for e in _journal(served) if e.kind == "verdict" and e.payload.get("rule") == "access"
    ]
    assert [e.payload["reason"] for e in refusals] == ["no token", "invalid token"]
    assert [e.payload["count"] for e in refusals] == [1, 1]
    requests = [e for e in _journal(served) if e.kind == "request"]
    assert requests[0].actor == "mallory"
    assert requests[0].payload["path"] == "/estop"


def test_every_route_refuses_weaker_roles(served):
    """The schema says each route's least role; every weaker role and no token are refused."""
    tokens = {role: served.token(role) for role in ROLES}
    with _raw(served) as raw:
        viewer = {"Authorization": f"Bearer {tokens['viewer']}"}
        schema = raw.get("/openapi.json", headers=viewer).json()
    checked = 0
    with _raw(served) as raw:
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                needs = operation["x-interlock-role"]
                url = path.replace("{net}", "VLOGIC").replace("{relay}", "K1")
                url = url.replace("{lease_id}", "nope")
                weaker = [None, "bogus", *ROLES[: ROLES.index(needs)]]
                for role in weaker:
                    headers = {}
                    if role is not None:
                        headers["Authorization"] = f"Bearer {tokens.get(role, role)}"
                    response = raw.request(method.upper(), url, headers=headers, json={})
                    expected = 403 if role in ROLES else 401
                    assert response.status_code == expected, (method, path, role, response.text)
                    checked += 1
    assert checked >= 25
    assert served.controller.state == "safe"
    assert_bench_safe(served.truth())


def test_viewer_cannot_arm_but_may_stop(served):
    viewer = served.client("viewer")
    with pytest.raises(AccessDenied) as refused:
        viewer.arm()
    assert (refused.value.role, refused.value.needs) == ("viewer", "operator")
    served.client("operator").arm()
    viewer.estop()  # any authenticated client may stop the bench
    status = viewer.status()
    assert status["state"] == "fault"
    assert status["fault"].startswith("estop")


def test_script_cannot_arm_or_reset(served):
    script = served.client("script")
    for action in (script.arm, script.reset, script.disarm):
        with pytest.raises(AccessDenied):
            action()
    assert served.controller.state == "safe"


@pytest.fixture
def flight(sim_bench_factory, serve_bench) -> Served:
    """A flight bench file in front of simulated instruments (a flight bench has no DUT model).

    The simulator is set up first so that it is stopped last, after the service.
    """
    sim = sim_bench_factory()
    served = serve_bench(environment="flight", name="fm-bench-02", resources=sim.resources)
    served.simulator = sim
    return served


def test_flight_bench_needs_an_operator_and_the_typed_name(flight):
    status = flight.client("viewer").status()
    assert (status["bench"], status["environment"]) == ("fm-bench-02", "flight")
    with pytest.raises(AccessDenied):
        flight.client("script").arm(confirm="fm-bench-02")
    operator = flight.client("operator")
    for confirm in (None, "sim-bench-01", "FM-BENCH-02"):
        with pytest.raises(StateError, match="flight bench"):
            operator.arm(confirm=confirm)
        assert flight.controller.state == "safe"
    operator.arm(confirm="fm-bench-02")
    assert flight.controller.state == "armed"
    assert_bench_safe(flight.truth())
