from __future__ import annotations

import pytest

from .support import close_rig, make_rig


@pytest.fixture
def rig_factory(sim_bench_factory, tmp_path):
    rigs = []

    def make(**options):
        rig = make_rig(sim_bench_factory, tmp_path / f"rig{len(rigs)}", **options)
        rigs.append(rig)
        return rig

    (tmp_path / "rig0").mkdir()
    for i in range(1, 4):
        (tmp_path / f"rig{i}").mkdir()
    yield make
    for rig in reversed(rigs):
        close_rig(rig)


@pytest.fixture
def rig(rig_factory):
    return rig_factory()
