"""The controller's safety behaviour on every supply dialect, each against its twin.

The motor net of the default bench is moved to an output of a supply of the dialect
(its first model), over the dialect's own transport; the rest of the bench is
unchanged. Each test asserts what the interlock promises whatever the supply: a value
beyond the limits is refused and nothing is sent, an output goes live only after its
setpoint reads back, a supply that keeps its old setpoint faults the bench before
anything goes live, and an emergency stop or a short leaves every output off.
"""

from __future__ import annotations

import time

import pytest

from interlock.dialects import dialects
from interlock.errors import InterlockError, LimitViolation
from interlock.sim.twins import TWINS
from tests.controller.support import (
    assert_all_outputs_off,
    assert_safety_invariants,
    close_rig,
    edited_bench,
    make_rig,
)
from tests.dialects.support import motor_output, where_line

SUPPLY_DIALECTS = sorted(
    name for name, d in dialects().items() if d.kind == "supply" and name in TWINS
)
DEADLINE = 10.0  # s: generous, for a loaded machine; the tests wait for an outcome


def bench_with(tmp_path, dialect_name: str):
    dialect = dialects()[dialect_name]
    model, channel = motor_output(dialect_name)
    where = where_line(dialect_name)
    # The monitor's pass over the net must fit its period (the dialect's gap).
    needed = dialect.poll_exchanges(1) * dialect.link.min_gap
    period = max(50, round(needed * 1500))
    stanza = (
        f'[instruments.extra]\ndriver = "supply"\n{where}\n'
        f'identity = {{ maker = "{model.maker}", model = "{model.model}", serial = "10001" }}\n\n'
    )
    edits = [
        ("# --- relays: name -> board channel", stanza + "# --- relays: name -> board channel"),
        (
            'supply = { instrument = "psu", channel = 3 }',
            f'supply = {{ instrument = "extra", channel = {channel} }}',
        ),
        ('monitor_period = "50 ms"', f'monitor_period = "{period} ms"'),
    ]
    return edited_bench(tmp_path, {"bench.toml": edits})


@pytest.fixture(params=SUPPLY_DIALECTS)
def rig(request, sim_bench_factory, tmp_path):
    rig = make_rig(sim_bench_factory, tmp_path, bench=bench_with(tmp_path, request.param))
    yield rig
    close_rig(rig)


def extra_lines(rig) -> list[str]:
    return [c["line"] for c in rig.truth()["instruments"]["extra"]["commands"]]


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"not within {DEADLINE} s: {what}"
        time.sleep(0.05)


def motor_live(rig, volts: float = 3.0) -> None:
    rig.power_up_logic()  # the profile's power-on order: VLOGIC, VBUS, then MOTOR
    rig.power_up_bus()
    rig.controller.set_voltage("MOTOR", volts)
    rig.controller.output_on("MOTOR")


def test_the_motor_goes_live_reads_back_goes_off_and_an_estop_leaves_all_off(rig):
    controller = rig.controller
    motor_live(rig)
    controller.set_voltage("MOTOR", 6.0)
    assert controller.state == "live"
    assert controller.measure("MOTOR")["voltage"] == pytest.approx(6.0, abs=0.05)
    assert rig.truth()["nets"]["MOTOR"]["voltage"] == pytest.approx(6.0, abs=0.05)
    assert_safety_invariants(rig)
    controller.output_off("MOTOR")
    assert controller.measure("MOTOR")["voltage"] < 0.5
    assert not rig.sim.instruments["extra"].live_outputs()
    controller.set_voltage("MOTOR", 3.0)
    controller.output_on("MOTOR")
    controller.emergency_stop("anyone")  # with every net live
    assert controller.state == "fault"
    assert_all_outputs_off(rig)
    assert not rig.sim.instruments["extra"].live_outputs()


def test_a_value_beyond_the_limits_is_refused_and_nothing_is_sent(rig):
    # A query's answer comes after every line sent before it has been taken: what arming
    # sent without an answer (the panel lock) is on the twin's record before we count.
    rig.controller.measure("MOTOR")
    before = extra_lines(rig)
    for volts in (12.5, 1e308, -1.0, -5e-324, float("nan"), float("inf"), -float("inf")):
        with pytest.raises(LimitViolation):
            rig.controller.set_voltage("MOTOR", volts)
    sent = extra_lines(rig)[len(before) :]
    assert not any("?" not in line for line in sent), sent  # only the monitor's queries


def test_a_supply_that_keeps_its_old_setpoint_never_goes_live(rig):
    rig.sim.inject("ignore-setpoint:extra")
    with pytest.raises(InterlockError):
        rig.controller.set_voltage("MOTOR", 3.0)
    assert rig.controller.state == "fault"
    assert_all_outputs_off(rig)


def test_a_short_on_the_net_faults_the_bench_and_leaves_it_off(rig):
    motor_live(rig)
    rig.sim.inject("short:MOTOR")
    wait_for(lambda: rig.controller.state == "fault", "the monitor faults the bench")
    assert_all_outputs_off(rig)
