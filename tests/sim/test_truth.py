"""Ground truth: supply channels, relay coils and contacts, the board firmware, the history."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlock.config import load_bench
from interlock.errors import ConfigError, SimulatorError
from interlock.sim.dut import Operating
from interlock.sim.truth import MAX_SAMPLES, SAMPLE_PERIOD, GroundTruth, History, Stamp
from tests.sim.conftest import write_bench


def wait_for(condition, timeout: float = 10.0, what: str = "") -> None:
    """Poll until ``condition()``: the deadline is generous, the outcome is what counts."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(0.01)


def kinds(changes, kind):
    return [c for c in changes if c.kind == kind]


def test_supply_channels_and_relays_are_in_the_truth(sim_bench, visa, relay_link):
    psu = visa(sim_bench.resources["psu"])
    relays = relay_link(sim_bench.resources["relays"])
    relays.set(2)  # K2: PSU CH2 -> VBUS
    psu.write("VOLT 12,(@2);CURR 0.4,(@2);:VOLT:PROT 13,(@2);:CURR:PROT:STAT ON,(@2)")
    psu.query("OUTP ON,(@2);*OPC?")
    truth = sim_bench.truth()
    assert truth["supplies"]["psu"]["2"] == {
        "net": "VBUS",
        "output": True,
        "setpoint": 12.0,
        "current_limit": 0.4,
        "ovp": 13.0,
        "ovp_enabled": True,
        "ocp_enabled": True,
        "ovp_tripped": False,
        "ocp_tripped": False,
    }
    assert truth["supplies"]["psu"]["1"]["output"] is False
    assert truth["relay_states"]["K2"] == {
        "board": "relays",
        "channel": 2,
        "coil": True,
        "contact": True,
    }
    assert truth["relay_states"]["K1"]["coil"] is False
    board = truth["boards"]["relays"]
    assert (board["serial"], board["trip"], board["watchdog_ms"]) == ("RB8-000117", None, 5000)
    assert board["host_last_heard"]["monotonic"] <= truth["clock"]["monotonic"]
    # The existing keys stay as they were.
    assert truth["contacts"] == ["K2"]
    assert truth["nets"]["VBUS"]["max_voltage"] == pytest.approx(12.0)


def test_a_welded_contact_shows_coil_and_contact_apart(sim_bench, relay_link):
    relays = relay_link(sim_bench.resources["relays"])
    relays.set(3)
    sim_bench.inject("weld:K3")
    relays.set()
    wait_for(lambda: not sim_bench.truth()["relay_states"]["K3"]["coil"], what="coil released")
    state = sim_bench.truth()["relay_states"]["K3"]
    assert (state["coil"], state["contact"]) == (False, True)
    changes = sim_bench.history("VBUS").changes
    coil = [(c.data["relay"], c.data["closed"]) for c in kinds(changes, "relay-coil")]
    assert coil == [("K3", True), ("K3", False)]
    # The contact closed with the coil and stayed: one contact change only.
    contact = [(c.data["relay"], c.data["closed"]) for c in kinds(changes, "relay-contact")]
    assert contact == [("K3", True)]


def test_history_follows_a_net_through_a_short(sim_bench, visa, relay_link):
    psu = visa(sim_bench.resources["psu"])
    relays = relay_link(sim_bench.resources["relays"])
    relays.set(2)
    psu.write("VOLT 12,(@2);CURR 0.3,(@2);:CURR:PROT:STAT ON,(@2)")
    psu.query("OUTP ON,(@2);*OPC?")
    sim_bench.inject("short:VBUS")
    sim_bench.clear("short:VBUS")
    history = sim_bench.history("VBUS")
    assert isinstance(history, History) and history.net == "VBUS" and history.seconds == 60.0
    volts = [s.voltage for s in history.samples]
    # On every change: 0 V, 12 V live, the trip (at most the current limit's worth), 0 V.
    assert volts[0] == 0.0 and 12.0 in volts and volts[-1] == 0.0
    assert max(s.current for s in history.samples) <= 0.3 + 1e-9
    order = [
        c.kind
        for c in history.changes
        if c.kind in ("fault-injected", "protection-trip", "fault-cleared")
    ]
    assert order == ["fault-injected", "protection-trip", "fault-cleared"]
    trip = kinds(history.changes, "protection-trip")[0]
    assert trip.data == {"instrument": "psu", "channel": 2, "reason": "OCP"}
    fields = [
        (c.data["field"], c.data["new"])
        for c in kinds(history.changes, "supply")
        if c.data["channel"] == 2
    ]
    assert ("output", True) in fields and ("ocp_tripped", True) in fields
    assert fields.index(("output", True)) < fields.index(("ocp_tripped", True))
    assert ("output", False) in fields  # the protection turned it off
    stamps = [s.monotonic for s in history.samples]
    assert stamps == sorted(stamps) and stamps[-1] <= history.clock.monotonic
    # The window asked for, never more than the ring.
    assert sim_bench.history("VBUS", seconds=1e308).seconds == 60.0
    short = sim_bench.history("VBUS", seconds=0.5)
    assert all(s.monotonic >= short.clock.monotonic - 0.5 for s in short.samples)


def test_a_steady_net_is_sampled_periodically(sim_bench):
    first = len(sim_bench.history("MOTOR").samples)
    wait_for(
        lambda: len(sim_bench.history("MOTOR").samples) >= first + 3,
        timeout=30 * SAMPLE_PERIOD + 10,
        what="three periodic samples",
    )
    samples = sim_bench.history("MOTOR").samples
    assert {(s.voltage, s.current) for s in samples} == {(0.0, 0.0)}


@pytest.mark.parametrize("seconds", [0, -1.0, math.nan, math.inf, -0.0, "1", True, None])
def test_a_history_window_must_be_a_positive_number(sim_bench, seconds):
    if seconds is None:
        assert sim_bench.history("VBUS", seconds).seconds == 60.0
        return
    with pytest.raises(SimulatorError, match="positive number of seconds"):
        sim_bench.history("VBUS", seconds)


def test_an_unknown_net_has_no_history(sim_bench):
    with pytest.raises(SimulatorError, match='no net "VBUS2" on this bench'):
        sim_bench.history("VBUS2")


def test_the_boards_watchdog_trip_and_when_the_relays_opened(sim_bench, relay_link):
    relays = relay_link(sim_bench.resources["relays"])
    relays.command("WD 200")
    relays.set(1, 2)
    heard = sim_bench.truth()["boards"]["relays"]["host_last_heard"]["monotonic"]
    # The host falls silent: the firmware opens every relay 200 ms after the last frame.
    wait_for(lambda: sim_bench.truth()["boards"]["relays"]["trip"] == "WDT", what="WDT trip")
    truth = sim_bench.truth()
    assert truth["contacts"] == []
    assert truth["boards"]["relays"]["host_last_heard"]["monotonic"] == heard
    changes = sim_bench.history("VLOGIC").changes
    trip = [c for c in kinds(changes, "board") if c.data["event"] == "TRIP"]
    assert [(c.data["board"], c.data["cause"]) for c in trip] == [("relays", "WDT")]
    opened = [c for c in kinds(changes, "relay-contact") if not c.data["closed"]]
    assert {c.data["relay"] for c in opened} == {"K1", "K2"}
    # Not before the watchdog's period of silence (the firmware counts whole ms).
    assert all(c.monotonic - heard >= 0.2 - 0.002 for c in [*trip, *opened])
    # The firmware drives its outputs before it says anything about them.
    assert all(c.monotonic <= trip[0].monotonic for c in opened)


# --- the ring itself, on a clock the test turns ---------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_ring_keeps_its_window_and_forgets_the_rest():
    clock = Clock()
    truth = GroundTruth(["A"], monotonic=clock, wall=clock, history=10.0)
    for step in range(30):
        truth.observe({"A": Operating(float(step), 0.0)})
        truth.change("supply", f"step {step}")
        clock.now += 1.0
    history = truth.history("A")
    # 30 s of one sample and one change a second; the ring holds the last 10 s.
    assert [s.voltage for s in history.samples] == [float(v) for v in range(20, 30)]
    assert [c.detail for c in history.changes] == [f"step {v}" for v in range(20, 30)]
    assert [s.voltage for s in truth.history("A", seconds=3.0).samples] == [27.0, 28.0, 29.0]
    # Nothing new for longer than the window: nothing left to show.
    clock.now += 100.0
    assert truth.history("A").samples == [] and truth.history("A").changes == []
    # The maxima are not history: they stay.
    assert truth.net("A")["max_voltage"] == 29.0


def test_only_changes_are_sampled_on_observe_and_everything_on_sample():
    clock = Clock()
    truth = GroundTruth(["A"], monotonic=clock, wall=clock)
    for _ in range(5):
        truth.observe({"A": Operating(5.0, 0.1)})
        clock.now += 0.01
    assert len(truth.history("A").samples) == 1
    for _ in range(5):
        truth.sample({"A": Operating(5.0, 0.1)})
        clock.now += 0.01
    assert len(truth.history("A").samples) == 6


def test_supply_settings_changes_are_field_by_field():
    truth = GroundTruth(["A"])
    truth.supply_settings("psu", 1, {"output": False, "setpoint": 0.0})  # the baseline
    truth.supply_settings("psu", 1, {"output": True, "setpoint": 0.0})
    truth.supply_settings("psu", 1, {"output": True, "setpoint": 5.0})
    truth.supply_settings("psu", 1, {"output": True, "setpoint": 5.0})
    assert [c.detail for c in truth.history("A").changes] == [
        "psu CH1 output off -> on",
        "psu CH1 setpoint 0 V -> 5 V",
    ]
    assert truth.snapshot()["supplies"] == {"psu": {"1": {"output": True, "setpoint": 5.0}}}


@pytest.mark.parametrize("history", [0, -1.0, math.nan, math.inf, "60 s"])
def test_a_ring_needs_a_positive_finite_window(history):
    with pytest.raises(SimulatorError, match="positive number of seconds"):
        GroundTruth(["A"], history=history)


floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 1e308, -1e308, 5e-324, -5e-324, math.nan]
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.floats(0.0, 1e6) | st.sampled_from([0.0, 1e-9, 5e-324])),
        st.tuples(st.just("observe"), st.tuples(floats, floats)),
        st.tuples(st.just("sample"), st.tuples(floats, floats)),
        st.tuples(st.just("change"), st.text(max_size=5)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(window=st.floats(1.0, 3600.0), ops=operations)
def test_the_ring_never_holds_more_than_its_window(window, ops):
    clock = Clock()
    truth = GroundTruth(["A"], monotonic=clock, wall=clock, history=window)
    last_append = None
    for op, argument in ops:
        if op == "advance":
            clock.now += argument
        elif op == "change":
            truth.change("event", argument)
            last_append = clock.now
        else:
            getattr(truth, op)({"A": Operating(*argument)})
            last_append = clock.now
    history = truth.history("A")
    assert history.seconds == window
    assert len(history.samples) <= MAX_SAMPLES
    for entry in [*history.samples, *history.changes]:
        assert clock.now - window <= entry.monotonic <= clock.now
    if last_append is not None and clock.now - last_append <= window:
        assert history.samples or history.changes
    stamps = [s.monotonic for s in history.samples]
    assert stamps == sorted(stamps)
    snapshot = truth.snapshot()
    assert snapshot["history"]["seconds"] == window
    # What the ring holds (its memory), not only what it shows: nothing older than the window
    # behind the last thing recorded.
    oldest = snapshot["history"]["oldest"]
    assert oldest is None or oldest >= last_append - window


def test_the_ring_holds_at_most_its_count(monkeypatch):
    monkeypatch.setattr("interlock.sim.truth.MAX_SAMPLES", 5)
    monkeypatch.setattr("interlock.sim.truth.MAX_CHANGES", 3)
    clock = Clock()
    truth = GroundTruth(["A"], monotonic=clock, wall=clock)
    for step in range(20):  # all at one instant: the window alone would keep them all
        truth.observe({"A": Operating(float(step), 0.0)})
        truth.change("supply", str(step))
    history = truth.history("A")
    assert [s.voltage for s in history.samples] == [15.0, 16.0, 17.0, 18.0, 19.0]
    assert [c.detail for c in history.changes] == ["17", "18", "19"]


def test_history_round_trips_through_json():
    clock = Clock()
    truth = GroundTruth(["A"], monotonic=clock, wall=clock)
    truth.observe({"A": Operating(1.5, 0.25)})
    truth.event("fault-injected", "short:A", fault="short:A")
    history = truth.history("A")
    assert History.from_dict(history.as_dict()) == history
    with pytest.raises(SimulatorError, match="does not parse"):
        History.from_dict({"net": "A"})
    assert history.clock == Stamp(clock.now, clock.now)


# --- bench.toml -----------------------------------------------------------------------


def bench_with_history(directory: Path, value: str | None) -> Path:
    """A bench copy whose [simulation] history is ``value`` (None: the key left out)."""
    path = write_bench(directory)
    line = "" if value is None else f"history = {value}"
    text, count = re.subn(r"(?m)^history = .*$", line, path.read_text())
    assert count == 1
    path.write_text(text)
    return path


def test_the_history_window_comes_from_bench_toml(tmp_path, sim_bench_factory):
    path = bench_with_history(tmp_path, '"5 s"')
    assert load_bench(path).simulation.history == 5.0
    assert sim_bench_factory(path).history("VBUS").seconds == 5.0
    assert load_bench(bench_with_history(tmp_path, None)).simulation.history == 60.0  # default


@pytest.mark.parametrize(
    "value, problem",
    [
        ('"0.5 s"', 'expected a duration from 1 s to 1 h, got "0.5 s"'),
        ('"2 h"', 'expected a duration from 1 s to 1 h, got "2 h"'),
        ("60", "bare number"),
        ('"60 V"', "expected a duration"),
        ('"nan s"', "expected"),
    ],
)
def test_a_bad_history_window_names_file_and_key(tmp_path, value, problem):
    path = bench_with_history(tmp_path, value)
    with pytest.raises(ConfigError) as error:
        load_bench(path)
    assert "bench.toml: simulation.history: " in str(error.value)
    assert problem in str(error.value)
