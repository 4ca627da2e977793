"""A bench with two switch units: the RB8 board (contact sense, a watchdog, its own
table of forbidden pairs) and, per kind, a DAQ970A's actuator or a Numato USB relay
module (commanded state read back only, no watchdog). Relay names map to unit and
channel in bench.toml; the controller drives each unit in its dialect, and the safe
state opens every unit's relays."""

from __future__ import annotations

import pytest

from interlock.config import load_configuration
from interlock.errors import ConfigError
from tests.controller.support import assert_safety_invariants, close_rig, edited_bench, make_rig

DAQ = [
    (
        "# --- relays: name -> board channel",
        '[instruments.daq]\ndriver = "switch"\nresource = "TCPIP::127.0.0.1::5027::SOCKET"\n'
        'identity = { maker = "Keysight Technologies", model = "DAQ970A", serial = "MY12345678" }'
        "\n\n# --- relays: name -> board channel",
    ),
    # The motor's power relay and the DMM's routes to the motor and the ID resistor.
    ('[relays.K3]\nboard = "relays"', '[relays.K3]\nboard = "daq"'),
    ('[relays.K6]\nboard = "relays"', '[relays.K6]\nboard = "daq"'),
    ('[relays.K7]\nboard = "relays"\nchannel = 7', '[relays.K7]\nboard = "daq"\nchannel = 17'),
]


NUMATO = [
    (
        "# --- relays: name -> board channel",
        '[instruments.daq]\ndriver = "switch"\nport = "/dev/ttyACM1"\n'
        'identity = { maker = "Numato Lab", model = "USBRELAY8", serial = "BENCH001" }'
        "\n\n# --- relays: name -> board channel",
    ),
    ('[relays.K3]\nboard = "relays"', '[relays.K3]\nboard = "daq"'),
    ('[relays.K6]\nboard = "relays"', '[relays.K6]\nboard = "daq"'),
    ('[relays.K7]\nboard = "relays"', '[relays.K7]\nboard = "daq"'),
]
# Each kind of switch unit beside the RB8: its edits, the line closing K3, the lines
# that open all its relays.
KINDS = {
    "daq970a": (
        DAQ,
        ["ROUT:CLOS (@103)"],
        ["ROUT:OPEN (@" + ",".join(str(100 + c) for c in range(1, 21)) + ")"],
    ),
    "numato": (NUMATO, ["relay on 2"], [f"relay off {c}" for c in range(8)]),
}


@pytest.fixture(params=sorted(KINDS))
def kind(request):
    return KINDS[request.param]


def two_units(tmp_path, kind=None):
    return edited_bench(tmp_path, {"bench.toml": (kind or KINDS["daq970a"])[0]})


def test_a_relay_beyond_the_units_channels_is_refused_naming_the_key(tmp_path):
    edits = [
        *DAQ[:2],
        ('[relays.K6]\nboard = "relays"\nchannel = 6', '[relays.K6]\nboard = "daq"\nchannel = 21'),
    ]
    with pytest.raises(ConfigError) as error:
        load_configuration(edited_bench(tmp_path, {"bench.toml": edits}))
    assert error.value.key == "relays.K6.channel"
    assert "DAQ970A" in error.value.problem and "1 to 20" in error.value.problem


def test_the_quick_start_sequence_runs_across_two_switch_units(sim_bench_factory, tmp_path, kind):
    rig = make_rig(sim_bench_factory, tmp_path, bench=two_units(tmp_path, kind))
    try:
        controller = rig.controller
        assert controller.state == "armed"  # the DUT's ID measured through the DAQ's K7
        rig.power_up_logic()
        rig.power_up_bus()
        controller.set_voltage("MOTOR", 3.0)
        controller.output_on("MOTOR")  # safe-to-mate through K6, power through K3 (DAQ)
        controller.set_voltage("MOTOR", 6.0)
        assert controller.measure("MOTOR")["voltage"] == pytest.approx(6.0, abs=0.05)
        truth = rig.truth()
        assert truth["nets"]["MOTOR"]["voltage"] == pytest.approx(6.0, abs=0.05)
        assert truth["relay_states"]["K3"] == {
            "board": "daq",
            "channel": 3,
            "coil": True,
            "contact": True,
        }
        unit_lines = [c["line"] for c in truth["instruments"]["daq"]["commands"]]
        assert set(kind[1]) <= set(unit_lines)
        assert_safety_invariants(rig)
        controller.output_off("MOTOR")
    finally:
        close_rig(rig)


def test_a_stop_opens_the_relays_of_every_unit(sim_bench_factory, tmp_path, kind):
    rig = make_rig(sim_bench_factory, tmp_path, bench=two_units(tmp_path, kind))
    try:
        controller = rig.controller
        rig.power_up_logic()
        rig.power_up_bus()
        controller.set_voltage("MOTOR", 3.0)
        controller.output_on("MOTOR")
        assert rig.truth()["relay_states"]["K3"]["contact"] is True
        controller.emergency_stop("operator")
        truth = rig.truth()
        assert controller.state == "fault"
        assert not any(r["coil"] or r["contact"] for r in truth["relay_states"].values())
        unit_lines = [c["line"] for c in truth["instruments"]["daq"]["commands"]]
        assert set(kind[2]) <= set(unit_lines)
    finally:
        close_rig(rig)


def test_a_unit_holding_another_module_is_not_trusted(sim_bench_factory, tmp_path):
    rig = make_rig(sim_bench_factory, tmp_path, bench=two_units(tmp_path), connect=False)
    try:
        rig.sim.switch_units["daq"].module = "34901A"  # a multiplexer, not an actuator
        with pytest.raises(Exception) as error:
            rig.controller.connect()
        assert "34901A" in str(error.value)
        assert not rig.controller.instruments.trusted("daq")
    finally:
        close_rig(rig)


def test_the_guardian_opens_a_unit_without_a_watchdog_when_the_service_dies(
    sim_bench_factory, tmp_path, kind
):
    from interlock.guardian import act, plan_for

    rig = make_rig(sim_bench_factory, tmp_path, bench=two_units(tmp_path, kind))
    try:
        rig.power_up_logic()
        rig.power_up_bus()
        rig.controller.set_voltage("MOTOR", 3.0)
        rig.controller.output_on("MOTOR")
        rig.controller.monitor.stop()  # the service dies: no safe state, no goodbye
        rig.controller.supervisor.stop()
        rig.controller.instruments.units["daq"].close()  # the kernel closes a dead one's ports
        plan = plan_for(rig.configuration, rig.sim.resources)
        assert [u.name for u in plan.switches] == ["daq"]  # the RB8's watchdog acts itself
        report = act(plan, rig.journal, why="test")
        assert "daq relays open" in report.off and report.verified, report.problems
        assert rig.truth()["relay_states"]["K3"]["contact"] is False
    finally:
        close_rig(rig)


# The motor fed by an Aim-TTi PL601-P (60 V / 1.5 A) through K3, now on the DAQ970A's
# actuator: its contacts switch 300 V or 1 A, and at most 50 W.
PL601_MOTOR = [
    (
        "# --- relays: name -> board channel",
        '[instruments.tti]\ndriver = "supply"\nresource = "TCPIP::127.0.0.1::9221::SOCKET"\n'
        'identity = { maker = "THURLBY THANDAR", model = "PL601-P", serial = "514710" }\n\n'
        "# --- relays: name -> board channel",
    ),
    (
        'supply = { instrument = "psu", channel = 3 }',
        'supply = { instrument = "tti", channel = 1 }',
    ),
]


def _motor_at(tmp_path, volts: str, amps: str):
    profile = [('max_voltage = "12 V"', f'max_voltage = "{volts}"'),
               ('max_current = "600 mA"', f'max_current = "{amps}"')]  # fmt: skip
    return load_configuration(
        edited_bench(tmp_path, {"bench.toml": [*DAQ, *PL601_MOTOR], "profiles/mdb24.toml": profile})
    )


@pytest.mark.parametrize(
    ("volts", "amps", "watts"),
    [("60 V", "1 A", 60), ("51 V", "1 A", 51), ("50 V", "1 A", 50), ("60 V", "800 mA", 48)],
)
def test_a_net_beyond_the_contacts_power_rating_is_refused_though_volts_and_amps_fit(
    tmp_path, volts, amps, watts
):
    if watts <= 50:  # at the rating: loads
        assert _motor_at(tmp_path, volts, amps).bench.relays["K3"].board == "daq"
        return
    with pytest.raises(ConfigError) as error:
        _motor_at(tmp_path, volts, amps)
    assert error.value.key == "nets.MOTOR.max_current"
    assert f"is {watts:g} W" in error.value.problem and "(50 W, DAQ970A)" in error.value.problem
    assert "relay K3" in error.value.problem
