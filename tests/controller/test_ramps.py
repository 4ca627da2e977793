"""Ramps and the operation lock: other requests are served between a ramp's steps, and a
ramp whose net another request changed stops there, never jumps.

A ramp is held between two steps by a wait that parks (an event, not a stopwatch),
so what is asserted is the order of things, not how fast they happen.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

import pytest

from interlock.controller import actuation as actuation_module
from interlock.errors import FaultLatched, LimitViolation
from interlock.journal import JournalReader
from interlock.limits import evaluate

from .support import assert_safety_invariants, edited_bench

# Long enough for anything that is not stuck behind a lock; only reached when it is.
JOIN_S = 10.0


@dataclass
class Call:
    """A controller call in a thread of its own: its outcome once it ends."""

    action: object
    args: tuple
    start: bool = True
    error: BaseException | None = None
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        if self.start:
            self.thread.start()

    def _run(self) -> None:
        try:
            self.action(*self.args)
        except BaseException as error:  # handed to the test
            self.error = error

    def finished(self, timeout: float = JOIN_S) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()


class ParkedRamp:
    """Parks the ramp of one thread in its ``at``-th wait (every step waits first, if
    only for nothing: the second wait is before the second step), until released."""

    def __init__(self, controller, at: int = 2) -> None:
        self.wait, self.at = controller._wait, at
        self.parked, self.released = threading.Event(), threading.Event()
        self.owner: threading.Thread | None = None
        self.calls = 0

    def __call__(self, seconds, *args, **kwargs):
        if threading.current_thread() is self.owner:
            self.calls += 1
            if self.calls == self.at:
                self.parked.set()
                assert self.released.wait(JOIN_S), "never released"
        return self.wait(seconds, *args, **kwargs)

    def start(self, action, *args) -> Call:
        call = Call(action, args, start=False)
        self.owner = call.thread
        call.thread.start()
        assert self.parked.wait(JOIN_S), "the ramp never reached its wait"
        return call


def bus_setpoints(rig) -> list[float]:
    """Every setpoint VBUS's supply channel received, in order."""
    lines = [c["line"] for c in rig.truth()["instruments"]["psu"]["commands"]]
    return [
        float(line.split()[1].split(",")[0])
        for line in lines
        if line.startswith("VOLT ") and "(@2)" in line
    ]


def refusals(rig) -> list[dict]:
    rig.journal.flush()
    with JournalReader(rig.journal.path) as reader:
        return [
            e.payload for e in reader.entries() if e.kind == "verdict" and not e.payload["allowed"]
        ]


def assert_no_jump(rig) -> None:
    steps = bus_setpoints(rig)
    max_step = rig.limits.nets["VBUS"].max_step
    jumps = [(a, b) for a, b in itertools.pairwise(steps) if abs(b - a) > max_step]
    assert not jumps, f"VBUS jumped: {jumps} in {steps}"


@pytest.fixture
def bus_at_12(rig):
    rig.power_up_logic()
    rig.power_up_bus(12.0)
    return rig


def test_a_measurement_is_answered_while_a_ramp_waits_between_steps(bus_at_12, monkeypatch):
    rig, ctl = bus_at_12, bus_at_12.controller
    park = ParkedRamp(ctl)
    monkeypatch.setattr(ctl, "_wait", park)
    ramp = park.start(ctl.set_voltage, "VBUS", 24.0)
    measure = Call(ctl.measure, ("VBUS",))
    off = Call(ctl.output_off, ("MOTOR",))  # an actuating request, from another client
    assert measure.finished() and measure.error is None, "the measurement waited for the ramp"
    assert off.finished() and off.error is None
    assert ramp.thread.is_alive()  # still parked: the measurement came between its steps
    park.released.set()
    assert ramp.finished() and ramp.error is None
    assert bus_setpoints(rig)[-3:] == pytest.approx([16.0, 20.0, 24.0])
    assert_safety_invariants(rig)


def test_output_off_from_another_client_stops_a_ramp_there(bus_at_12, monkeypatch):
    rig, ctl = bus_at_12, bus_at_12.controller
    park = ParkedRamp(ctl)
    monkeypatch.setattr(ctl, "_wait", park)
    ramp = park.start(ctl.set_voltage, "VBUS", 24.0)
    sent = bus_setpoints(rig)
    off = Call(ctl.output_off, ("VBUS",))
    assert off.finished() and off.error is None, "output off waited for the ramp"
    park.released.set()
    assert ramp.finished()
    assert isinstance(ramp.error, LimitViolation) and ramp.error.rule == "ramp.interrupted"
    assert "VBUS was changed by another request during the ramp" in ramp.error.reason
    assert "ramp step 2 of 3" in ramp.error.reason
    assert bus_setpoints(rig) == sent  # not one more step after the output went off
    assert refusals(rig)[-1]["rule"] == "ramp.interrupted"  # on the record
    assert ctl.fault_cause is None and not ctl.commanded.net("VBUS").output
    assert_safety_invariants(rig)


def test_an_emergency_stop_between_steps_ends_the_ramp(bus_at_12, monkeypatch):
    rig, ctl = bus_at_12, bus_at_12.controller
    park = ParkedRamp(ctl)
    monkeypatch.setattr(ctl, "_wait", park)
    ramp = park.start(ctl.set_voltage, "VBUS", 24.0)
    sent = bus_setpoints(rig)
    stop = Call(ctl.emergency_stop, ("tester",))
    assert stop.finished() and stop.error is None
    park.released.set()
    assert ramp.finished() and isinstance(ramp.error, FaultLatched)
    assert bus_setpoints(rig) == sent
    assert_safety_invariants(rig)


def two_ramps_on_the_bus(rig, monkeypatch) -> tuple[Call, Call]:
    """Ramp A (12 -> 24 V) parked after its first step; ramp B (to 8 V) runs meanwhile."""
    ctl = rig.controller
    park = ParkedRamp(ctl)
    monkeypatch.setattr(ctl, "_wait", park)
    first = park.start(ctl.set_voltage, "VBUS", 24.0)
    second = Call(ctl.set_voltage, ("VBUS", 8.0))
    assert second.finished()
    park.released.set()
    assert first.finished()
    return first, second


def test_two_ramps_on_one_net_never_interleave_into_an_unchecked_step(bus_at_12, monkeypatch):
    rig = bus_at_12
    first, second = two_ramps_on_the_bus(rig, monkeypatch)
    assert second.error is None  # decided from where A had left the net: 16 -> 12 -> 8 V
    assert isinstance(first.error, LimitViolation) and first.error.rule == "ramp.interrupted"
    assert bus_setpoints(rig)[-3:] == pytest.approx([16.0, 12.0, 8.0])
    assert rig.controller.commanded.net("VBUS").voltage == 8.0
    assert_no_jump(rig)
    assert_safety_invariants(rig)


def forgets_where_it_left(decided_under, limits, left, state, request, now):
    """A controller that decides a ramp's next step against the state now, without
    noticing that its net was moved by another request."""
    return evaluate(limits, state, request, now)


def test_without_the_interruption_the_engine_still_refuses_the_jump(bus_at_12, monkeypatch):
    """Defence in depth: the engine's step and slew checks against the actual commanded
    state catch a ramp going on from a state it did not plan from."""
    monkeypatch.setattr(actuation_module, "continue_ramp", forgets_where_it_left)
    rig = bus_at_12
    first, second = two_ramps_on_the_bus(rig, monkeypatch)
    assert second.error is None
    assert isinstance(first.error, LimitViolation)
    assert first.error.rule in ("nets.VBUS.max_step", "nets.VBUS.max_slew")  # 8 -> 20 V
    assert_no_jump(rig)
    assert_safety_invariants(rig)


def test_a_change_to_its_net_ends_a_ramp_waiting_for_its_next_step(
    rig_factory, tmp_path, monkeypatch
):
    """At 0.5 V/s a 4 V step waits 8 s; output off ends that wait at once. (The slowest
    slew a profile loads with: 25 V in at most a minute of waiting.)"""
    bench = edited_bench(
        tmp_path, {"profiles/mdb24.toml": [('max_slew = "40 V/s"', 'max_slew = "0.5 V/s"')]}
    )
    rig = rig_factory(bench=bench)
    ctl = rig.controller
    rig.power_up_logic()
    rig.power_up_bus(4.0)
    waiting, wait = threading.Event(), ctl._wait

    def entered(seconds, *args, **kwargs):
        if seconds > 1.0:
            waiting.set()
        return wait(seconds, *args, **kwargs)

    monkeypatch.setattr(ctl, "_wait", entered)
    ramp = Call(ctl.set_voltage, ("VBUS", 12.0))
    assert waiting.wait(JOIN_S)
    ctl.output_off("VBUS")
    assert ramp.finished(JOIN_S), "the ramp slept through the change to its net"
    assert isinstance(ramp.error, LimitViolation) and ramp.error.rule == "ramp.interrupted"
    assert bus_setpoints(rig)[-1] == 4.0  # not a step went out
    assert_safety_invariants(rig)
