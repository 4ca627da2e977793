"""One twin alone, served over its dialect's transport, for table tests with a plain
pyvisa or pyserial client."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import pyvisa
from pyvisa.constants import ControlFlow, Parity, StopBits

from interlock.dialects import dialects
from interlock.sim.electrical import ElectricalBench, Route
from interlock.sim.instrument import IdentityString
from interlock.sim.loopthread import EventLoopThread
from interlock.sim.serial_server import SerialTwinServer
from interlock.sim.server import InstrumentServer
from interlock.sim.truth import GroundTruth
from interlock.sim.twins import TWINS


@dataclass
class Served:
    resource: str  # a VISA resource or a pty path
    twin: object
    truth: GroundTruth
    electrical: ElectricalBench


@contextlib.contextmanager
def served_twin(
    dialect: str, identity: IdentityString, loads: dict | None = None
) -> Iterator[Served]:
    """The dialect's twin of ``identity.model`` with a net OUTn on each output (``loads``:
    net -> :class:`interlock.sim.dut.Load`), served as the real one is."""
    link = dialects()[dialect].link
    channels = dialects()[dialect].models[identity.model].channels
    nets = [f"OUT{n}" for n in channels]
    truth = GroundTruth(nets)
    routes = [Route(f"OUT{n}", ("psu", n), f"K{n}", None) for n in channels]
    electrical = ElectricalBench(routes, loads or {}, truth, threading.RLock())
    for n in channels:  # each output wired to its net
        electrical.set_relay(f"K{n}", True, n)
    twin = TWINS[dialect]("psu", identity, electrical, truth, model=identity.model)
    if link.kind == "visa-socket":
        loop = EventLoopThread("twin-test")
        loop.start()
        server = InstrumentServer(twin, truth, latency=0, terminator=link.read_termination)
        loop.run(server.start())
        try:
            yield Served(server.resource, twin, truth, electrical)
        finally:
            loop.run(server.close())
            loop.stop()
    else:
        serial_server = SerialTwinServer(twin, truth, link, latency=0)
        serial_server.start()
        try:
            yield Served(serial_server.resource, twin, truth, electrical)
        finally:
            serial_server.close()


@contextlib.contextmanager
def visa_client(
    resource: str, dialect: str, timeout: float = 1.0
) -> Iterator[pyvisa.resources.MessageBasedResource]:
    """A plain pyvisa session at the dialect's terminators."""
    link = dialects()[dialect].link
    line = {}
    if link.kind == "visa-serial":  # the frame a plain client sets up for the port
        line = {
            "baud_rate": link.baud,
            "data_bits": link.data_bits,
            "parity": Parity.none if link.parity == "N" else Parity.even,
            "stop_bits": StopBits.two if link.stop_bits == 2 else StopBits.one,
            "flow_control": ControlFlow.dtr_dsr if link.flow == "dtr-dsr" else ControlFlow.none,
        }
    rm = pyvisa.ResourceManager("@py")  # shared with the drivers: never closed here
    session = rm.open_resource(
        resource,
        read_termination=link.read_termination,
        write_termination=link.write_termination,
        timeout=int(timeout * 1000),
        **line,
    )
    try:
        yield session
    finally:
        session.close()


def play_table(client: pyvisa.resources.MessageBasedResource, table) -> None:  # type: ignore[no-untyped-def]
    """Each (line, reply) of a twin's table: a str is the exact reply, None a line that
    gets none, a float the supply's own meter reading (with its noise: a plain decimal
    within 2 mV or 2 mA)."""
    for line, reply in table:
        if isinstance(reply, float):
            got = client.query(line)
            assert re.fullmatch(r"-?\d+\.\d+", got), line
            assert float(got) == pytest.approx(reply, abs=2e-3), line
        elif reply is None:
            client.write(line)
        else:
            assert client.query(line) == reply, line
