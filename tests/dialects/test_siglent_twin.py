"""The Siglent SPD3303X twin answers a plain pyvisa client as the Quick Start's remote
control chapter says (research notes, table tests 1-9, 13-15): setpoints with three
decimals, outputs in a hex status word, no protection and no error reporting."""

from __future__ import annotations

import re
import time

import pytest
import pyvisa

from interlock.sim.dut import Load
from interlock.sim.instrument import IdentityString
from tests.dialects.twins import served_twin, visa_client

GAP = 0.1  # s: the dialect's gap (libsigrok, python-spd3303x)
IDENTITY = IdentityString("Siglent Technologies", "SPD3303X", "SPD3XHBX2R0001", "1.01.01.02.05")

TABLE = [
    # (line, the reply; None: no reply; a number: a measurement, with three decimals)
    ("*IDN?", "Siglent Technologies,SPD3303X,SPD3XHBX2R0001,1.01.01.02.05,V3.0"),
    ("INST CH2", None),
    ("INST?", "CH2"),
    ("INST CH1", None),
    ("CH1:VOLT 25", None),
    ("CH1:VOLT?", "25.000"),
    ("CH1:CURR 0.5", None),
    ("CH1:CURR?", "0.500"),
    ("SYST:STAT?", "0x0004"),  # independent, both outputs off
    ("OUTP CH1,ON", None),
    ("SYST:STAT?", "0x0014"),  # bit 4: CH1 on
    ("MEAS:VOLT? CH1", 25.0),  # 100 ohm load: 250 mA, under the limit (CV)
    ("MEAS:CURR? CH1", 0.25),
    ("MEAS:POWE? CH1", 6.25),
    ("OUTP CH2,ON", None),
    ("SYST:STAT?", "0x0034"),  # bit 5: CH2 on
    ("OUTP CH1,OFF", None),
    ("OUTP CH2,OFF", None),
    ("SYST:STAT?", "0x0004"),
    ("CH2:VOLT 40", None),  # beyond 32 V: nothing happens, the setting is kept
    ("CH2:VOLT?", "0.000"),
    ("CH1:VOLT? ", "25.000"),
    ("SYST:ERR?", "0  No Error"),
    ("SYST:VERS?", "1.01.01.02.05"),
]


@pytest.fixture
def siglent():
    loads = {"OUT1": Load(resistance=100.0)}
    with (
        served_twin("siglent-spd3303x", IDENTITY, loads) as served,
        visa_client(served.resource, "siglent-spd3303x") as client,
    ):
        yield client, served


def exchange(client, line: str, reply: str | None) -> str | None:
    time.sleep(GAP)
    if reply is None:
        client.write(line)
        return None
    return client.query(line)


def test_the_twin_answers_as_the_quick_start_says(siglent):
    client, _ = siglent
    for line, reply in TABLE:
        if isinstance(reply, float):  # the supply's own meter has its noise
            got = exchange(client, line, "")
            assert re.fullmatch(r"\d+\.\d{3}", got), line
            assert float(got) == pytest.approx(reply, rel=1e-3), line
        else:
            assert exchange(client, line, reply) == reply, line


def test_a_line_sent_within_the_gap_gets_no_answer(siglent):
    client, served = siglent
    exchange(client, "CH1:VOLT 5", None)
    client.write("CH1:VOLT 7")  # at once: dropped
    with pytest.raises(pyvisa.errors.VisaIOError):
        client.query("CH1:VOLT?")  # within the gap of the one before: no answer either
    time.sleep(GAP)
    assert client.query("CH1:VOLT?") == "5.000"
    assert any(e["kind"] == "command-dropped" for e in served.truth.events())


def test_a_new_session_waits_out_the_gap_of_the_host_before_it(siglent, tmp_path):
    # Another host's last line (a service that died, the guardian taking over) may be a
    # moment ago: the first line of a new session, sent within its gap, would get no answer.
    from interlock.dialects import dialects
    from interlock.drivers.registry import DriverSpec, build
    from interlock.journal import Journal

    client, served = siglent
    with Journal(tmp_path / "journal.sqlite", bench="twin") as journal:
        spec = DriverSpec("psu", dialects()["siglent-spd3303x"], served.resource, journal, 1.0)
        psu = build("supply", spec, file="bench.toml", key="instruments.psu.driver")
        exchange(client, "CH1:VOLT 5", None)  # the other host's last line: its gap begins
        psu.open()
        try:
            assert psu.identify().identity.model == "SPD3303X"
        finally:
            psu.close()
    assert not any(e["kind"] == "command-dropped" for e in served.truth.events())


@pytest.mark.parametrize("mode", ["series", "parallel"])
def test_channels_coupled_at_the_front_panel_are_never_armed(tmp_path, sim_bench_factory, mode):
    """In series or parallel (bits 3..2 of SYST:STAT?), CH1 and CH2 are one output: a
    setpoint for one is the other's too. Found before arming, the arm is refused."""
    from interlock.sim.twins.siglent import MODE_PARALLEL, MODE_SERIES
    from tests.controller.support import close_rig, make_rig
    from tests.dialects.support import assert_coupled_never_armed, motor_bench

    def couple(psu) -> None:
        psu.mode = MODE_SERIES if mode == "series" else MODE_PARALLEL

    rig = make_rig(
        sim_bench_factory, tmp_path, bench=motor_bench(tmp_path, "siglent-spd3303x"), arm=False
    )
    try:
        assert_coupled_never_armed(rig, "motor_psu", 1, couple)
    finally:
        close_rig(rig)


def test_channels_coupled_after_arming_never_go_live(tmp_path, sim_bench_factory):
    """The SPD3303X has no panel lock: SER or PARA pressed once the bench is armed is
    read back before the net goes live, and refused there."""
    from interlock.errors import InstrumentError
    from interlock.sim.twins.siglent import MODE_SERIES
    from tests.controller.support import close_rig, make_rig
    from tests.dialects.support import motor_bench

    rig = make_rig(sim_bench_factory, tmp_path, bench=motor_bench(tmp_path, "siglent-spd3303x"))
    try:
        controller = rig.controller
        assert controller.state == "armed"
        rig.power_up_logic()
        rig.power_up_bus()
        controller.set_voltage("MOTOR", 3.0)
        psu = rig.sim.instruments["motor_psu"]
        psu.mode = MODE_SERIES
        with pytest.raises(InstrumentError, match="motor_psu CH1 tracks another channel"):
            controller.output_on("MOTOR")
        assert controller.state == "fault"
        assert "tracks another channel" in (controller.fault_cause or "")
        assert not psu.live_outputs()
        assert rig.truth()["nets"]["MOTOR"]["voltage"] == pytest.approx(0.0, abs=0.05)
    finally:
        close_rig(rig)
