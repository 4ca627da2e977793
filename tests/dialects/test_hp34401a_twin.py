"""The 34401A twin answers a plain pyserial client as its RS-232 guide says (research
notes, table tests 1-13): 9600 8N2, newline in and CR LF out, nothing listened to
before SYST:REM, +9.90000000E+37 for an overload, errors only in SYST:ERR?."""

from __future__ import annotations

import re
import threading

import pytest
import serial

from interlock.dialects import dialects
from interlock.sim.dut import Load
from interlock.sim.electrical import ElectricalBench, Route
from interlock.sim.instrument import IdentityString
from interlock.sim.serial_server import SerialTwinServer
from interlock.sim.truth import GroundTruth
from interlock.sim.twins.hp34401a import Hp34401aMeter

IDN = "HEWLETT-PACKARD,34401A,0,11-5-2"
NO_REPLY_WAIT = 0.3  # s: long enough for a reply the twin should not send


@pytest.fixture
def meter():
    dialect = dialects()["hp-34401a"]
    truth = GroundTruth(["IN"])
    electrical = ElectricalBench(
        [Route("IN", None, None, "K1")], {"IN": Load(resistance=1e4)}, truth, threading.RLock()
    )
    electrical.set_relay("K1", True)
    electrical.set_stray("IN", 5.0)  # 5 V on the input
    twin = Hp34401aMeter("dmm", IdentityString(*IDN.split(",")), electrical, truth)
    server = SerialTwinServer(twin, truth, dialect.link, latency=0)
    port = server.start()
    link = serial.Serial(port, 9600, bytesize=8, parity="N", stopbits=2, timeout=2.0)
    yield link, twin
    link.close()
    server.close()


def exchange(link: serial.Serial, line: str, reply: bool) -> bytes:
    link.write(line.encode("ascii") + b"\n")
    if reply:
        return link.read_until(b"\r\n")
    link.timeout = NO_REPLY_WAIT
    try:  # nothing may come: a late reply would answer the next row's question
        return link.read(1)
    finally:
        link.timeout = 2.0


TABLE = [
    # (line, the reply with its CR LF; None: answered by nothing)
    ("SYST:REM", None),
    ("*IDN?", b"HEWLETT-PACKARD,34401A,0,11-5-2\r\n"),
    ("SYST:ERR?", b'+0,"No error"\r\n'),
    ("BOGUS", None),
    ("SYST:ERR?", b'-113,"Undefined header"\r\n'),
    ("BOGUS?", None),  # a query it cannot parse: no reply either
    ("SYST:ERR?", b'-113,"Undefined header"\r\n'),
    ('FUNC "VOLT"', None),
    ("FUNC?", b'"VOLT"\r\n'),
    ("VOLT:RANG 1", None),
    ("VOLT:RANG:AUTO?", b"0\r\n"),
    ("READ?", b"+9.90000000E+37\r\n"),  # 5 V on the 1 V range: overload
    ("VOLT:NPLC 10", None),
    ("VOLT:NPLC?", b"+1.00000000E+01\r\n"),
    ("VOLT:NPLC 0.5", None),  # not one of its integration times
    ("SYST:ERR?", b'-222,"Data out of range"\r\n'),
    ("VOLT:NPLC?", b"+1.00000000E+01\r\n"),
    ("CURR:RANG 10", None),  # beyond its 3 A range
    ("SYST:ERR?", b'-222,"Data out of range"\r\n'),
    ("INP:IMP:AUTO 1", None),
    ("*RST", None),
    ("INP:IMP:AUTO?", b"0\r\n"),
    ("SYST:LOC", None),
    ("*IDN?", None),  # in local again: not listened to
    ("SYST:RWL", None),
    ("*IDN?", b"HEWLETT-PACKARD,34401A,0,11-5-2\r\n"),
]


def test_the_twin_answers_as_the_guide_says(meter):
    link, _ = meter
    for line, expected in TABLE:
        assert exchange(link, line, expected is not None) == (expected or b""), line


READING = re.compile(rb"[+-]\d\.\d{8}E[+-]\d\d\r\n")  # SD.DDDDDDDDESDD<cr><nl>


def test_a_reading_is_fifteen_characters_and_cr_lf(meter):
    link, _ = meter
    exchange(link, "SYST:REM", False)
    reply = exchange(link, "MEAS:VOLT:DC? DEF,DEF", True)
    assert READING.fullmatch(reply), reply
    assert float(reply) == pytest.approx(5.0, abs=1e-3)
    assert READING.fullmatch(exchange(link, "MEAS:RES?", True))


def test_nothing_is_listened_to_before_syst_rem(meter):
    link, twin = meter
    assert exchange(link, "*IDN?", False) == b""
    assert exchange(link, "CONF:RES", False) == b""
    assert not twin.remote and twin.function.name == "VOLT"  # the line changed nothing
    exchange(link, "SYST:REM", False)
    assert exchange(link, "FUNC?", True) == b'"VOLT"\r\n'
