"""Fault tests of the MDB-24 power-up: what our sequence does when the board misbehaves.

On the simulated bench, ``bench.sim`` is the simulator the bench's service
uses: a test injects a fault into the "hardware", watches the interlock
catch it, and reads from the simulator's ground truth what the board really
saw. On a real bench these tests are skipped.
"""

import time

import pytest

from interlock import FaultLatched, IdentityMismatch


@pytest.fixture
def sim(bench):
    if bench.environment != "simulation":
        pytest.skip("fault injection needs the simulated bench")
    return bench.sim


def wait_for_fault(bench, timeout=10.0):
    deadline = time.monotonic() + timeout
    while (status := bench.status())["state"] != "fault":
        assert time.monotonic() < deadline, f"no trip within {timeout} s: {status['state']}"
        time.sleep(0.05)
    return status


def test_a_short_on_the_bus_trips_the_bench_and_the_board_sees_no_more_than_the_limit(bench, sim):
    bench.set_current_limit("VLOGIC", 0.3)
    bench.set_voltage("VLOGIC", 5.0)
    bench.output_on("VLOGIC")
    bench.set_current_limit("VBUS", 0.3)
    bench.set_voltage("VBUS", 4.0)
    bench.output_on("VBUS")
    bench.set_voltage("VBUS", 12.0)

    sim.inject("short:VBUS")  # a solder bridge on the bus, while it is live
    status = wait_for_fault(bench)

    assert "VBUS" in status["fault"]  # the cause names the net
    with pytest.raises(FaultLatched):
        bench.output_on("VBUS")  # latched: nothing goes live until an operator resets
    truth = sim.truth()
    assert truth["contacts"] == []  # every relay open
    assert not any(ch["output"] for ch in truth["supplies"]["psu"].values())
    assert truth["supplies"]["psu"]["2"]["ocp_tripped"]  # the supply cut it first
    bus = sim.history("VBUS", seconds=5)
    assert max(s.current for s in bus.samples) <= 0.3  # never beyond the current limit
    assert bus.samples[-1].voltage == 0.0

    sim.clear("short:VBUS")  # the bridge is removed...
    bench.reset()  # ...and the operator acknowledges: the bench is safe, nothing is live
    assert bench.status()["state"] == "safe"


def test_a_board_that_is_not_ours_is_refused_before_anything_is_energised(bench, sim):
    bench.disarm()
    sim.inject("wrong-dut")  # another board in the fixture: its ID resistor reads 4.7 kohm
    since = sim.truth()["clock"]["monotonic"]
    with pytest.raises(IdentityMismatch):
        bench.arm()  # the DUT's identity is checked at arming, before anything goes live
    assert bench.status()["state"] == "safe"
    for net in ("VLOGIC", "VBUS", "MOTOR"):
        seen = [s.voltage for s in sim.history(net).samples if s.monotonic >= since]
        assert max(seen, default=0.0) < 0.5, net
