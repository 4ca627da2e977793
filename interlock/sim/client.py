"""A running simulator, seen from another process: its state file and its control channel.

A simulation bench's simulator runs as a process of its own
(:mod:`interlock.sim.host`) and says where it is in ``sim.json``, in the
bench's run directory (next to the service's socket). :class:`SimulatorClient`
reaches it over its control channel (:mod:`interlock.sim.control`)::

    sim = SimulatorClient.of_bench(load_bench("bench.toml"))
    sim.inject("short:VBUS")
    sim.truth()["supplies"]["psu"]["2"]["output"]     # False: its protection cut it
    sim.history("VBUS", seconds=1.0).samples          # what VBUS did over the last second
    sim.clear()

It is what ``interlock sim inject|clear|truth`` and the pytest plugin's
``bench.sim`` use; every call raises :class:`~interlock.errors.SimulatorError`
when the simulator is gone or refuses.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from interlock.errors import SimulatorError
from interlock.sim import control
from interlock.sim.truth import History

STATE_FILE = "sim.json"
CONTROL_SOCKET = "sim.sock"


def run_directory(bench: Any) -> Path:
    """Where a bench's service and simulator keep their sockets and files."""
    return Path(bench.service.socket).parent


def state_path(bench: Any) -> Path:
    return run_directory(bench) / STATE_FILE


def control_path(bench: Any) -> Path:
    return run_directory(bench) / CONTROL_SOCKET


@dataclass(frozen=True)
class SimulatorState:
    """Who a running simulator is: what ``sim.json`` holds and ``describe`` answers."""

    pid: int
    bench: str
    bench_file: str
    bench_sha256: str
    control: str
    resources: dict[str, str]
    history: float  # seconds of the history ring
    faults: list[str] = field(default_factory=list)
    started: float | None = None  # wall clock

    @classmethod
    def from_dict(cls, data: Any, where: str) -> SimulatorState:
        try:
            state = cls(
                pid=int(data["pid"]),
                bench=str(data["bench"]),
                bench_file=str(data["bench_file"]),
                bench_sha256=str(data["bench_sha256"]),
                control=str(data["control"]),
                resources={str(k): str(v) for k, v in dict(data["resources"]).items()},
                history=float(data["history"]),
                faults=[str(f) for f in data.get("faults", [])],
                started=None if data.get("started") is None else float(data["started"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SimulatorError(f"{where}: not a simulator's description: {exc!r}") from exc
        if state.pid <= 0 or not math.isfinite(state.history):
            raise SimulatorError(f"{where}: not a simulator's description (pid {state.pid})")
        return state

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_state(path: Path) -> SimulatorState | None:
    """The state file's content; None if there is none (or it is not one)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return SimulatorState.from_dict(data, str(path))
    except (OSError, ValueError, SimulatorError):
        return None


def write_state(path: Path, state: SimulatorState, *, exclusive: bool = False) -> bool:
    """Write the state file owner-only, whole or not at all (a reader never sees half).
    ``exclusive``: only where nothing is (False, and nothing written, if something is)."""
    temporary = Path(path).with_name(f".{Path(path).name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(state.as_dict(), indent=2) + "\n")
    if not exclusive:
        os.replace(temporary, path)
        return True
    try:
        os.link(temporary, path)  # never over a file another process put there
    except FileExistsError:
        return False
    finally:
        os.unlink(temporary)
    return True


class SimulatorClient:
    """The control channel of one running simulator (cheap: one connection per call)."""

    def __init__(self, control_socket: str | Path, *, timeout: float = 10.0) -> None:
        self.control = Path(control_socket)
        self.timeout = timeout
        self._state: SimulatorState | None = None

    @classmethod
    def of_bench(cls, bench: Any) -> SimulatorClient:
        """The simulator the bench's state file names (the one its service uses)."""
        if bench.environment != "simulation":
            raise SimulatorError(
                f"bench {bench.name} is a {bench.environment} bench: it has no simulator"
            )
        state = read_state(state_path(bench))
        if state is None:
            raise SimulatorError(
                f"no running simulator for bench {bench.name}: no {state_path(bench)} "
                "(interlock sim start, or any command that starts the bench's service, "
                "starts one)"
            )
        return cls(state.control)

    def _call(self, op: str, **arguments: Any) -> dict[str, Any]:
        return control.request(self.control, {"op": op, **arguments}, timeout=self.timeout)

    def describe(self) -> SimulatorState:
        """Ask the simulator who it is (its pid, bench, resources...)."""
        self._state = SimulatorState.from_dict(self._call("describe"), str(self.control))
        return self._state

    @property
    def state(self) -> SimulatorState:
        return self._state or self.describe()

    @property
    def resources(self) -> dict[str, str]:
        """Instrument name -> VISA resource or pty path, as the simulator serves them."""
        return dict(self.state.resources)

    @property
    def pid(self) -> int:
        return self.state.pid

    def inject(self, spec: str) -> list[str]:
        """Inject a fault (``interlock sim inject --help`` lists the SPECs); the active ones."""
        return list(self._call("inject", spec=spec)["faults"])

    def clear(self, spec: str | None = None) -> list[str]:
        """Clear one fault, or all of them; the ones still active."""
        return list(self._call("clear", spec=spec)["faults"])

    def faults(self) -> list[str]:
        return list(self._call("faults")["faults"])

    def truth(self) -> dict[str, Any]:
        """The ground truth now (see :mod:`interlock.sim.truth`), without the history."""
        return dict(self._call("truth")["truth"])

    def history(self, net: str, seconds: float | None = None) -> History:
        """What ``net`` did over the last ``seconds`` (default: the whole ring), and
        every state change of the bench meanwhile, on the simulator's clock."""
        return History.from_dict(self._call("history", net=net, seconds=seconds)["history"])

    def __repr__(self) -> str:
        return f"SimulatorClient({str(self.control)!r})"
