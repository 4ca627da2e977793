"""The Korad twin answers a plain pyserial client as the protocol says (sigrok wiki,
libsigrok, koradctl; research notes, table tests 1-14): no terminator, fixed-width
replies, a binary status byte, and a command sent within the gap dropped."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

import pytest
import serial

from interlock.dialects import dialects
from interlock.drivers.registry import DriverSpec, build
from interlock.journal import Journal
from interlock.sim.electrical import ElectricalBench, Route
from interlock.sim.instrument import IdentityString
from interlock.sim.serial_server import SerialTwinServer
from interlock.sim.truth import GroundTruth
from interlock.sim.twins.korad import KoradSupply

GAP = 0.1  # s: the dialect's own (koradctl's 50 ms, libsigrok's 80 ms, rounded up)


@contextlib.contextmanager
def korad_twin() -> Iterator[tuple[str, KoradSupply, GroundTruth]]:
    """A KA3005P twin served on a pseudo-terminal: its port, the twin and its truth."""
    dialect = dialects()["korad-ka"]
    truth = GroundTruth(["OUT"])
    electrical = ElectricalBench(
        [Route("OUT", ("psu", 1), None, None)], {}, truth, threading.RLock()
    )
    twin = KoradSupply(
        "psu", IdentityString("KORAD", "KA3005P", "", "5.5"), electrical, truth, model="KA3005P"
    )
    server = SerialTwinServer(twin, truth, dialect.link, latency=0)
    try:
        yield server.start(), twin, truth
    finally:
        server.close()


@pytest.fixture
def korad():
    with korad_twin() as (port, twin, truth):
        link = serial.Serial(port, 9600, timeout=1.0)
        yield link, twin, truth
        link.close()


def exchange(link: serial.Serial, command: str, width: int | None = None) -> bytes:
    time.sleep(GAP)
    link.write(command.encode("ascii"))
    if width is None:  # no reply: nothing comes within the gap (a late one fails the next row)
        time.sleep(GAP)
        return link.read(link.in_waiting)
    return link.read(width)


TABLE = [
    # (command, width of the reply, the reply; None: no reply)
    ("*IDN?", 18, b"KORAD KA3005P V5.5"),  # ended by silence: read to its length here
    ("VSET1:05.00", None, b""),
    ("VSET1?", 5, b"05.00"),
    ("ISET1:0.500", None, b""),
    ("ISET1?", 6, b"0.500\x00"),  # a sixth byte once *IDN? was asked (libsigrok)
    ("VSET1:12.34", None, b""),
    ("VSET1?", 5, b"12.34"),
    ("VOUT1?", 5, b"00.00"),  # output off
    ("IOUT1?", 5, b"0.000"),
    ("STATUS?", 1, b"\x01"),  # CV, output off
    ("OUT1", None, b""),
    ("STATUS?", 1, b"\x41"),  # CV and output on (no load: CV)
    ("VOUT1?", 5, b"12.34"),
    ("OUT0", None, b""),
    ("STATUS?", 1, b"\x01"),
    ("VSET1:40.00", None, b""),  # beyond its range: ignored, the setting kept
    ("VSET1?", 5, b"12.34"),
    ("BEEP0", None, b""),  # unknown to the twin's model, answered by nothing
    ("OVP1", None, b""),
    ("OUT1", None, b""),
    ("RCL1", None, b""),  # recalling a memory turns the output off
    ("STATUS?", 1, b"\x01"),
]


def test_the_twin_answers_as_the_protocol_says(korad):
    link, _, _ = korad
    for command, width, expected in TABLE:
        assert exchange(link, command, width) == expected, command


def test_a_command_sent_within_the_gap_is_never_applied(korad):
    """Sent back to back, the second command is lost: dropped as too soon, or run into the
    first as one line no table knows. Either way the setting is not the second's."""
    link, _, truth = korad
    exchange(link, "VSET1:05.00")
    time.sleep(GAP)
    link.write(b"VSET1:07.00")
    link.write(b"VSET1:09.00")
    assert exchange(link, "VSET1?", 5) in (b"05.00", b"07.00")
    lines = truth.commands("psu")
    assert any(
        c.get("note") == "dropped: sent within the gap" or c["line"] == "VSET1:07.00VSET1:09.00"
        for c in lines
    )


@pytest.mark.parametrize(
    ("asked", "extra", "levels"),
    [
        ("ISET1?", "", [logging.DEBUG]),  # its habit: quietly
        ("ISET1?", "\x00", [logging.WARNING]),  # a byte more than its habit
        ("VSET1?", "\x00", [logging.DEBUG, logging.WARNING]),  # a query with no such habit
    ],
)
def test_only_a_querys_own_trailing_byte_is_dropped_quietly(tmp_path, caplog, asked, extra, levels):
    """ISET1?'s sixth byte is the Korad's habit (the query's trailing): dropped before the
    next line quietly. A byte more than that, or one after another reply, answers nothing
    the link knows of: dropped all the same, with a warning. Each next reply reads whole."""
    with korad_twin() as (port, twin, _), Journal(tmp_path / "j.sqlite", bench="b") as journal:
        spec = DriverSpec("psu", dialects()["korad-ka"], port, journal, 1.0)
        psu = build("supply", spec, file="bench.toml", key="instruments.psu")
        psu.open()
        try:
            psu.identify()  # from here, ISET1? answers its sixth byte
            answer = twin.execute
            twin.execute = lambda line: (  # type: ignore[method-assign]
                answer(line) + extra if line.strip() == asked else answer(line)
            )
            with caplog.at_level(logging.DEBUG, logger="interlock.drivers.serial_link"):
                assert psu.program_current_limit(1, 0.5) == pytest.approx(0.5)
                assert psu.program_voltage(1, 5.0) == pytest.approx(5.0)
                assert psu.program_current_limit(1, 0.4) == pytest.approx(0.4)
        finally:
            psu.close()
    dropped = [r for r in caplog.records if "answer nothing asked dropped" in r.getMessage()]
    assert [r.levelno for r in dropped] == levels, [r.getMessage() for r in dropped]
