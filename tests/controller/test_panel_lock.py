"""The supplies' front panels are locked while armed, where the dialect can lock them:
locked at arming, kept locked through a latched fault, given back at disarm, at reset and
when the controller closes; each lock and unlock is journaled before it goes out."""

from __future__ import annotations

import time

import pytest

from tests.controller.support import close_rig, make_rig


@pytest.fixture
def rig(sim_bench_factory, tmp_path):
    rig = make_rig(sim_bench_factory, tmp_path, arm=False)
    yield rig
    close_rig(rig)


def panel(rig) -> bool:
    return rig.sim.instruments["psu"].panel_locked


def panel_is(rig, locked: bool) -> bool:
    """The lock and unlock lines get no answer: the twin takes them when it reads them,
    which on a busy machine may be after the call that sent them has returned."""
    deadline = time.monotonic() + 10
    while panel(rig) != locked and time.monotonic() < deadline:
        time.sleep(0.01)
    return panel(rig) == locked


def psu_lines(rig) -> list[str]:
    return [c["line"] for c in rig.truth()["instruments"]["psu"]["commands"]]


def test_arming_locks_the_panel_and_disarming_gives_it_back(rig):
    assert not panel(rig)
    rig.controller.arm("operator")
    assert panel_is(rig, True)
    rig.power_up_logic()
    assert panel_is(rig, True)
    rig.controller.output_off("VLOGIC")
    rig.controller.disarm("operator")
    assert panel_is(rig, False)
    lines = psu_lines(rig)
    # locked after the protections were programmed, given back after the outputs went off
    last = {
        p: max(i for i, x in enumerate(lines) if x.startswith(p)) for p in ("VOLT:PROT", "OUTP OFF")
    }
    assert lines.index("SYST:REM") > last["VOLT:PROT"]
    assert lines.index("SYST:LOC") > last["OUTP OFF"]


def test_a_fault_keeps_the_panel_locked_until_reset(rig):
    rig.controller.arm("operator")
    rig.power_up_logic()
    rig.controller.emergency_stop("test")
    assert rig.controller.state == "fault"
    assert panel_is(rig, True)  # nobody turns a knob on a bench whose fault is not acknowledged
    rig.controller.reset("operator")
    assert rig.controller.state == "safe" and panel_is(rig, False)


def test_closing_the_controller_gives_the_panel_back(rig):
    rig.controller.arm("operator")
    rig.controller.close()
    assert panel_is(rig, False)


def test_a_supply_without_a_panel_lock_is_left_alone(sim_bench_factory, tmp_path):
    from tests.controller.support import edited_bench
    from tests.dialects.test_mixed_bench import KORAD

    rig = make_rig(sim_bench_factory, tmp_path, bench=edited_bench(tmp_path, {"bench.toml": KORAD}))
    try:
        lines = [c["line"] for c in rig.truth()["instruments"]["korad"]["commands"]]
        assert panel_is(rig, True) and not any("SYST" in line for line in lines)
    finally:
        close_rig(rig)
