"""The Aim-TTi PL-P twin answers a plain pyvisa client as the reference drivers say
(research notes, table tests 1-14): the output's number in the header, prefixed setting
replies, readbacks with a unit, CR LF after every reply, OVP and OCP trips latched in
LSR<n>? until TRIPRST, and nothing answered to what it does not take."""

from __future__ import annotations

import contextlib
import re
import socket
import time

import pytest

from interlock.dialects import dialects
from interlock.drivers.registry import DriverSpec, build
from interlock.errors import FaultLatched, ProtocolError
from interlock.journal import Journal
from interlock.sim.dut import Load
from interlock.sim.instrument import IdentityString
from tests.controller.support import (
    PAST_THE_WATCHDOG_S,
    all_live,
    assert_all_outputs_off,
    close_restarted,
    close_rig,
    make_rig,
    restart,
)
from tests.dialects.support import motor_bench, motor_output
from tests.dialects.twins import served_twin, visa_client
from tests.waiting import until

IDENTITY = IdentityString("THURLBY THANDAR", "PL303QMD-P", "514710", "3.05-4.06")

TABLE = [
    # (line, the reply; None: no reply; a float: a measurement, to within its noise)
    ("*IDN?", "THURLBY THANDAR, PL303QMD-P, 514710, 3.05-4.06"),
    ("V2V 1.2", None),
    ("V2?", "V2 1.200"),
    ("I2 0.1", None),
    ("I2?", "I2 0.100"),
    ("OP2?", "0"),
    ("V2O?", 0.0),  # off: a reading too, within its noise
    ("OP2 1", None),
    ("OP2?", "1"),
    ("V2O?", 1.2),  # 100 ohm: 12 mA, below the 100 mA limit
    ("I2O?", 0.012),
    ("OP2 0", None),
    ("OP2?", "0"),
    ("OPALL 1", None),
    ("OP1?", "1"),
    ("OP2?", "1"),
    ("OPALL 0", None),
    ("OP1?", "0"),
    ("OP2?", "0"),
    ("IRANGE2 2", None),
    ("IRANGE2?", "2"),
    ("OVP1 12", None),
    ("OVP1?", "VP1 12.00"),
    ("OCP1 1", None),
    ("OCP1?", "CP1 1.000"),
    ("V1 40", None),  # beyond the 30 V rating: refused, the setting kept
    ("V1?", "V1 0.000"),
    ("EER?", "100"),
    ("EER?", "0"),  # read and cleared
    ("V3 1", None),  # no output 3 on a PL303QMD-P: a command error
    ("BOGUS", None),
    ("*ESR?", str(16 | 32)),
    ("IFLOCK", "1"),
    ("IFLOCK?", "1"),
    ("IFUNLOCK", "0"),
    ("LSR1?", "0"),
    ("*OPC?", "1"),
]


@pytest.fixture
def served():
    loads = {"OUT1": Load(resistance=2.0), "OUT2": Load(resistance=100.0)}
    with served_twin("aimtti-plp", IDENTITY, loads) as served:
        yield served


def test_the_twin_answers_as_the_reference_drivers_say(served):
    with visa_client(served.resource, "aimtti-plp") as client:
        for line, reply in TABLE:
            if isinstance(reply, float):  # the supply's own meter has its noise
                got = client.query(line)
                unit = "V" if line[0] == "V" else "A"
                assert re.fullmatch(rf"-?\d+\.\d{{3}}{unit}", got), (line, got)
                assert float(got[:-1]) == pytest.approx(reply, abs=2e-3), line
            elif reply is None:
                client.write(line)
            else:
                assert client.query(line) == reply, line


def test_every_reply_ends_in_cr_lf(served):
    host, port = re.fullmatch(r"TCPIP::(.+)::(\d+)::SOCKET", served.resource).groups()
    with socket.create_connection((host, int(port)), timeout=2) as link:
        link.sendall(b"V1?\n")
        data = b""
        while not data.endswith(b"\n"):
            data += link.recv(64)
    assert data == b"V1 0.000\r\n"


def test_an_over_current_trip_latches_until_triprst_and_leaves_the_output_off(served):
    with visa_client(served.resource, "aimtti-plp") as client:
        client.write("V1 5")  # 2 ohm: 2.5 A wanted
        client.write("I1 1")
        client.write("OCP1 1")
        client.write("OP1 1")
        assert client.query("OP1?") == "0"  # into current limit at the OCP level: tripped
        assert int(client.query("LSR1?")) == 1 << 3
        assert client.query("LSR1?") == "0"  # an event register: read and cleared
        client.write("OP1 1")  # the trip itself is latched: refused while tripped
        assert client.query("OP1?") == "0"
        client.write("TRIPRST")
        assert client.query("LSR1?") == "0"
        assert client.query("OP1?") == "0"  # cleared, still off


def test_an_over_voltage_trip_sets_its_own_bit(served):
    with visa_client(served.resource, "aimtti-plp") as client:
        client.write("OVP2 5")
        client.write("V2 6")
        client.write("OP2 1")
        assert client.query("OP2?") == "0"
        assert int(client.query("LSR2?")) == 1 << 2


@contextlib.contextmanager
def speaking_to(served, journal):
    """The generic supply driver speaking the dialect to the twin, opened."""
    spec = DriverSpec("psu", dialects()["aimtti-plp"], served.resource, journal, 1.0)
    psu = build("supply", spec, file="bench.toml", key="instruments.psu")
    psu.open()
    try:
        yield psu
    finally:
        psu.close()


@pytest.fixture
def driver(served, tmp_path):
    with Journal(tmp_path / "j.sqlite", bench="b") as journal, speaking_to(served, journal) as psu:
        yield psu


def test_the_driver_programs_the_ocp_level_with_the_limit_and_reads_it_armed(served, driver):
    assert driver.program_current_limit(1, 0.5) == pytest.approx(0.5)
    assert served.twin.ocp_levels[1] == pytest.approx(0.5)  # its own level, set alongside
    assert driver.enable_ocp(1) is True  # no switch: armed at the level it reads back
    assert driver.program_ovp(1, 13.2) == pytest.approx(13.2)
    lines = [c["line"] for c in served.truth.commands("psu")]
    assert lines[-7:] == ["I1 0.500", "I1?", "OCP1 0.500", "OCP1?", "OCP1?", "OVP1 13.20", "OVP1?"]


def test_a_trip_reads_back_from_lsr_and_triprst_clears_it_leaving_the_output_off(served, driver):
    driver.program_voltage(1, 5.0)
    driver.program_current_limit(1, 1.0)  # 2 ohm: 2.5 A wanted, OCP at 1 A
    driver.set_output(1, True)
    (settings,) = driver.settings([1])
    assert settings.tripped and not settings.output
    (reading,) = driver.poll([1])
    assert reading.tripped
    driver.clear_protection(1)
    (settings,) = driver.settings([1])
    assert not settings.tripped and not settings.output


def test_a_trip_told_once_by_the_register_is_kept_until_cleared(served, driver):
    """LSR<n>? clears on read: its OVP and OCP bits come from one read (asked twice, the
    OCP bit would be gone by the second), and the trip is kept after the register forgets
    it, for as long as the output is tripped."""
    driver.program_voltage(1, 5.0)
    driver.program_current_limit(1, 1.0)  # 2 ohm: 2.5 A wanted, OCP at 1 A
    driver.set_output(1, True)
    before = len(served.truth.commands("psu"))
    assert [r.tripped for r in driver.poll([1])] == [True]
    asked = [c["line"] for c in served.truth.commands("psu")[before:]]
    assert asked.count("LSR1?") == 1
    assert served.twin.limit_events[1] == 0  # told, and cleared by that read
    assert [r.tripped for r in driver.poll([1])] == [True]
    (settings,) = driver.settings([1])
    assert settings.tripped and not settings.output
    driver.clear_protection(1)
    assert [r.tripped for r in driver.poll([1])] == [False]
    (settings,) = driver.settings([1])
    assert not settings.tripped and not settings.output


def test_a_trip_told_to_a_driver_before_is_cleared_by_the_next_ones_clear_trips(
    served, driver, tmp_path
):
    """The register told its trip to a driver since gone (a service since restarted): the
    next one reads none, and clears every output all the same, with one TRIPRST (a line
    for every output)."""
    driver.program_voltage(1, 5.0)
    driver.program_current_limit(1, 1.0)  # 2 ohm: 2.5 A wanted, OCP at 1 A
    driver.set_output(1, True)
    assert [r.tripped for r in driver.poll([1])] == [True]  # told, and cleared
    journal = Journal(tmp_path / "next.sqlite", bench="b")
    with journal, speaking_to(served, journal) as after:
        assert [s.tripped for s in after.settings([1, 2])] == [False, False]
        before = len(served.truth.commands("psu"))
        after.clear_trips([1, 2], purpose="reset")
        assert [s.tripped for s in after.settings([1, 2])] == [False, False]  # answered
        sent = [c["line"] for c in served.truth.commands("psu")[before:]]
    assert sent.count("TRIPRST") == 1 and sent[0] == "TRIPRST", sent
    assert not served.twin.channels[1].ocp_tripped
    assert not served.twin.channels[1].output


def test_a_trip_told_in_a_pass_whose_other_reply_is_garbage_is_kept(served, driver):
    """The register is read (and cleared) in the same pass as the measurements: a reply
    of the pass that cannot be read fails the pass, and must not take the told trip
    with it (the output stays tripped until TRIPRST: nothing else would show it)."""
    driver.program_voltage(1, 5.0)
    driver.program_current_limit(1, 1.0)  # 2 ohm: 2.5 A wanted, OCP at 1 A
    driver.set_output(1, True)
    twin, answer = served.twin, served.twin.execute

    def garbled(line: str) -> str | None:  # a measurement reply mangled on the wire
        return "#?!" if line.strip() == "V1O?" else answer(line)

    twin.execute = garbled
    try:
        with pytest.raises(ProtocolError):
            driver.poll([1])
    finally:
        twin.execute = answer
    assert twin.limit_events[1] == 0  # that pass read and cleared the register
    (settings,) = driver.settings([1])
    assert settings.tripped and not settings.output


def test_a_trip_told_in_a_pass_cut_short_is_kept(served, driver):
    """A pass is cut short once a stop is under way (the monitor's ``between`` raises
    before the next line): a register read before the cut has told its trip, and it is
    kept though the pass never ends."""
    driver.program_voltage(1, 5.0)
    driver.program_current_limit(1, 1.0)  # 2 ohm: 2.5 A wanted, OCP at 1 A
    driver.set_output(1, True)
    calls = []

    def between() -> None:  # before each line after the first: V2O?, I1O?, I2O?, LSR1?, LSR2?
        calls.append(1)
        if len(calls) == 5:
            raise FaultLatched("a stop is under way")

    with pytest.raises(FaultLatched):
        driver.post_poll([1, 2], between).result()
    assert served.twin.limit_events[1] == 0  # LSR1? was read, and cleared
    (settings, _) = driver.settings([1, 2])
    assert settings.tripped and not settings.output


def test_an_ocp_without_a_switch_needs_its_level_lines(tmp_path):
    from interlock.dialects.loader import load_dialect
    from interlock.errors import ConfigError
    from tests.controller.support import ROOT

    text = (ROOT / "interlock" / "dialects" / "aimtti_plp.toml").read_text(encoding="utf-8")
    broken = tmp_path / "aimtti_plp.toml"
    broken.write_text(text.replace('"ocp?" = ', '"ocp_level?" = ', 1), encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_dialect(broken)
    assert error.value.key == "capabilities.ocp_level" and '"ocp?"' in error.value.problem
    # A switch named without its state query is still refused: armed must read back.
    broken.write_text(text.replace('clear = "TRIPRST"', 'clear = "TRIPRST"\nocp_on = "X"'))
    with pytest.raises(ConfigError) as error:
        load_dialect(broken)
    assert error.value.key == "capabilities.ocp" and '"ocp_state?"' in error.value.problem


def test_a_trip_told_to_a_service_since_restarted_is_cleared_at_the_reset(
    sim_bench_factory, tmp_path
):
    """LSR<n>? told the trip to the service that stopped: the output is latched off in the
    supply still, and its register reads 0 for the next service. Its operator's reset
    clears it all the same (TRIPRST leaves every output off), and the net goes live after
    arming, as it would have in the service that saw the trip."""
    rig = make_rig(sim_bench_factory, tmp_path, bench=motor_bench(tmp_path, "aimtti-plp"))
    twin, (_, channel) = rig.sim.instruments["motor_psu"], motor_output("aimtti-plp")
    restarted = None
    try:
        rig.power_up_logic()
        rig.power_up_bus()
        rig.controller.set_voltage("MOTOR", 3.0)
        rig.controller.output_on("MOTOR")
        rig.sim.inject("short:MOTOR")  # into its current limit, at the OCP level: tripped
        assert until(lambda: rig.controller.state == "fault", 30)
        assert until(lambda: twin.limit_events[channel] == 0, 30)  # told, and cleared
        assert twin.channels[channel].ocp_tripped  # latched in the supply still
        rig.sim.clear("short:MOTOR")
        rig.controller.close()
        time.sleep(PAST_THE_WATCHDOG_S)  # the board's watchdog latches: no clean stop
        restarted = restart(rig)
        assert restarted.state == "fault"
        assert "motor_psu" not in restarted.fault_cause  # the register tells nothing now
        restarted.reset("operator")
        assert not twin.channels[channel].ocp_tripped
        assert_all_outputs_off(rig)  # the clear turned nothing on
        restarted.arm("operator")
        all_live(restarted)
        assert restarted.state == "live"
        assert twin.channels[channel].output
    finally:
        if restarted is not None:
            close_restarted(restarted)
        close_rig(rig)
