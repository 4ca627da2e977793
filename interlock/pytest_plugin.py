"""pytest plugin: a ``bench`` fixture that drives the bench through its controller service.

Registered through the ``pytest11`` entry point, so installing interlock is
enough::

    def test_logic_rail(bench):                  # an interlock.client.Client
        bench.set_current_limit("VLOGIC", 0.3)
        bench.set_voltage("VLOGIC", 5.0)
        bench.output_on("VLOGIC")
        assert 4.9 < bench.measure("VLOGIC")["voltage"] < 5.1

During the test the fixture holds the bench's lease (if the test process
dies, the service drives the bench safe). Meanwhile Ctrl-C, SIGTERM (a CI
system cancelling the job) and SIGHUP (the session's end) stop the session:
they interrupt the test's body, but never a request under way, and never a
set-up or a teardown (one that comes then ends the session once the teardown
is done). So the teardown below returns the bench to safe, rather than a
killed process leave it tripped on the lost lease, a latched fault for an
operator (:mod:`interlock.interrupts`). Before the test it arms the bench
if it is disarmed and the role may (the default role is ``operator``: a test
run on one's own bench; a flight bench also needs ``--interlock-confirm``).
At teardown, whatever the test did, it returns the bench to the safe state:
outputs off in the profile's power-off order, relays open, disarmed; if that
cannot be done in order, an emergency stop. A bench found in a latched fault
is never reset by the fixture: the test errors at its set-up, saying so in a
line, and an operator looks.

On a ``simulation`` bench, ``bench.sim`` is the simulator the bench's service
uses (:class:`~interlock.sim.client.SimulatorClient`), so a team can test how
its own sequences behave under faults::

    def test_a_short_trips_the_bench(bench):
        ...                                      # VBUS live
        bench.sim.inject("short:VBUS")
        ...                                      # the interlock trips
        assert bench.sim.history("VBUS", seconds=2).samples[-1].voltage == 0.0

Faults a test leaves injected are cleared at teardown (a latched fault stays
latched). On any other bench ``bench.sim`` raises
:class:`~interlock.errors.SimulatorError`: there is nothing to inject into.

Each test that uses the fixture carries the run id (the journal's, for
``interlock postmortem RUN``), the bench, its environment class and the
bench file in its report's ``user_properties``: JUnit XML (``--junitxml``)
shows them as ``<property>`` of the test case.

Options: ``--interlock-bench FILE`` (ini ``interlock_bench``), else the
``INTERLOCK_BENCH`` environment variable, else ``bench.toml`` in the
current directory or the nearest one above it; ``--interlock-role`` (ini
``interlock_role``), ``--interlock-confirm NAME``. No bench found is one
line per test that asks for the fixture, not a traceback.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from interlock.client import Client

log = logging.getLogger(__name__)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("interlock", "interlock bench (the bench fixture)")
    group.addoption("--interlock-bench", metavar="FILE", help="bench.toml of the bench to test on")
    group.addoption(
        "--interlock-role",
        choices=("script", "operator"),
        help="role of the fixture's client (operator: it may arm and disarm)",
    )
    group.addoption(
        "--interlock-confirm", metavar="NAME", help="the bench name: needed to arm a flight bench"
    )
    parser.addini(
        "interlock_bench",
        "bench.toml of the bench to test on (default: $INTERLOCK_BENCH, else bench.toml here "
        "or above)",
        default="",
    )
    parser.addini("interlock_role", "role of the bench fixture's client", default="operator")


@pytest.fixture
def bench(request: pytest.FixtureRequest) -> Iterator[Client]:
    """A client of the bench's service, holding the lease; the bench is safe after the test."""
    from interlock.interrupts import signals_interrupt

    with signals_interrupt():  # see pytest_runtest_call and pytest_runtest_teardown
        yield from _bench(request)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A signal noted while the bench is held interrupts the test's body, at once or as it
    begins; not a request under way (interlock.interrupts), nor set-up and teardown."""
    from interlock.interrupts import active

    stops = active()
    if stops is None:
        return (yield)
    with stops.interruptible():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """No signal cuts a teardown short (another fixture's powering down, nor the bench
    fixture's return to safe): one that came while the bench was held, however the test
    took it, ends the session once this test's teardown and its report are done."""
    from interlock.interrupts import active

    stops = active()  # the bench fixture's: gone once its teardown is over
    try:
        return (yield)
    finally:
        if stops is not None and stops.by is not None:
            item.session.shouldstop = (
                f"interlock: stopped by {stops.by}; the bench was returned to safe"
            )


def _bench(request: pytest.FixtureRequest) -> Iterator[Client]:
    from interlock.client import connect
    from interlock.errors import ConfigError, FaultLatched
    from interlock.lookup import locate_bench

    config = request.config
    given = config.getoption("interlock_bench") or config.getini("interlock_bench") or None
    role = config.getoption("interlock_role") or config.getini("interlock_role")
    try:
        found = locate_bench(given, option="--interlock-bench FILE")
    except ConfigError as error:
        problem = f"interlock: {error}"
    else:
        problem = None
    if problem is not None:  # failed here, not in the handler: one line, no chained error
        pytest.fail(problem, pytrace=False)
    client = connect(found.path, role=role)
    try:
        lease = client.lease().acquire()
        try:
            status = client.status()
            if status.get("fault"):
                # An error of this test's set-up, once, rather than a failure in its body:
                # the latch is the bench's, for an operator to look at and reset.
                latched = FaultLatched.on_bench(client.name, status["fault"])
                pytest.fail(f"interlock: {latched}", pytrace=False)
            if role == "operator" and status["state"] == "safe":
                client.arm(confirm=config.getoption("interlock_confirm"))
            status = client.status()
            request.node.user_properties.extend(
                [
                    ("interlock_run", status.get("run") or ""),
                    ("interlock_bench", client.name),
                    ("interlock_environment", client.environment),
                    ("interlock_bench_file", f"{found.path} ({found.source})"),
                ]
            )
            yield client
        finally:
            return_to_safe(client, disarm=role == "operator")
            lease.release()
            if client.environment == "simulation":
                _clear_faults(client)
    finally:
        client.close()


def _clear_faults(client: Client) -> None:
    """Faults the test injected end with it: the next test starts on a sound bench."""
    from interlock.errors import SimulatorError

    try:
        client.sim.clear()
    except SimulatorError as error:
        log.error("bench %s: faults not cleared: %s", client.name, error)


def return_to_safe(client: Client, *, disarm: bool = True) -> None:
    """Outputs off in power-off order, relays open, disarmed; else an emergency stop."""
    from interlock.config import load_configuration
    from interlock.errors import InterlockError

    try:
        power_off = load_configuration(client.bench.path).limits.power_off
        status = client.status()
        if status["state"] in ("armed", "live"):
            for net in power_off:
                if status["nets"].get(net, {}).get("output"):
                    client.output_off(net)
                status = _open_relays(client)
            if status["state"] == "armed" and disarm:
                client.disarm()
    except (InterlockError, RuntimeError) as error:  # RuntimeError: the test closed the client
        log.error(
            "bench %s: orderly return to safe failed (%s): emergency stop", client.name, error
        )
        _estop(client)


def _open_relays(client: Client) -> dict:
    """Open every closed relay that may be opened now (not feeding a live net)."""
    from interlock.errors import LimitViolation

    status = client.status()
    for relay, closed in status["relays"].items():
        if closed:
            # Refused while it still feeds a live net: opened once that net is off.
            with contextlib.suppress(LimitViolation):
                client.set_relay(relay, False)
    return client.status()


def _estop(client: Client) -> None:
    from interlock.client import connect

    # A fresh client: the test may have closed or broken its own.
    with connect(client.bench.path, role="viewer", start=False) as fresh:
        fresh.estop()
