"""Hosting a bench's simulator where its service and tools find it.

:class:`SimulatorHost` runs a :class:`~interlock.sim.bench.SimulatedBench`
with its control channel on the bench's ``sim.sock`` and its state file
``sim.json`` in the bench's run directory (see :mod:`interlock.sim.process`).
The control socket is bound first, under the bench's simulator lock, so a
second simulator of the same bench is refused before it opens anything. It
runs in ``interlock sim start`` (in the foreground, or the detached process
that :func:`~interlock.sim.process.ensure_simulator` starts, which hands it
the socket already bound), or in a test process that wants the bench's
service to find an in-process simulator::

    with SimulatorHost(bench) as host:       # the service finds it
        host.simulator.ground_truth          # and the test sees inside it
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterable
from typing import Any

from interlock.errors import SimulatorError
from interlock.sim import control
from interlock.sim.bench import SimulatedBench
from interlock.sim.client import (
    SimulatorState,
    control_path,
    read_state,
    state_path,
    write_state,
)
from interlock.sim.process import run_lock


class SimulatorHost:
    """One bench's simulator, served under its run directory; a context manager.

    ``control_socket``: the control channel's socket, already bound (by the
    starter that spawned this process); otherwise it is bound here.
    """

    def __init__(
        self,
        bench: Any,
        *,
        faults: Iterable[str] = (),
        ports: str = "free",
        seed: int | None = None,
        control_socket: socket.socket | None = None,
    ) -> None:
        if bench.environment != "simulation":
            raise SimulatorError(
                f"bench {bench.name} is a {bench.environment} bench: only a simulation bench "
                "is simulated"
            )
        self.bench = bench
        self._faults = list(faults)
        self._ports = ports
        self._seed = seed
        self._socket = control_socket
        self.simulator: SimulatedBench | None = None
        self.state: SimulatorState | None = None

    def start(self) -> SimulatorHost:
        sock = self._socket
        if sock is None:
            with run_lock(self.bench):
                sock = control.bind_control(control_path(self.bench))
        try:
            simulator = SimulatedBench(
                self.bench, faults=self._faults, ports=self._ports, seed=self._seed, control=sock
            ).start()
        except BaseException:
            sock.close()  # its file stays, answering nothing: the next starter replaces it
            raise
        self.simulator = simulator
        described = simulator.describe()
        self.state = SimulatorState.from_dict(
            {**described, "started": time.time()}, "the simulator"
        )
        try:
            write_state(state_path(self.bench), self.state)
        except OSError as exc:
            self.stop()
            raise SimulatorError(f"cannot write {state_path(self.bench)}: {exc}") from exc
        return self

    def stop(self) -> None:
        """Stop the instruments (the relays open, the ports close) and remove the state file."""
        simulator, self.simulator = self.simulator, None
        if simulator is None:
            return
        with contextlib.suppress(OSError):
            found = read_state(state_path(self.bench))
            if found is not None and found.pid == os.getpid():
                state_path(self.bench).unlink()
        simulator.stop()

    def __enter__(self) -> SimulatorHost:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
