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
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from interlock.errors import SimulatorError
from interlock.output_file import OutputFile
from interlock.sim import control
from interlock.sim.bench import SimulatedBench
from interlock.sim.client import (
    SimulatorState,
    control_path,
    read_state,
    state_path,
    write_state,
)
from interlock.sim.process import log_path, run_lock

log = logging.getLogger(__name__)

# How often the simulator looks for its files (the service looks as often for its own).
KEEP_PERIOD_S = 0.5


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
        self._stopping = threading.Event()
        self._keeping = threading.Lock()  # held by a round of the keeper

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
        self._output = OutputFile(log_path(self.bench))  # started in the background: sim.log
        self._stopping = stopping = threading.Event()  # this start's: a restart has its own
        threading.Thread(
            target=self._keep, args=(stopping,), name="sim-keeper", daemon=True
        ).start()
        return self

    def _keep(self, stopping: threading.Event) -> None:
        """Every KEEP_PERIOD_S, put back the files the service and the tools find this
        simulator by, should they go (``rm -rf`` of the run directory): without them
        ``interlock sim stop`` cannot find it, and the next service starts a second
        simulator of the bench beside it; its log too, if it writes one. A file another
        process put there is left alone, and a starter holding the bench's simulator lock
        is let be (next round)."""
        failed: dict[str, str] = {}  # what failed last, logged once each
        while not stopping.wait(KEEP_PERIOD_S):
            # The log first: what the others say of this round goes where it is found.
            for what, work in (
                ("log", self._keep_log),
                ("control socket", self._keep_control),
                ("state", self._keep_state),
            ):
                # Under the round's lock: stop() removes the state file only after it.
                with self._keeping:
                    if stopping.is_set():
                        return
                    try:
                        made = work()
                    except Exception as error:  # tried again next round, logged once
                        said = f"{type(error).__name__}: {error}"
                        if failed.get(what) != said:
                            failed[what] = said
                            log.error("putting back the simulator's %s: %s", what, said)
                        continue
                failed.pop(what, None)
                if made:
                    log.warning("%s went while the simulator runs: made again", made)

    def _keep_control(self) -> str:
        simulator = self.simulator
        if simulator is None or not simulator.control_gone():
            return ""
        with self._unless_starting() as free:
            return simulator.keep_control() if free else ""

    def _keep_state(self) -> str:
        path, state = state_path(self.bench), self.state
        if self.simulator is None or state is None or path.exists() or path.is_symlink():
            return ""
        with self._unless_starting() as free:
            if free and write_state(path, state, exclusive=True):
                return str(path)
        return ""

    def _keep_log(self) -> str:
        return str(self._output.path) if self._output.keep() else ""

    @contextlib.contextmanager
    def _unless_starting(self) -> Iterator[bool]:
        """The bench's simulator lock, unless a starter holds it (then False: let be)."""
        control.private_directory(state_path(self.bench).parent)  # an error: logged
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(run_lock(self.bench, timeout=0))
                free = True
            except SimulatorError:  # held: a starter is binding, it goes first
                free = False
            yield free

    def stop(self) -> None:
        """Stop the instruments (the relays open, the ports close) and remove the state file."""
        self._stopping.set()
        with self._keeping:  # a round of the keeper in progress ends first
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
