"""A bench whose meter is another family's: the quick-start sequence runs through the
controller with the meter swapped for each meter dialect's twin (safe-to-mate, the DUT's
ID resistor at arming, and every measurement taken in that dialect over its transport)."""

from __future__ import annotations

import pytest

from tests.controller.support import assert_safety_invariants, close_rig, edited_bench, make_rig

KEYSIGHT_DMM = (
    '[instruments.dmm]\ndriver = "scpi-dmm"\nresource = "TCPIP::127.0.0.1::5026::SOCKET"\n'
    'identity = { maker = "Keysight Technologies", model = "34461A", serial = "MY53005678" }'
)
DMM6500 = (
    '[instruments.dmm]\ndriver = "meter"\nresource = "TCPIP::127.0.0.1::5026::SOCKET"\n'
    'identity = { maker = "KEITHLEY INSTRUMENTS", model = "DMM6500", serial = "04493036" }'
)
# meter -> (its stanza, the lines it must have received, in order)
METERS = {
    "hp-34401a": (
        '[instruments.dmm]\ndriver = "meter"\nport = "/dev/ttyS0"\n'
        'identity = { maker = "HEWLETT-PACKARD", model = "34401A", serial = "0" }',
        ["SYST:REM", "*IDN?", "MEAS:RES?", "MEAS:VOLT:DC?"],
    ),
    "keithley-dmm6500": (
        DMM6500,
        ["*LANG?", "*IDN?", ":MEAS:RES?", ":MEAS:VOLT:DC?"],
    ),
}


@pytest.fixture(params=sorted(METERS))
def meter(request):
    return METERS[request.param]


def test_the_quick_start_sequence_runs_with_each_meter(sim_bench_factory, tmp_path, meter):
    stanza, lines = meter
    bench = edited_bench(tmp_path, {"bench.toml": [(KEYSIGHT_DMM, stanza)]})
    rig = make_rig(sim_bench_factory, tmp_path, bench=bench)
    try:
        controller = rig.controller
        assert controller.state == "armed"  # the DUT's ID resistor read by this meter
        rig.power_up_logic()
        rig.power_up_bus()
        controller.set_voltage("MOTOR", 3.0)
        controller.output_on("MOTOR")  # safe-to-mate measured by this meter first
        controller.set_voltage("MOTOR", 6.0)
        assert controller.measure("MOTOR")["voltage"] == pytest.approx(6.0, abs=0.05)
        assert rig.truth()["nets"]["MOTOR"]["voltage"] == pytest.approx(6.0, abs=0.05)
        received = [c["line"] for c in rig.truth()["instruments"]["dmm"]["commands"]]
        assert received[0] == lines[0]
        seen = iter(received)  # each expected line, in order
        assert all(line in seen for line in lines), received
        assert_safety_invariants(rig)
        controller.output_off("MOTOR")
    finally:
        close_rig(rig)


def test_a_dmm6500_in_another_command_set_is_not_trusted(sim_bench_factory, tmp_path):
    bench = edited_bench(tmp_path, {"bench.toml": [(KEYSIGHT_DMM, DMM6500)]})
    rig = make_rig(sim_bench_factory, tmp_path, bench=bench, connect=False)
    try:
        dmm = rig.sim.instruments["dmm"]
        dmm.next_language = "SCPI34401"  # left in the 34401A emulation by someone
        dmm.power_cycle()
        with pytest.raises(Exception) as error:
            rig.controller.connect()
        assert "SCPI34401" in str(error.value)
        assert not rig.controller.instruments.trusted("dmm")
        received = [c["line"] for c in rig.truth()["instruments"]["dmm"]["commands"]]
        assert received == ["*LANG?"]  # nothing asked of it in a language it does not speak
    finally:
        close_rig(rig)


@pytest.mark.parametrize("stanza", [KEYSIGHT_DMM, DMM6500, METERS["hp-34401a"][0]])
def test_a_meter_switched_to_its_rear_inputs_trips_before_anything_is_energised(
    sim_bench_factory, tmp_path, stanza
):
    """Someone pressed the front/rear button: the DUT is wired to the front inputs, and on
    the rear a live net reads 0 V and any resistance open. The safe-to-mate check asks
    the switch before it reads, and trips on it by name; the net never goes live."""
    from interlock.errors import InstrumentError

    bench = edited_bench(tmp_path, {"bench.toml": [(KEYSIGHT_DMM, stanza)]})
    rig = make_rig(sim_bench_factory, tmp_path, bench=bench)
    try:
        controller = rig.controller
        assert controller.state == "armed"
        rig.sim.instruments["dmm"].terminals = "REAR"
        controller.set_voltage("VLOGIC", 3.3)
        with pytest.raises(InstrumentError, match="front/rear switch selects REAR"):
            controller.output_on("VLOGIC")
        assert "front/rear switch selects REAR" in (controller.fault_cause or "")
        assert controller.state == "fault"
        lines = [c["line"] for c in rig.truth()["instruments"]["psu"]["commands"]]
        assert not any(line.startswith("OUTP ON") for line in lines), lines
        assert rig.truth()["nets"]["VLOGIC"]["voltage"] == pytest.approx(0.0, abs=0.05)
    finally:
        close_rig(rig)


@pytest.mark.parametrize("wired", ["front", "rear"])
def test_the_meter_must_read_the_inputs_bench_toml_wires(sim_bench_factory, tmp_path, wired):
    """bench.toml says which inputs are wired (front by default): a bench wired to the
    rear arms through them; a meter found on the other side at connecting is not trusted
    once it is known to be the one named, and nothing is read through it."""
    stanza = KEYSIGHT_DMM + (f'\nterminals = "{wired}"' if wired == "rear" else "")
    bench = edited_bench(tmp_path, {"bench.toml": [(KEYSIGHT_DMM, stanza)]})
    rig = make_rig(sim_bench_factory, tmp_path, bench=bench)
    try:
        assert rig.controller.configuration.bench.instruments["dmm"].terminals == wired
        assert rig.sim.instruments["dmm"].terminals == ("REAR" if wired == "rear" else "FRON")
        assert rig.controller.state == "armed"  # the DUT's ID resistor read through them
    finally:
        close_rig(rig)
    (tmp_path / "again").mkdir()
    rig = make_rig(sim_bench_factory, tmp_path / "again", bench=bench, connect=False)
    try:
        rig.sim.instruments["dmm"].terminals = "REAR" if wired == "front" else "FRON"
        with pytest.raises(Exception) as error:
            rig.controller.connect()
        assert f"bench.toml wires its {wired} inputs" in str(error.value)
        # The one named, set up otherwise: the fault says so, not "identity".
        assert rig.controller.fault_cause.startswith("setup: dmm: "), rig.controller.fault_cause
        assert not rig.controller.instruments.trusted("dmm")
        received = [c["line"] for c in rig.truth()["instruments"]["dmm"]["commands"]]
        assert received == ["*IDN?", "ROUT:TERM?"]  # who it is first; nothing after
    finally:
        close_rig(rig)


def test_a_meter_switched_before_arming_trips_with_the_setup_cause(sim_bench_factory, tmp_path):
    """Arming asks every instrument again: the meter is the one named, set up otherwise,
    and the fault says so (not "identity", which names a stranger)."""
    rig = make_rig(sim_bench_factory, tmp_path, arm=False)
    try:
        rig.sim.instruments["dmm"].terminals = "REAR"
        with pytest.raises(Exception, match="front/rear switch selects REAR"):
            rig.controller.arm("operator")
        assert rig.controller.fault_cause.startswith("setup: at arming: dmm: ")
    finally:
        close_rig(rig)


def test_terminals_on_an_instrument_without_the_switch_is_a_config_error(tmp_path):
    from interlock.config import load_configuration
    from interlock.errors import ConfigError

    edits = [('serial = "MY59001234" }', 'serial = "MY59001234" }\nterminals = "rear"')]
    with pytest.raises(ConfigError) as error:
        load_configuration(edited_bench(tmp_path, {"bench.toml": edits}))
    assert error.value.key == "instruments.psu.terminals"
    assert "no front/rear switch" in error.value.problem


def test_check_shows_the_inputs_a_meter_is_wired_to(tmp_path):
    from interlock.commands.check import render
    from interlock.config import load_configuration

    stanza = KEYSIGHT_DMM + '\nterminals = "rear"'
    bench = edited_bench(tmp_path, {"bench.toml": [(KEYSIGHT_DMM, stanza)]})
    shown = render(load_configuration(bench))
    assert "TCPIP::127.0.0.1::5026::SOCKET (rear inputs)" in shown
    assert "(front inputs)" not in shown and "5025::SOCKET (" not in shown  # supplies: none
