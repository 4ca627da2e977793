"""API fuzzing from the service's own OpenAPI schema (schemathesis), against a real service.

The service listens on TCP here (``--tcp``): schemathesis sends its requests
with its own HTTP client, and the TCP path must demand tokens as the Unix
socket does. Every generated request is sent either with the operator's
token and the lease (so the fuzzer may arm, go live, stop, reset...) or
with no token, a bogus one or a weaker role's: those must be refused.
Invariants, checked on the simulator's ground truth after every request:
no server error, and no net ever beyond its profile's limit; at the end the
bench returns to the safe state.
"""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

from interlock import errors
from interlock.service.app import create_app
from interlock.service.runtime import Service
from interlock.service.tokens import ROLES
from tests.service.conftest import ROOT_BENCH, assert_bench_safe, assert_within_limits

EXAMPLES = 100
# Streams never end by themselves: they have their own tests.
STREAMS = {"/events", "/leases/{lease_id}/watch"}
NETS = ("VLOGIC", "VBUS", "MOTOR")
RELAYS = tuple(f"K{n}" for n in range(1, 9))
INSTRUMENT_ERRORS = {
    name for name in errors.__all__ if issubclass(getattr(errors, name), errors.InstrumentError)
}


def _strategies(schema) -> tuple[list, dict]:
    """Per operation: free generation, plus real net and relay names to reach live states."""
    strategies, roles = [], {}
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in STREAMS:
            continue
        roles[(operation.method.upper(), operation.path)] = operation.definition.raw[
            "x-interlock-role"
        ]
        strategies.append(operation.as_strategy())
        if "{net}" in operation.path:
            strategies += [operation.as_strategy(path_parameters={"net": n}) for n in NETS]
        if "{relay}" in operation.path:
            strategies += [operation.as_strategy(path_parameters={"relay": r}) for r in RELAYS]
    return strategies, roles


@pytest.fixture(scope="module")
def fuzzing() -> tuple[list, dict]:
    """The strategies, built before any service runs.

    Loading a schema holds the GIL for a few hundred milliseconds at a time;
    a service in this process would miss its relay-board heartbeats meanwhile
    (the board's watchdog opens every relay, a fault), so it is done first.
    """
    return _strategies(schemathesis.openapi.from_dict(create_app(Service(ROOT_BENCH)).openapi()))


def test_fuzzed_requests_never_fail_the_server_nor_make_the_bench_unsafe(fuzzing, serve_bench):
    strategies, roles = fuzzing
    served = serve_bench(tcp=("127.0.0.1", 0))
    host, port = served.thread.tcp_address
    base_url = f"http://{host}:{port}"
    operator = served.client("operator")
    tokens = {role: served.token(role) for role in ROLES}

    setpoints = (("VLOGIC", 5.0, 0.3), ("VBUS", 3.0, 0.3), ("MOTOR", 3.0, 0.5))

    def head_start() -> None:
        """Armed, with setpoints a fuzzed "output on" can go live with: keeps the fuzzer
        exploring the armed envelope instead of knocking on a latched fault."""
        state = served.controller.state
        if state == "fault":
            operator.reset()
        if state in ("fault", "safe"):
            operator.arm()
            for net, volts, amps in setpoints:
                operator.set_current_limit(net, amps)
                operator.set_voltage(net, volts)

    lease = operator.lease().acquire()
    codes: dict[int, int] = {}
    instrument_faults: list[str] = []
    callers = ["operator"] * 6 + ["no token", "bogus", "weaker role"]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(strategies), caller=st.sampled_from(callers), data=st.data())
    def check(case, caller, data):
        head_start()
        needs = roles[(case.method.upper(), case.operation.path)]
        case.headers = {k: v for k, v in (case.headers or {}).items() if k != "Authorization"}
        headers = {}
        if caller == "operator":
            headers = {"Authorization": f"Bearer {tokens['operator']}"}
            headers["X-Interlock-Lease"] = lease.id
        elif caller == "bogus":
            headers = {"Authorization": "Bearer bogus"}
        elif caller == "weaker role" and needs != "viewer":
            weaker = data.draw(st.sampled_from(ROLES[: ROLES.index(needs)]))
            headers = {"Authorization": f"Bearer {tokens[weaker]}"}
        elif caller == "weaker role":
            return  # nothing is weaker than a viewer
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        codes[response.status_code] = codes.get(response.status_code, 0) + 1
        if response.status_code == 502 and served.controller.state == "fault":
            # An instrument that did not hold what was commanded: not a crash of the service
            # but the controller's fail-safe (tripped, bench driven safe), reported as 502.
            instrument_faults.append(response.json()["message"])
            assert response.json()["error"] in INSTRUMENT_ERRORS, response.text
            checks = [status_code_conformance, content_type_conformance]
        else:
            checks = [not_a_server_error, status_code_conformance, content_type_conformance]
        case.validate_response(response, checks=checks)
        if caller != "operator":
            # A route that did not match (a name with '/') refuses nothing: it does nothing.
            assert response.status_code in (401, 403, 404), (case.path, response.text)
        assert_within_limits(served.truth(), served.controller)

    try:
        check()
    finally:
        lease.release()  # trips if the fuzzer left a net live: that is the safe way out
    if served.controller.state == "armed":
        operator.disarm()
    assert served.controller.state in ("safe", "fault")
    truth = served.truth()
    assert_within_limits(truth, served.controller)
    assert_bench_safe(truth)
    assert 200 in codes and 401 in codes, codes
