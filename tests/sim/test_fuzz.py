"""Server-side fuzzing: no line, however malformed, crashes an instrument.

Every malformed line leaves an entry in the error queue, never an internal
error (-300, which the server reports when a model raised), and the
instrument still answers ``*IDN?`` afterwards.
"""

from __future__ import annotations

import random
import socket
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interlock.sim.bench import SimulatedBench
from tests.sim.conftest import ROOT_BENCH

HEADERS = [
    "*IDN", "*RST", "*CLS", "*OPC", "*ESR", "*TST", "*WAI", "SYST:ERR", "SYSTem:ERRor:COUNt",
    "INST", "INST:NSEL", "INSTrument:SELect", "APPL", "VOLT", "CURR", "SOUR:VOLT:LEV:IMM:AMPL",
    "VOLT:PROT", "VOLT:PROT:STAT", "VOLT:PROT:TRIP", "VOLT:PROT:CLE", "CURR:PROT:STAT",
    "CURR:PROT:TRIP", "OUTP", "OUTP:STAT", "OUTP:PROT:CLE", "MEAS:VOLT", "MEAS:CURR",
    "MEAS:VOLT:DC", "MEAS:RES", "MEAS:FRES", "MEAS:CURR:DC", "CONF:VOLT:DC", "CONF:RES",
    "CONF", "READ", "INIT", "FETC", "SAMP:COUN", "FUNC", "SENS:FUNC", "TRIG:SOUR",
    "STAT:QUES:COND", "VOLTA", "MEAS", ":", "*", "FOO:BAR",
]
PARAMS = [
    "1", "0", "-1", "5", "5.5", "1e3", "1e999", "-0", ".", "+", "ON", "OFF", "MIN", "MAX", "DEF",
    "AUTO", "CH1", "CH4", "OUTP2", "(@1)", "(@1,2,3)", "(@1:3)", "(@0)", "(@3:1)", "(@", "(@1",
    "@1)", "()", "(", ")", '"VOLT:DC"', '"RES"', '"', "'x'", "5 V", "5 mA", "5 KOHM", "5 Q",
    "nan", "inf", "#H1F", "", " ",
]

header = st.sampled_from(HEADERS)
parameter = st.one_of(st.sampled_from(PARAMS), st.text(string.printable, max_size=8))
unit = st.builds(
    lambda h, q, ps, sep: h + q + (" " + sep.join(ps) if ps else ""),
    header, st.sampled_from(["", "?"]), st.lists(parameter, max_size=4),
    st.sampled_from([",", ", ", ",,", " "]),
)
scpi_like = st.builds(lambda units, sep: sep.join(units), st.lists(unit, min_size=1, max_size=4),
                      st.sampled_from([";", "; ", ";;", ";:"]))
anything = st.text(max_size=60)
# Lines that are certainly wrong: an unknown header, or a known one with a bad argument.
malformed = st.one_of(
    st.builds(lambda junk: "ZZ" + junk, st.text(string.ascii_letters + ":?", max_size=10)),
    st.builds(lambda h, p: f"{h} {p}", st.sampled_from(["VOLT", "CURR", "OUTP", "INST:NSEL",
                                                         "SAMP:COUN", "VOLT:PROT"]),
              st.sampled_from(["abc", "(@9)", "1e999", '"x', "5 Q", "1,2,3,4", "(@1"])),
    st.builds(lambda c: f"*IDN?{c}", st.sampled_from(["\x00", "\x07", "\x7f", "\xe9"])),
)


@pytest.fixture(scope="module")
def sim():
    bench = SimulatedBench(ROOT_BENCH, latency=0.0, seed=1)
    bench.start()
    yield bench
    bench.stop()


def _check_alive(instrument) -> None:
    assert -300 not in instrument.errors.codes(), "a model raised on this line"
    assert instrument.execute("*IDN?") == instrument.identity.reply()
    instrument.execute("*CLS")


FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("name", ["psu", "dmm"])
@FUZZ
@given(line=st.one_of(scpi_like, anything))
def test_random_lines_never_crash(sim, name, line):
    instrument = sim.instruments[name]
    instrument.execute(line)
    _check_alive(instrument)


@pytest.mark.parametrize("name", ["psu", "dmm"])
@FUZZ
@given(line=malformed)
def test_malformed_lines_are_reported_in_the_error_queue(sim, name, line):
    instrument = sim.instruments[name]
    instrument.execute("*CLS")
    instrument.execute(line)
    assert instrument.errors.count() >= 1
    assert instrument.execute("SYST:ERR?").startswith("-")
    _check_alive(instrument)


def test_garbage_bytes_over_the_socket(sim):
    """Binary junk, bare CRs, NULs and over-long lines through the real server."""
    rng = random.Random(7)
    port = int(sim.resources["psu"].split("::")[2])
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        junk = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))) for _ in range(200)]
        for blob in junk:
            sock.sendall(blob.replace(b"\n", b"") + b"\n")
        sock.sendall(b"VOLT " + b"9" * 70_000 + b"\n")  # longer than any line the server keeps
        sock.sendall(b"\r\n\n*CLS\n*IDN?\n")
        reply = b""
        while not reply.endswith(b"\n") or b"E36312A" not in reply:
            chunk = sock.recv(65536)
            assert chunk, "the instrument closed the connection"
            reply += chunk
    assert reply.splitlines()[-1].decode().startswith("Keysight Technologies,E36312A,")
    assert -300 not in sim.instruments["psu"].errors.codes()
