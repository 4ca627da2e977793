"""The Numato twin answers a plain pyserial client as the vendor's samples read the
module (research notes, table tests 1-14): each line echoed, ``\\n\\r`` line ends, a
``>`` prompt, relays named by their first character only, nothing it does not know."""

from __future__ import annotations

import threading

import pytest
import serial

from interlock.dialects import dialects
from interlock.sim.electrical import ElectricalBench, Route
from interlock.sim.instrument import IdentityString
from interlock.sim.serial_server import SerialTwinServer
from interlock.sim.truth import GroundTruth
from interlock.sim.twins.numato import NumatoRelays


def serve(model: str):
    truth = GroundTruth(["ID"])
    electrical = ElectricalBench([Route("ID", None, None, "K1")], {}, truth, threading.RLock())
    identity = IdentityString("Numato Lab", model, "00000000", "00000008")
    twin = NumatoRelays("relays", identity, electrical, truth, relays={1: "K1"})
    server = SerialTwinServer(twin, truth, dialects()["numato-relay"].link, latency=0)
    link = serial.Serial(server.start(), 19200, timeout=1.0)
    return server, link, electrical


@pytest.fixture(params=["USBRELAY8", "USBRELAY16"])
def numato(request):
    server, link, electrical = serve(request.param)
    yield request.param, link, electrical
    link.close()
    server.close()


def exchange(link: serial.Serial, line: bytes) -> bytes:
    link.write(line)
    return link.read_until(b">")


TABLE = [
    # (what is sent, what comes back)
    (b"ver\r", b"ver\n\r00000008\n\r>"),
    (b"id get\r", b"id get\n\r00000000\n\r>"),
    (b"id set ABCDEFGH\r", b"id set ABCDEFGH\n\r>"),
    (b"id get\r", b"id get\n\rABCDEFGH\n\r>"),
    (b"relay read 0\r", b"relay read 0\n\roff\n\r>"),
    (b"relay on 0\r", b"relay on 0\n\r>"),
    (b"relay read 0\r", b"relay read 0\n\ron\n\r>"),
    (b"relay off 0\r", b"relay off 0\n\r>"),
    (b"relay read 0\r", b"relay read 0\n\roff\n\r>"),
    (b"relay on 3\r", b"relay on 3\n\r>"),
    (b"relay on c\r", b"relay on c\n\r>"),  # a lowercase index: ignored
    (b"relay on 0\n\r", b"relay on 0\n\r>"),  # the older samples' terminator
    (b"relay off 0\r", b"relay off 0\n\r>"),
    (b"bogus\r", b"bogus\n\r>"),  # no error protocol: echoed, ignored
]


def test_the_twin_answers_as_the_samples_read_it(numato):
    model, link, _ = numato
    for line, expected in TABLE:
        assert exchange(link, line) == expected, line
    digits = 2 if model == "USBRELAY8" else 4
    assert (
        exchange(link, b"relay readall\r") == b"relay readall\n\r" + b"08".zfill(digits) + b"\n\r>"
    )
    all_on = b"F" * digits
    assert exchange(link, b"relay writeall " + all_on + b"\r").endswith(b"\n\r>")
    assert exchange(link, b"relay readall\r") == b"relay readall\n\r" + all_on + b"\n\r>"
    assert exchange(link, b"reset\r") == b"reset\n\r>"
    assert exchange(link, b"relay readall\r") == b"relay readall\n\r" + b"0" * digits + b"\n\r>"


def test_only_the_first_character_of_an_index_is_read():
    server, link, electrical = serve("USBRELAY16")
    try:
        exchange(link, b"relay on 12\r")  # relay 1, not 12
        assert exchange(link, b"relay readall\r") == b"relay readall\n\r0002\n\r>"
        exchange(link, b"relay writeall 0000\r")
        exchange(link, b"relay on A\r")
        assert exchange(link, b"relay readall\r") == b"relay readall\n\r0400\n\r>"
        exchange(link, b"relay on 0\r")
        assert electrical.closed_relays() == {"K1"}
    finally:
        link.close()
        server.close()
