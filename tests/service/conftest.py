"""Fixtures of the service tests: real services on real Unix sockets, simulated benches.

``serve_bench(...)`` writes a copy of the root bench.toml into a short
directory under /tmp (a Unix socket path has at most 107 bytes), with its
socket, journal and tokens there and a short lease timeout, and runs the
service in a thread of the test process. A simulation bench's simulator is
hosted in the test process too (:class:`~interlock.sim.host.SimulatorHost`:
its control socket and state file where the service looks), so the service
finds it as it finds a simulator process, and the test reads its ground
truth directly. Every client made through a :class:`Served`, every service
and every simulator is closed at teardown, and any simulator process a test
started in ``short_dir`` (through a background service) is stopped.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import interlock
from interlock.client import Client
from interlock.config import load_bench
from interlock.service.runtime import Service
from interlock.service.server import ServiceThread
from interlock.service.tokens import read_token
from interlock.sim.client import read_state
from interlock.sim.host import SimulatorHost
from interlock.sim.process import stop_simulator

ROOT = Path(__file__).resolve().parents[2]
ROOT_BENCH = ROOT / "bench.toml"
LEASE_TIMEOUT = 1.0
# Ground truth counts a net as off below this (the simulator's noise floor is far lower).
OFF_VOLTS = 0.05


def write_bench(
    directory: Path,
    *,
    lease_timeout: float = LEASE_TIMEOUT,
    environment: str = "simulation",
    name: str | None = None,
    tls: tuple[Path, Path] | None = None,
) -> Path:
    """A copy of the root bench.toml whose service files live in ``directory``.

    ``tls``: the service's certificate and key files.
    """
    text = ROOT_BENCH.read_text(encoding="utf-8")
    text = text.replace('profile = "profiles/', f'profile = "{ROOT}/profiles/')
    for key, value in (
        ("socket", "interlock.sock"),
        ("journal", "journal.sqlite"),
        ("tokens", "tokens"),
        ("lease_timeout", f"{lease_timeout:g} s"),
    ):
        text, count = re.subn(rf'(?m)^{key} = "[^"]*"', f'{key} = "{value}"', text)
        assert count == 1, key
    if tls is not None:
        text = re.sub(
            r'(?m)^(io_timeout = "[^"]*".*)$',
            lambda m: f'{m.group(1)}\ntls_certificate = "{tls[0]}"\ntls_key = "{tls[1]}"',
            text,
        )
    if environment != "simulation":
        # Only a simulation bench may describe a DUT model.
        text = text[: text.index("# --- the simulated DUT")]
        text = re.sub(r'(?m)^environment = "simulation"', f'environment = "{environment}"', text)
    if name is not None:
        text = re.sub(r'(?m)^name = "[^"]*"', f'name = "{name}"', text)
    path = directory / "bench.toml"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Served:
    """One running service and the clients a test made of it."""

    bench_path: Path
    thread: ServiceThread
    clients: list[Client] = field(default_factory=list)
    simulator: Any = None  # the simulated bench (hosted here, or started by the test)
    host: SimulatorHost | None = None

    @property
    def service(self) -> Service:
        return self.thread.service

    @property
    def controller(self) -> Any:
        return self.service.controller

    @property
    def directory(self) -> Path:
        return self.bench_path.parent

    def client(self, role: str = "script", **options: Any) -> Client:
        client = interlock.connect(self.bench_path, role=role, start=False, **options)
        self.clients.append(client)
        return client

    def token(self, role: str) -> str:
        return read_token(self.service.settings.tokens, role)

    def truth(self) -> dict[str, Any]:
        return self.simulator.truth()

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.clients.clear()
        self.thread.stop()
        if self.host is not None:
            self.host.stop()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="ilk-", dir="/tmp"))
    yield directory
    stop_simulators(directory)
    shutil.rmtree(directory, ignore_errors=True)


def stop_simulators(directory: Path) -> None:
    """Stop every simulator process whose state file is under ``directory``."""
    for path in directory.rglob("sim.json"):
        state = read_state(path)
        if state is not None and state.pid != os.getpid() and Path(state.bench_file).exists():
            stop_simulator(load_bench(state.bench_file))


ServeBench = Callable[..., Served]


@pytest.fixture
def serve_bench(short_dir: Path) -> Iterator[ServeBench]:
    started: list[Served] = []

    def start(
        *,
        resources: dict[str, str] | None = None,
        tcp: tuple[str, int] | None = None,
        subdir: str = "a",
        **bench_options: Any,
    ) -> Served:
        directory = short_dir / subdir
        directory.mkdir(exist_ok=True)
        bench_path = write_bench(directory, **bench_options)
        host = None
        if resources is None and bench_options.get("environment", "simulation") == "simulation":
            host = SimulatorHost(load_bench(bench_path)).start()
        try:
            thread = ServiceThread(Service(bench_path, resources=resources), tcp=tcp).start()
        except BaseException:
            if host is not None:
                host.stop()
            raise
        served = Served(
            bench_path, thread, host=host, simulator=host.simulator if host is not None else None
        )
        started.append(served)
        return served

    yield start
    for served in reversed(started):
        served.stop()


@pytest.fixture
def served(serve_bench: ServeBench) -> Served:
    """The default simulated bench behind a running service (lease timeout 1 s)."""
    return serve_bench()


def assert_bench_safe(truth: dict[str, Any]) -> None:
    """Ground truth: no DUT net carries voltage, no relay contact is closed."""
    live = {net: rec["voltage"] for net, rec in truth["nets"].items() if rec["voltage"] > OFF_VOLTS}
    assert not live, f"nets still energised: {live}"
    assert truth["contacts"] == [], f"relay contacts still closed: {truth['contacts']}"


def assert_within_limits(truth: dict[str, Any], controller: Any) -> None:
    """Ground truth: no net ever saw more than its profile's maximum voltage (plus tolerance)."""
    limits = controller.limits.nets
    for net, record in truth["nets"].items():
        if net in limits:
            ceiling = limits[net].max_voltage + limits[net].readback_tolerance(
                limits[net].max_voltage
            )
            assert record["max_voltage"] <= ceiling, (net, record)


def bring_up(client: Client, net: str = "VLOGIC", volts: float = 5.0, amps: float = 0.3) -> None:
    client.set_current_limit(net, amps)
    client.set_voltage(net, volts)
    client.output_on(net)
