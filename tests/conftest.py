"""Shared fixtures of the test suite."""

# A simulated bench per test: sim_bench, sim_bench_factory.
from interlock.sim.pytest_fixtures import sim_bench, sim_bench_factory  # noqa: F401
