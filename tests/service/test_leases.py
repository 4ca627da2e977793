"""Leases: a client that vanishes or falls silent while a net is live leaves a safe bench."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import interlock
from interlock.errors import FaultLatched, StateError
from interlock.journal import JournalReader
from interlock.service import app as service_app
from tests.service.conftest import (
    LEASE_TIMEOUT,
    OFF_VOLTS,
    ROOT,
    Served,
    assert_bench_safe,
    bring_up,
)

HOLDER = Path(__file__).with_name("lease_holder.py")
# Time for the service to notice and for the safe-state procedure to finish.
MARGIN = 1.0


def _vlogic(served: Served) -> float:
    return served.truth()["nets"]["VLOGIC"]["voltage"]


def _wait_until_safe(served: Served, deadline: float) -> float:
    """Poll the ground truth until outputs are off and relays open; return when (monotonic)."""
    while time.monotonic() < deadline:
        truth = served.truth()
        if truth["nets"]["VLOGIC"]["voltage"] < OFF_VOLTS and not truth["contacts"]:
            return time.monotonic()
        time.sleep(0.01)
    pytest.fail(f"bench not safe {MARGIN:g} s past the lease timeout: {served.truth()['contacts']}")


def _start_holder(served: Served) -> subprocess.Popen:
    served.client("operator").arm()
    holder = subprocess.Popen(
        [sys.executable, str(HOLDER), str(served.bench_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = holder.stdout.readline().strip()
    if line != "live":
        holder.kill()
        holder.wait()
        holder.stdout.close()
        pytest.fail(f"lease holder did not come up: {line!r}")
    assert _vlogic(served) == pytest.approx(5.0, abs=0.05)
    assert served.controller.state == "live"
    return holder


def _lease_fault(served: Served) -> dict:
    with JournalReader(served.service.settings.journal) as reader:
        faults = [e for e in reader.entries() if e.kind == "fault"]
    assert faults, "no fault journaled"
    return faults[0].payload


# A killed client's connection drops at once, and is told from silence by that: its lease
# times out far later than any loaded machine delays noticing the drop (a 1 s timeout
# was once reached first beside two CPU-bound processes).
KILLED_LEASE_TIMEOUT = 5.0


@pytest.mark.parametrize("how", ["kill", "silence"])
def test_a_client_lost_while_live_leaves_the_bench_safe(serve_bench, how):
    timeout = KILLED_LEASE_TIMEOUT if how == "kill" else LEASE_TIMEOUT
    served = serve_bench(lease_timeout=timeout)
    holder = _start_holder(served)
    try:
        if how == "kill":
            holder.send_signal(signal.SIGKILL)  # its connections drop at once
        else:
            holder.send_signal(signal.SIGSTOP)  # connected, but no more heartbeats
        lost_at = time.monotonic()
        off_at = _wait_until_safe(served, lost_at + timeout + MARGIN)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    if how == "silence":
        assert off_at - lost_at > LEASE_TIMEOUT * 0.5  # it waited for the heartbeats to stop
    assert_bench_safe(served.truth())
    # The trip latches the fault once the safe state is done: just after the truth shows it.
    latched_by = time.monotonic() + 1.0
    while served.controller.state != "fault" and time.monotonic() < latched_by:
        time.sleep(0.01)
    assert served.controller.state == "fault"
    fault = _lease_fault(served)
    assert fault["cause"] == "lease"
    assert fault["who"] == "lease-holder"
    assert "lease_holder.py pid" in fault["detail"]
    assert ("dropped" if how == "kill" else "no heartbeat") in fault["detail"]


def test_output_on_needs_the_lease(served):
    served.client("operator").arm()
    script = served.client("script")
    script.set_current_limit("VLOGIC", 0.3)
    script.set_voltage("VLOGIC", 5.0)
    with pytest.raises(StateError, match="needs the bench's lease"):
        script.output_on("VLOGIC")
    assert served.controller.state == "armed"
    assert _vlogic(served) < OFF_VOLTS


def test_the_lease_is_exclusive_but_anyone_may_turn_off_or_stop(served):
    served.client("operator").arm()
    holder, other = served.client("script", who="holder"), served.client("script", who="other")
    with holder.lease():
        bring_up(holder)
        with pytest.raises(StateError, match="leased by holder"):
            other.lease().acquire()
        with pytest.raises(StateError, match="leased by holder"):
            other.set_voltage("VLOGIC", 4.0)
        with pytest.raises(StateError, match="leased by holder"):
            other.set_relay("K8", True)
        other.output_off("VLOGIC")  # turning off is never refused for the lease
        assert _vlogic(served) < OFF_VOLTS
        bring_up(holder)
        other.estop()
        with pytest.raises(FaultLatched):
            holder.output_on("VLOGIC")
    assert_bench_safe(served.truth())


def test_heartbeats_keep_the_lease_and_an_orderly_release_keeps_the_bench_armed(served):
    served.client("operator").arm()
    script = served.client("script")
    with script.lease():
        bring_up(script)
        time.sleep(LEASE_TIMEOUT * 1.8)
        status = script.status()
        assert status["state"] == "live"
        assert status["lease"]["who"] == script._headers["X-Interlock-User"]
        assert status["lease"]["watched"]
        script.output_off("VLOGIC")
        script.set_relay("K1", False)  # output off leaves the power relay closed
    status = script.status()
    assert (status["state"], status["fault"], status["lease"]) == ("armed", None, None)
    assert_bench_safe(served.truth())


def test_releasing_the_lease_with_a_net_live_trips(served):
    served.client("operator").arm()
    script = served.client("script")
    with script.lease():
        bring_up(script)
    status = script.status()
    assert status["state"] == "fault"
    assert "released with VLOGIC still live" in status["fault"]
    assert_bench_safe(served.truth())


# A lease short enough that a watch stream slower than it, yet quicker than the client's
# read timeout on it (1 s at least), can be told apart from a dead one.
SHORT_LEASE = 0.5
SLOW_LINES = 0.8


@pytest.fixture
def slow_watch_stream(monkeypatch, serve_bench):
    """A service whose watch stream says a line every SLOW_LINES s, slower than its lease."""

    async def slow(service, lease):
        try:
            while service.leases.holder() is lease and not service.stopping.is_set():
                yield service_app._line({"event": "lease", "expires_in": lease.timeout})
                await asyncio.sleep(SLOW_LINES)
        finally:
            service.leases.watch_closed(lease)

    monkeypatch.setattr(service_app, "_watch_lines", slow)
    return serve_bench(lease_timeout=SHORT_LEASE)


def test_heartbeats_keep_their_own_schedule_whatever_the_watch_stream_does(slow_watch_stream):
    # They used to go out only when a line of the watch stream came in: a stream held up
    # (a busy event loop) lost the lease of a holder that was alive.
    served = slow_watch_stream
    served.client("operator").arm()
    script = served.client("script")
    with script.lease():
        bring_up(script)
        time.sleep(SHORT_LEASE * 5)
        assert script.lease_lost is None
        status = script.status()
        assert (status["state"], status["fault"]) == ("live", None)
        assert status["lease"]["watched"]
        script.output_off("VLOGIC")
        script.set_relay("K1", False)
    assert served.controller.state == "armed"


def test_the_async_lease_keeps_its_heartbeats_whatever_the_watch_stream_does(slow_watch_stream):
    served = slow_watch_stream

    async def scenario() -> dict:
        async with (
            interlock.connect_async(served.bench_path, role="script") as script,
            script.lease(),
        ):
            await asyncio.sleep(SHORT_LEASE * 5)
            assert script.lease_lost is None
            return await script.status()

    status = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert status["lease"] is not None and status["fault"] is None
    assert served.service.leases.holder() is None  # released on leaving the block
