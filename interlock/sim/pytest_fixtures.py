"""pytest fixtures: a simulated bench per test, on free ports.

Exposed to the test suite by ``tests/conftest.py``; other projects can load
them with ``pytest_plugins = ["interlock.sim.pytest_fixtures"]``.

``sim_bench`` is the root ``bench.toml`` (the default simulated bench),
started before the test and stopped after it. ``sim_bench_factory`` starts
more, with another bench file or faults injected from the start::

    def test_short(sim_bench_factory):
        sim = sim_bench_factory(faults=["short:VBUS"])
        ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from interlock.sim.bench import SimulatedBench

DEFAULT_BENCH = Path(__file__).resolve().parents[2] / "bench.toml"

BenchFactory = Callable[..., SimulatedBench]


@pytest.fixture
def sim_bench_factory() -> Iterator[BenchFactory]:
    started: list[SimulatedBench] = []

    def start(
        bench: Any = DEFAULT_BENCH, faults: Iterable[str] = (), **options: Any
    ) -> SimulatedBench:
        sim = SimulatedBench(bench, faults=faults, ports="free", **options)
        sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in reversed(started):
        sim.stop()


@pytest.fixture
def sim_bench(sim_bench_factory: BenchFactory) -> SimulatedBench:
    """The default simulated bench, running, on free ports; ``.resources`` says where."""
    return sim_bench_factory()
