"""What a sequence runs against: a controller service, through the client library.

The runner speaks only to a :class:`Target` (the tests give it a fake one);
its one implementation is :class:`ClientTarget`, the client library's sync
face, acting as an operator and holding the bench's lease for the whole
run. Two ways to a service, one way in:

- :func:`service_client`: the bench's own service (started in the
  background for a simulation bench when none answers);
- :func:`in_process_service`: for a simulation bench, a service hosted in
  this process on a fresh simulated bench, its sockets and tokens in a
  private directory and its journal the bench's own. Nothing of it outlives
  the run, and nothing else of the bench (its service, its simulator) is
  touched.

Either way every method is a request to the service: the same checks,
leases, journal entries and errors (``LimitViolation``...) as for any other
client.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from interlock.config import Configuration
from interlock.errors import ConfigError

if TYPE_CHECKING:
    from interlock.client import Client
    from interlock.sim.bench import SimulatedBench

# A Unix socket's path holds at most 107 bytes: the private directory is made here.
PRIVATE_PARENT = "/tmp"


class Target(Protocol):
    def arm(self, operator: str) -> None: ...
    def disarm(self, operator: str) -> None: ...
    def set_voltage(self, net: str, volts: float) -> None: ...
    def set_current_limit(self, net: str, amps: float) -> None: ...
    def set_relay(self, relay: str, closed: bool) -> None: ...
    def output_on(self, net: str) -> None: ...
    def output_off(self, net: str) -> None: ...
    def measure(self, net: str) -> dict[str, float]: ...
    def status(self) -> dict[str, Any]: ...
    def safe_state(self, reason: str) -> None: ...
    def note(self, text: str, step: int | None = None) -> None: ...


class ClientTarget:
    """A :class:`Target` on a controller service, through :mod:`interlock.client`."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def arm(self, operator: str) -> None:
        # The client's user header names the operator in the service's journal.
        self.client.arm()

    def disarm(self, operator: str) -> None:
        self.client.disarm()

    def set_voltage(self, net: str, volts: float) -> None:
        self.client.set_voltage(net, volts)

    def set_current_limit(self, net: str, amps: float) -> None:
        self.client.set_current_limit(net, amps)

    def set_relay(self, relay: str, closed: bool) -> None:
        self.client.set_relay(relay, closed)

    def output_on(self, net: str) -> None:
        self.client.output_on(net)

    def output_off(self, net: str) -> None:
        self.client.output_off(net)

    def measure(self, net: str) -> dict[str, float]:
        return dict(self.client.measure(net))

    def status(self) -> dict[str, Any]:
        return self.client.status()

    def note(self, text: str, step: int | None = None) -> None:
        self.client.note(text, step)

    def safe_state(self, reason: str) -> None:
        # A client cannot command the safe state without a fault: the stop latches
        # one, which an operator acknowledges; that is the price of an unordered stop.
        self.client.estop()


@contextlib.contextmanager
def service_client(bench_file: str | Path, *, start: bool = True) -> Iterator[ClientTarget]:
    """The bench's service as an operator, holding the lease for the whole run.

    Operator, because a run arms the bench it finds disarmed. The lease makes
    the run a dead man's switch: if this process dies or hangs, the service
    drives the bench safe. ``start``: as :func:`interlock.client.connect`.
    """
    from interlock.client import connect

    with connect(bench_file, role="operator", start=start, who=None) as client, client.lease():
        yield ClientTarget(client)


@contextlib.contextmanager
def in_process_service(
    configuration: Configuration,
    *,
    simulator: SimulatedBench | None = None,
    journal_path: str | Path | None = None,
) -> Iterator[ClientTarget]:
    """A service in this process on a simulated bench, and its client as an operator
    holding the lease; the service drives the bench safe and stops on exit.

    The simulated bench is started here (on free ports) unless a running
    ``simulator`` is given, e.g. by a test that reads its ground truth. The
    journal is the bench's own unless ``journal_path`` says otherwise.
    """
    bench = configuration.bench
    if bench.environment != "simulation" or bench.simulation is None:
        raise ConfigError(
            bench.shown_path,
            "bench.environment",
            f"bench {bench.name} is not a simulation bench ({bench.environment}): a sequence "
            "runs in-process only on a simulation bench; run it through the controller service",
        )
    # Imported here: the dry run imports this module and must load no driver nor server.
    from interlock.client import Client
    from interlock.service.runtime import Service
    from interlock.service.server import ServiceThread
    from interlock.service.tokens import read_token
    from interlock.sim.bench import SimulatedBench

    with contextlib.ExitStack() as stack:
        if simulator is None:
            simulator = stack.enter_context(SimulatedBench(bench, ports="free"))
        private = Path(tempfile.mkdtemp(prefix="interlock-run-", dir=PRIVATE_PARENT))
        stack.callback(shutil.rmtree, private, ignore_errors=True)
        settings = dataclasses.replace(
            bench.service,
            socket=private / "interlock.sock",
            tokens=private / "tokens",
            journal=Path(journal_path) if journal_path is not None else bench.service.journal,
        )
        hosted = dataclasses.replace(
            configuration, bench=dataclasses.replace(bench, service=settings)
        )
        stack.enter_context(ServiceThread(Service(hosted, resources=simulator.resources)))
        client = stack.enter_context(
            Client(hosted.bench, role="operator", token=read_token(settings.tokens, "operator"))
        )
        stack.enter_context(client.lease())
        yield ClientTarget(client)
