"""Power-up tests of the MDB-24 motor-drive board, through the interlock.

Every value is checked by the interlock against the board's profile
(profiles/mdb24.toml) before anything reaches an instrument; a test never
holds an instrument itself.
"""

import pytest

from interlock import LimitViolation, StateError


def bring_up(bench, net, volts, amps):
    bench.set_current_limit(net, amps)
    bench.set_voltage(net, volts)
    bench.output_on(net)


def test_logic_rail_comes_up_at_5_volts(bench):
    bring_up(bench, "VLOGIC", 5.0, 0.3)
    measured = bench.measure("VLOGIC")
    assert measured["voltage"] == pytest.approx(5.0, abs=0.05)
    assert 0.10 < measured["current"] < 0.20  # logic draws about 150 mA


def test_bus_soft_starts_after_logic(bench):
    with pytest.raises(LimitViolation) as refused:
        bring_up(bench, "VBUS", 4.0, 0.3)  # the power-on order wants VLOGIC first
    assert refused.value.rule == "sequencing.power_on"
    bring_up(bench, "VLOGIC", 5.0, 0.3)
    with pytest.raises(LimitViolation) as refused:
        bench.set_voltage("VBUS", 12.0)  # turning on at 12 V would be one step of 12 V
        bench.output_on("VBUS")
    assert refused.value.rule == "nets.VBUS.max_step"
    bench.set_voltage("VBUS", 4.0)
    bench.output_on("VBUS")
    bench.set_voltage("VBUS", 12.0)  # live: the interlock ramps at the allowed slew
    measured = bench.measure("VBUS")
    assert measured["voltage"] == pytest.approx(12.0, abs=0.1)
    assert measured["current"] == pytest.approx(0.1, rel=0.1)  # 120 ohm


def test_an_overvoltage_is_refused_not_clamped(bench):
    with pytest.raises(LimitViolation) as refused:
        bench.set_voltage("VLOGIC", 6.0)
    assert refused.value.rule == "nets.VLOGIC.max_voltage"
    assert "profiles/mdb24.toml" in refused.value.where
    assert bench.status()["nets"]["VLOGIC"]["setpoint"] == 0.0  # nothing was sent


def test_rails_left_live_are_turned_off_by_the_fixture(bench):
    bring_up(bench, "VLOGIC", 5.0, 0.3)
    bring_up(bench, "VBUS", 4.0, 0.3)
    assert bench.status()["state"] == "live"
    # No output_off here: the fixture turns both off, in the profile's power-off order.


def test_a_setpoint_needs_an_armed_bench(bench):
    bench.disarm()
    with pytest.raises(StateError):
        bench.set_voltage("VLOGIC", 3.3)
