"""Benchmark scripts (run by hand, not by the test suite): python -m benchmarks.NAME."""
