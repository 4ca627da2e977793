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


@pytest.mark.parametrize(
    "dialect",
    SUPPLY_DIALECTS,
)
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


THREE_MAKES = [
    (
        "# --- relays: name -> board channel",
        '[instruments.siglent]\ndriver = "supply"\nresource = "TCPIP::127.0.0.1::5030::SOCKET"\n'
        'identity = { maker = "Siglent Technologies", model = "SPD3303X", '
        'serial = "SPD3X0001" }\n\n'
        '[instruments.keithley]\ndriver = "supply"\nresource = "TCPIP::127.0.0.1::5031::SOCKET"\n'
        'identity = { maker = "Keithley Instruments", model = "2230-30-1", serial = "9203269" }'
        "\n\n# --- relays: name -> board channel",
    ),
    (
        'supply = { instrument = "psu", channel = 2 }',
        'supply = { instrument = "siglent", channel = 1 }',
    ),
    (
        'supply = { instrument = "psu", channel = 3 }',
        'supply = { instrument = "keithley", channel = 1 }',
    ),
    # Three exchanges per pass on the Siglent, 100 ms apart: the period must hold them.
    ('monitor_period = "50 ms"', 'monitor_period = "400 ms"'),
]


# About 20 s (its Siglent link is paced 100 ms a line): the suite runs in two processes.
def test_the_quick_start_sequence_runs_on_a_bench_of_three_makes(sim_bench_factory, tmp_path):
    """VLOGIC on the E36312A, VBUS on a Siglent SPD3303X (a socket with 100 ms between
    lines), the motor on a Keithley 2230 (a selected channel and a general output): the
    README's quick-start sequence passes, with its one refusal, and leaves every net off
    within its limits."""
    from interlock.sequence import SequenceRunner, bind, in_process_service, load_sequence
    from tests.sequence.conftest import EXAMPLE

    configuration = load_configuration(edited_bench(tmp_path, {"bench.toml": THREE_MAKES}))
    # Connecting reads every supply before the board gets its first heartbeat; with the
    # Siglent's 100 ms gaps that can outlast the simulator's default 500 ms board watchdog,
    # and the bench would start latched (WDT). A longer watchdog keeps this test on the
    # dialects; the start-up order is the controller's.
    sim = sim_bench_factory(bench=configuration.bench, relay_watchdog="3 s")
    sequence = bind(load_sequence(EXAMPLE), configuration)
    with in_process_service(
        configuration, simulator=sim, journal_path=tmp_path / "journal.sqlite"
    ) as target:
        runner = SequenceRunner(
            sequence, configuration, target, operator="tester", confirm=lambda step: True
        )
        report = runner.run()
    assert report.exit_code == 0, [(r.step.number, r.outcome, r.detail) for r in report.results]
    truth = sim.truth()
    assert truth["nets"]["VBUS"]["max_voltage"] == pytest.approx(24.0, abs=0.2)
    assert truth["nets"]["MOTOR"]["max_voltage"] == pytest.approx(12.0, abs=0.1)
    for net, limits in configuration.limits.nets.items():
        assert truth["nets"][net]["max_voltage"] <= limits.max_voltage, net
        assert truth["nets"][net]["voltage"] == pytest.approx(0.0, abs=0.05), net
    siglent_lines = [c["line"] for c in truth["instruments"]["siglent"]["commands"]]
    assert "CH1:VOLT 24.000" in siglent_lines and "OUTP CH1,ON" in siglent_lines
    assert not any(e["kind"] == "command-dropped" for e in sim.ground_truth.events())
