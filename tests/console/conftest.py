"""Fixtures of the console tests: the service tests' real services, and the console's pilot.

The pilot tests run the console against a real service on a real Unix
socket (the service tests' ``serve_bench``), with the simulated bench's
ground truth to check what really happened. The screen's snapshot tests
use a fixed source instead (see ``fixed_source.py``): live values would
make every snapshot differ.
"""

from __future__ import annotations

import pytest

# The service tests' fixtures: a service in a thread of this process, on a short /tmp path.
from tests.service.conftest import serve_bench, served, short_dir  # noqa: F401


@pytest.fixture
def flight(sim_bench_factory, serve_bench):  # noqa: F811 (the imported fixture)
    """A flight bench file in front of simulated instruments, as in the service's access tests.

    The simulator is started first so that it is stopped last, after the service.
    """
    sim = sim_bench_factory()
    bench = serve_bench(environment="flight", name="fm-bench-02", resources=sim.resources)
    bench.simulator = sim
    return bench
