"""A bench mixing makes: the E36312A feeds VLOGIC and VBUS, a Korad KA3005P the motor,
each through its own dialect and transport (a TCP socket; a pty with no terminator and
a minimum gap), and the rules know what each can do."""

from __future__ import annotations

import contextlib
import time

import pytest

from interlock.config import load_configuration
from interlock.errors import ConfigError, InterlockError
from tests.controller.support import (
    assert_all_outputs_off,
    assert_safety_invariants,
    close_rig,
    edited_bench,
    make_rig,
)
from tests.dialects.support import SUPPLY_DIALECTS, motor_bench

KORAD = [
    (
        "# --- relays: name -> board channel",
        '[instruments.korad]\ndriver = "supply"\nport = "/dev/ttyUSB0"\n'
        'identity = { maker = "KORAD", model = "KA3005P" }\n\n'
        "# --- relays: name -> board channel",
    ),
    (
        'supply = { instrument = "psu", channel = 3 }',
        'supply = { instrument = "korad", channel = 1 }',
    ),
    # Three exchanges per pass, 100 ms apart: the period must hold them.
    ('monitor_period = "50 ms"', 'monitor_period = "400 ms"'),
]


def test_a_monitor_period_too_short_for_the_dialect_is_refused(tmp_path):
    bench = edited_bench(tmp_path, {"bench.toml": KORAD[:2]})
    with pytest.raises(ConfigError) as error:
        load_configuration(bench)
    assert error.value.key == "service.monitor_period"
    assert "korad" in error.value.problem and "3 exchanges" in error.value.problem


def test_a_required_capability_the_supply_lacks_is_refused_naming_net_and_instrument(tmp_path):
    profile = [('live_max_current = "550 mA"', 'live_max_current = "550 mA"\nrequire = ["ocp"]')]
    bench = edited_bench(tmp_path, {"bench.toml": KORAD, "profiles/mdb24.toml": profile})
    with pytest.raises(ConfigError) as error:
        load_configuration(bench)
    assert error.value.key == "nets.MOTOR.require"
    assert "requires ocp" in error.value.problem and "korad (KA3005P)" in error.value.problem


def test_required_ocp_on_a_supply_that_has_it_loads(tmp_path):
    profile = [
        ('live_max_current = "300 mA"', 'live_max_current = "300 mA"\nrequire = ["ocp", "ovp"]')
    ]
    bench = edited_bench(tmp_path, {"profiles/mdb24.toml": profile})
    assert load_configuration(bench).limits.nets["VBUS"].require == ("ocp", "ovp")


def test_the_quick_start_sequence_runs_on_a_bench_of_two_makes(sim_bench_factory, tmp_path):
    bench = edited_bench(tmp_path, {"bench.toml": KORAD})
    rig = make_rig(sim_bench_factory, tmp_path, bench=bench)
    try:
        controller = rig.controller
        rig.power_up_logic()
        rig.power_up_bus()
        controller.set_voltage("MOTOR", 3.0)
        controller.output_on("MOTOR")
        controller.set_voltage("MOTOR", 6.0)
        assert controller.state == "live"
        measured = controller.measure("MOTOR")
        assert measured["voltage"] == pytest.approx(6.0, abs=0.05)
        truth = rig.truth()
        assert truth["nets"]["MOTOR"]["voltage"] == pytest.approx(6.0, abs=0.05)
        korad_lines = [c["line"] for c in truth["instruments"]["korad"]["commands"]]
        assert "VSET1:06.00" in korad_lines and "OUT1" in korad_lines
        # Nothing the driver sent came within the gap.
        notes = [c.get("note") for c in truth["instruments"]["korad"]["commands"]]
        assert "dropped: sent within the gap" not in notes
        assert_safety_invariants(rig)
        controller.output_off("MOTOR")
        assert controller.measure("MOTOR")["voltage"] < 0.5
    finally:
        close_rig(rig)


@pytest.mark.parametrize("dialect", SUPPLY_DIALECTS)
def test_quick_start_protection_and_safe_state_on_every_supply_dialect(
    dialect, sim_bench_factory, tmp_path
):
    """The motor net on each supply dialect's twin: the quick-start, then a short behind
    the live output ends in the safe state with every output off and nothing beyond limits."""
    rig = make_rig(sim_bench_factory, tmp_path, bench=motor_bench(tmp_path, dialect))
    try:
        controller = rig.controller
        rig.power_up_logic()
        rig.power_up_bus()
        controller.set_voltage("MOTOR", 3.0)
        controller.output_on("MOTOR")
        controller.set_voltage("MOTOR", 6.0)
        assert controller.measure("MOTOR")["voltage"] == pytest.approx(6.0, abs=0.05)
        assert rig.truth()["nets"]["MOTOR"]["voltage"] == pytest.approx(6.0, abs=0.05)
        rig.sim.inject("short:MOTOR")
        with contextlib.suppress(InterlockError):
            for _ in range(100):  # the monitor, or the supply's own protection, trips
                controller.measure("MOTOR")
                if controller.state == "fault":
                    break
                time.sleep(0.05)
        assert controller.state == "fault", controller.state
        assert_all_outputs_off(rig)
        assert_safety_invariants(rig)
    finally:
        close_rig(rig)
