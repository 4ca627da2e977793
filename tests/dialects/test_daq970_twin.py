"""The DAQ970A twin answers a plain pyvisa client over TCP as the 34970A/DAQ970A guides
say (research notes, table tests 2-16): ROUTe with channel lists, the module type, a
bad channel refused whole with nothing switched, and power-on recall."""

from __future__ import annotations

import threading

import pytest
import pyvisa

from interlock.sim.electrical import ElectricalBench, Route
from interlock.sim.instrument import IdentityString
from interlock.sim.loopthread import EventLoopThread
from interlock.sim.server import InstrumentServer
from interlock.sim.truth import GroundTruth
from interlock.sim.twins.daq970 import Daq970Switch

IDN = "Keysight Technologies,DAQ970A,MY12345678,A.02.04-00.16-11.29-00.02-02-01"


@pytest.fixture
def daq():
    truth = GroundTruth(["ID"])
    electrical = ElectricalBench([Route("ID", None, None, "K1")], {}, truth, threading.RLock())
    identity = IdentityString(*IDN.split(",", 3))
    twin = Daq970Switch("daq", identity, electrical, truth, relays={1: "K1"})
    loop = EventLoopThread("daq-twin")
    loop.start()
    server = InstrumentServer(twin, truth, 0.0, "127.0.0.1", 0)
    loop.run(server.start())
    rm = pyvisa.ResourceManager("@py")  # shared with the drivers: never closed here
    inst = rm.open_resource(server.resource, read_termination="\n", write_termination="\n")
    inst.timeout = 2000
    yield inst, twin, electrical
    inst.close()
    loop.run(server.close())
    loop.stop()


TABLE = [
    # (line, the reply; None: a command, answered by nothing)
    ("*IDN?", IDN),
    ("SYST:CTYP? 100", "HEWLETT-PACKARD,34903A,0,1.0"),
    ("SYST:CTYP? 300", "HEWLETT-PACKARD,0,0,0"),
    ("*RST", None),
    ("ROUT:CLOS? (@101)", "0"),
    ("ROUT:CLOS (@101)", None),
    ("ROUT:CLOS? (@101)", "1"),
    ("ROUT:OPEN? (@101)", "0"),
    ("ROUT:CLOS (@103,105)", None),
    ("ROUT:CLOS? (@103:105)", "1,0,1"),
    ("ROUT:CLOS:EXCL (@110)", None),
    ("ROUT:CLOS? (@101,103,105,110)", "0,0,0,1"),
    ("ROUT:OPEN (@101:120)", None),
    ("ROUT:CLOS? (@101:120)", ",".join(["0"] * 20)),
    ("DIAG:REL:CYCL? (@101)", "+1"),
    ("ROUT:CLOS (@101)", None),
    ("ROUT:OPEN (@101)", None),
    ("DIAG:REL:CYCL? (@101)", "+2"),
    ("SYST:ERR?", '+0,"No error"'),
    # A channel the module does not have: the whole list refused, nothing switched.
    ("ROUT:CLOS (@102,121)", None),
    ("SYST:ERR?", '-222,"Data out of range"'),
    ("ROUT:CLOS? (@101:120)", ",".join(["0"] * 20)),
    ("BOGUS", None),
    ("SYST:ERR?", '-113,"Undefined header"'),
    ("MEM:STAT:REC:AUTO?", "1"),
]


def test_the_twin_answers_as_the_guides_say(daq):
    inst, _, _ = daq
    for line, expected in TABLE:
        if expected is None:
            inst.write(line)
        else:
            assert inst.query(line) == expected, line


def test_a_relay_closes_the_dut_contact_and_power_on_recall_keeps_it(daq):
    inst, twin, electrical = daq
    inst.write("ROUT:CLOS (@101)")
    assert inst.query("*OPC?") == "1"
    assert electrical.closed_relays() == {"K1"}
    twin.power_cycle()  # factory setting: the power-down state recalled
    assert inst.query("ROUT:CLOS? (@101)") == "1"
    inst.write("MEM:STAT:REC:AUTO OFF")
    assert inst.query("*OPC?") == "1"
    twin.power_cycle()
    assert inst.query("ROUT:CLOS? (@101)") == "0"
    assert electrical.closed_relays() == set()


def test_a_welded_contact_is_invisible_to_its_readback(daq):
    inst, twin, electrical = daq
    twin.relays.weld(1, True)
    inst.write("ROUT:OPEN (@101)")
    assert inst.query("ROUT:CLOS? (@101)") == "0"  # what was commanded
    assert electrical.closed_relays() == {"K1"}  # what is
