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
