"""Smoke test of the benchmarks: the runner's quick mode works end to end.

Benchmarks are scripts, not timed tests: nothing here checks a figure. It
runs ``python -m benchmarks --quick`` on the benchmarks that need neither a
service nor a simulator process (the rest take tens of seconds even in
quick mode), and checks what the others build on: the generated benches
load, and the ground-truth reading of the time-to-safe benchmark.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.common import BOARD_RELAYS, RELAY_NETS, load_generated, make_bench, percentile
from benchmarks.time_to_safe import _all_off_at
from interlock.config import load_bench

ROOT = Path(__file__).resolve().parents[2]


def test_quick_runner_prints_its_tables():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick",
         "--only", "journal_throughput", "--only", "firmware_watchdog"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "### Durable journal entries per second" in result.stdout
    assert "### Relay board firmware over the pty" in result.stdout
    assert "load average" in result.stdout


def test_generated_benches_load(tmp_path):
    for nets in (1, RELAY_NETS, 32):
        bench = make_bench(tmp_path / str(nets), nets)
        configuration = load_generated(bench.sim_file)
        assert sorted(configuration.limits.nets) == bench.nets
        assert sorted(configuration.bench.simulation.loads) == bench.nets
        wiring = configuration.bench.wiring
        relays = configuration.bench.relays
        for net in bench.nets[:RELAY_NETS]:
            # The nets that go live the ordinary way fit on the board.
            assert relays[wiring[net].power_relay].channel <= BOARD_RELAYS
            assert relays[wiring[net].sense_relay].channel <= BOARD_RELAYS
        # The bench file alone wires the nets that fit the board.
        assert sorted(load_bench(bench.sim_file).wiring) == bench.nets[:RELAY_NETS]


def test_all_off_is_the_later_supply():
    def line(at, text):
        return {"monotonic": at, "line": text}

    truth = {
        "instruments": {
            "psu1": {"commands": [line(1.0, "OUTP OFF,(@1)"), line(5.0, "OUTP OFF,(@3,2,1)")]},
            "psu2": {"commands": [line(5.5, "MEAS:VOLT? (@1)"), line(6.0, "OUTP OFF,(@1)")]},
        }
    }
    assert _all_off_at(truth, ["psu1", "psu2"], 2.0) == 6.0
    assert _all_off_at(truth, ["psu1", "psu2"], 7.0) is None


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 99) == 99
    assert percentile(values, 50) == 50
    assert percentile([3.0], 99) == 3.0


def test_relay_floor_makes_the_raw_exchanges_and_one_commit(tmp_path):
    """Variant r of the overhead benchmark is c+ through a process: nothing less, nothing more."""
    import contextlib
    import sqlite3

    from benchmarks.common import SimProcess
    from benchmarks.overhead import relay_process

    with SimProcess(make_bench(tmp_path / "sim", 1)) as sim:
        with relay_process(sim.resources["psu1"], tmp_path / "relay") as relay:
            relay.change(3.3)
            relay.change(3.0)
        lines = [c["line"] for c in sim.truth()["instruments"]["psu1"]["commands"]]
    assert lines == [
        "VOLT 3.3,(@1);:VOLT? (@1)",
        "MEAS:VOLT? (@1);:MEAS:CURR? (@1)",
        "VOLT 3,(@1);:VOLT? (@1)",
        "MEAS:VOLT? (@1);:MEAS:CURR? (@1)",
    ]
    with contextlib.closing(sqlite3.connect(tmp_path / "relay" / "relay.sqlite")) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT count(*) FROM entries").fetchone() == (2,)


def test_the_time_to_safe_bench_orders_its_power_off_or_leaves_it_to_one_step(tmp_path):
    from interlock.config import power_off_channels
    from interlock.controller.safe_state import power_off_steps

    def steps(power_off: str) -> list[list[str]]:
        bench = make_bench(tmp_path / power_off, RELAY_NETS, power_off=power_off)
        configuration = load_generated(bench.sim_file)
        found = power_off_steps(
            power_off_channels(configuration.bench, configuration.limits.power_off),
            dict.fromkeys(configuration.bench.instruments),
            configuration.profile.power_off_steps,
        )
        return [sorted(target.name for target in step) for step in found]

    assert steps("reversed") == [["psu2"], ["psu1"]]
    assert steps("together") == [["psu1", "psu2"]]


def test_the_record_floor_writes_the_rows_the_interlock_writes(tmp_path):
    """Variants e and f of the overhead benchmark record a change as the interlock does:
    the same kinds, in the same order, with the same payload keys, on a chain that
    verifies; f checks and witnesses it as the design asks."""
    import contextlib
    import json
    import sqlite3

    from benchmarks.common import SimProcess, served_bench
    from benchmarks.overhead import NET, DesignFloor, RawVisa, RecordFloor
    from interlock.config import load_configuration
    from interlock.controller import Controller
    from interlock.journal import Journal
    from interlock.journal.verify import verify_connection
    from interlock.journal.witness import read_witness

    def change_rows(path):
        """Kinds and payload keys of the rows from the request to set 3.0 V on."""
        with contextlib.closing(sqlite3.connect(path)) as db:
            rows = [(k, json.loads(p)) for k, p in db.execute("SELECT kind, payload FROM entries")]
        start = next(
            i for i, (kind, p) in enumerate(rows) if kind == "request" and p.get("value") == 3.0
        )
        return [(kind, sorted(payload)) for kind, payload in rows[start : start + 6]]

    with SimProcess(make_bench(tmp_path / "sim", 1)) as sim:
        configuration = load_configuration(
            served_bench(sim.bench, sim.resources, tmp_path / "local")
        )
        journal_path = tmp_path / "local" / "journal.sqlite"
        with Journal(journal_path, bench=configuration.bench.name) as journal:
            controller = Controller(configuration, journal)
            controller.connect()
            try:
                controller.arm("test")
                for volts in (3.3, 3.0):
                    controller.set_voltage(NET, volts)
                    controller.measure(NET)
            finally:
                controller.close()
        raw = RawVisa(sim.resources["psu1"])
        floor = RecordFloor(raw, tmp_path / "floor.sqlite")
        designed = DesignFloor(raw, tmp_path / "design.sqlite", configuration)
        try:
            for volts in (3.3, 3.0, 3.3):
                floor.change(volts)
                designed.change(volts)
            for name in ("floor.sqlite", "design.sqlite"):
                with contextlib.closing(sqlite3.connect(tmp_path / name)) as db:
                    # Six rows a change; the last three wait for the next commit. Raises
                    # at a break.
                    assert verify_connection(db).entries == 15
            # f does what the design asks: the witness holds the head, the limit engine
            # refuses before anything is sent, a journal file gone stops the commit.
            assert read_witness(tmp_path / "design.sqlite").record.head.seq == 15
            sent = sim.truth()["supplies"]["psu1"]["1"]["setpoint"]
            with pytest.raises(RuntimeError, match="above the maximum"):
                designed.change(1000.0)
            assert sim.truth()["supplies"]["psu1"]["1"]["setpoint"] == sent
            (tmp_path / "design.sqlite-wal").rename(tmp_path / "moved-wal")
            with pytest.raises(RuntimeError, match="went"):
                designed.change(3.0)
        finally:
            designed.close()
            floor.close()
            raw.close()
    interlock = change_rows(journal_path)
    assert [kind for kind, _ in interlock] == [
        "request", "verdict", "command", "readback", "readback", "measurement",
    ]  # fmt: skip
    assert change_rows(tmp_path / "floor.sqlite") == interlock
    assert change_rows(tmp_path / "design.sqlite") == interlock
