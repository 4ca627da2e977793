"""The lab of tests/labgrid: started once per module, stopped whatever happens."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pytest

pytest.importorskip(
    "labgrid", reason="the fleet's tests need the labgrid extra (interlock[labgrid])"
)

from tests.labgrid.lab import Lab, start_lab


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    lab = start_lab()
    yield lab
    started = time.monotonic()
    lab.stop()
    lab.timings["lab_stop_s"] = time.monotonic() - started
    print(f"\nlab timings: {lab.timings}")
    leftovers = [p.name for p in lab.procs if p.popen.poll() is None]
    shutil.rmtree(lab.directory, ignore_errors=True)
    assert not leftovers, leftovers
