"""What a sequence runs against: a small interface, and its two implementations.

The runner speaks only to a :class:`Target`, so the same run drives either

- the controller service, through its Python client (:func:`service_client`):
  the normal way, the service owning the instruments; or
- for a simulation bench, a :class:`~interlock.controller.Controller` in this
  process on a fresh :class:`~interlock.sim.bench.SimulatedBench`
  (:func:`simulated_controller`): no service needed, the ground truth at hand.

Every method is a request to the interlock: it checks, journals and refuses
(``LimitViolation``) exactly as for any other client.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from interlock.config import Configuration
from interlock.errors import ConfigError

if TYPE_CHECKING:
    from interlock.client import Client
    from interlock.controller import Controller
    from interlock.sim.bench import SimulatedBench


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


class ClientTarget:
    """A :class:`Target` on the controller service, through :mod:`interlock.client`."""

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


class ControllerTarget:
    """A :class:`Target` on a controller in this process."""

    def __init__(self, controller: Controller, who: str = "sequence") -> None:
        self.controller = controller
        self.who = who

    def arm(self, operator: str) -> None:
        self.controller.arm(operator, client=self.who)

    def disarm(self, operator: str) -> None:
        self.controller.disarm(operator, client=self.who)

    def set_voltage(self, net: str, volts: float) -> None:
        self.controller.set_voltage(net, volts, who=self.who)

    def set_current_limit(self, net: str, amps: float) -> None:
        self.controller.set_current_limit(net, amps, who=self.who)

    def set_relay(self, relay: str, closed: bool) -> None:
        self.controller.set_relay(relay, closed, who=self.who)

    def output_on(self, net: str) -> None:
        self.controller.output_on(net, who=self.who)

    def output_off(self, net: str) -> None:
        self.controller.output_off(net, who=self.who)

    def measure(self, net: str) -> dict[str, float]:
        return self.controller.measure(net)

    def status(self) -> dict[str, Any]:
        return self.controller.status()

    def safe_state(self, reason: str) -> None:
        self.controller.safe_state(reason)


@contextlib.contextmanager
def simulated_controller(
    configuration: Configuration,
    *,
    simulator: SimulatedBench | None = None,
    journal_path: str | Path | None = None,
) -> Iterator[ControllerTarget]:
    """A connected controller on a simulated bench; driven safe and closed on exit.

    The simulated bench is started here (on free ports, so a simulator or
    service already running for this bench is left alone) unless a running
    ``simulator`` is given, e.g. by a test that reads its ground truth.
    The journal is the bench's own unless ``journal_path`` says otherwise.
    """
    bench = configuration.bench
    if bench.environment != "simulation" or bench.simulation is None:
        raise ConfigError(
            bench.shown_path,
            "bench.environment",
            f"bench {bench.name} is not a simulation bench ({bench.environment}): a sequence "
            "runs in-process only on a simulation bench; run it through the controller service",
        )
    # Imported here: the dry run imports this module and must load no driver.
    from interlock.controller import Controller
    from interlock.journal import Journal
    from interlock.sim.bench import SimulatedBench

    with contextlib.ExitStack() as stack:
        if simulator is None:
            simulator = stack.enter_context(SimulatedBench(bench, ports="free"))
        path = Path(journal_path) if journal_path is not None else bench.service.journal
        path.parent.mkdir(parents=True, exist_ok=True)
        journal = stack.enter_context(Journal(path, bench=bench.name))
        controller = Controller(configuration, journal, resources=simulator.resources)
        stack.callback(controller.close)
        controller.connect()
        yield ControllerTarget(controller)
