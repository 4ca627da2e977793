"""Overhead of one checked setpoint change, against raw pyvisa-py and PyMeasure.

One *checked setpoint change* is: set a net's voltage (limit check, journal,
``VOLT v,(@1);:VOLT? (@1)``, readback compared), then measure it
(``MEAS:VOLT? (@1);:MEAS:CURR? (@1)``). The net is armed with its output off,
and the value alternates between 3.0 V and 3.3 V. Variants, measured side by
side in interleaved blocks, each against its own simulated E36312A (a
process of its own, 1 ms response latency, loopback TCP):

- **a, service**: the Python client (``interlock.connect``) of ``interlock
  serve`` running in another process, over the service's command channel
  (one JSON line each way on a Unix socket);
- **a1**: the same change asked with its measurement in one round trip
  (``client.set_voltage(net, volts, measure=True)``);
- **a-http**, for reference: the same change through the service's HTTP API
  (``PUT /nets/N01/voltage``, ``GET /nets/N01/measurement``, httpx);
- **a0**, for reference: two ``status`` calls over the command channel, no
  instrument touched: what the two round trips of a cost;
- **b, in-process**: a :class:`~interlock.controller.Controller` in this
  process (no HTTP): the interlock's own cost;
- **c, raw pyvisa**: the same two exchanges with pyvisa-py (TCP_NODELAY), the
  readback compared;
- **c+, raw + 1 commit**: c plus one durable SQLite commit per change (WAL,
  ``synchronous=FULL``, a file in the same directory as the journals);
- **e, the record's floor**: c plus the very rows the interlock records for a
  change, written as it writes them and with nothing else: the same six
  entries (request, verdict and command intent, the setpoint's readback,
  the measurement's readback and the measurement), encoded and hash-chained
  by the journal's own functions into a database made by the journal's own
  ``connect`` (same schema, indexes, head row, WAL, ``synchronous=FULL``), in
  one durable commit before the set line goes out, the entries after it
  staged for the next. No limit check, no state, no staging machinery, no
  witness file. ``b - e`` is the interlock's own work beyond its record;
- **f, the design's floor**: e plus the rest of what the design asks of each
  change, each done once and flat with the interlock's own functions: the
  limit engine's plan for the request, the check that the journal's files
  are still the ones held, the witness moved after the commit, the engine's
  readback rule. ``f - c+`` is the least such an interlock costs in Python,
  ``b - f`` what the interlock's structure (controller, drivers, gate,
  staging) adds;
- **r, minimal relay**: the same two calls through a small process of its
  own (:mod:`benchmarks.relay`: one JSON line each way on a Unix socket, one
  durable commit, the same two exchanges, nothing else): c+ with a process
  boundary, the least any service between script and instruments costs;
- **d, PyMeasure**: an ``Instrument`` whose ``voltage`` property has a
  ``strict_range`` validator: set it, read it back, read a measurement
  property (pyvisa-py under it, TCP_NODELAY set the same way).

The bar for a and b: a median at most 0.5 ms above c+ and at most 1.25
times c+; and, for the interlock's own work (the performance issue's bar 3),
``a - r`` at most 0.25 ms and ``b - c+`` at most 0.2 ms. The reference is c+
for both figures: the interlock journals
before it acts, so one durable commit per change is the least any such
tool must add (the table also shows the time added over c). The figure
``a - r`` is the interlock's own work through the service: its checks and
journal, less the process boundary that r pays as well. Run::

    .venv/bin/python -m benchmarks.overhead [--rounds 10] [--block 50] [--dir DIR]
        [--profile] [--breakdown]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import pstats
import select
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pyvisa

from benchmarks.common import (
    PYTHON,
    CommitCounter,
    SimProcess,
    disable_nagle,
    load_average,
    make_bench,
    median,
    percentile,
    print_table,
    served_bench,
    service_process,
    stop_process,
)
from interlock.journal import Journal
from interlock.service.wire import result_of

NET = "N01"
VALUES = (3.0, 3.3)
TOLERANCE = 0.01
BAR_ADDED_MS = 0.5
BAR_RATIO = 1.25
BAR_OWN_SERVICE_MS = 0.25  # a - r
BAR_OWN_IN_PROCESS_MS = 0.2  # b - c+
RELAY_START_S = 30.0
SET = "VOLT {v:.6g},(@1);:VOLT? (@1)"
MEASURE = "MEAS:VOLT? (@1);:MEAS:CURR? (@1)"


def _check(volts: float, readback: float) -> None:
    if abs(readback - volts) > TOLERANCE:
        raise RuntimeError(f"readback {readback:g} V, set {volts:g} V")


class RawVisa:
    """The two exchanges by hand, as a script without the interlock would do them."""

    def __init__(self, resource: str, commit_path: Path | None = None) -> None:
        self.rm = pyvisa.ResourceManager("@py")
        self.psu = self.rm.open_resource(
            resource, read_termination="\n", write_termination="\n", timeout=5000
        )
        if not disable_nagle(self.psu):
            raise RuntimeError("could not set TCP_NODELAY on the pyvisa-py session")
        self.db: sqlite3.Connection | None = None
        if commit_path is not None:
            self.db = sqlite3.connect(commit_path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = FULL")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY, at REAL, body TEXT)"
            )

    def change(self, volts: float) -> None:
        if self.db is not None:
            self.commit(volts)
        self.set(volts)
        self.measure()

    def commit(self, volts: float) -> None:
        """One durable commit of one small entry (c+ and the relay of r)."""
        assert self.db is not None
        body = json.dumps({"net": NET, "quantity": "voltage", "value": volts})
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("INSERT INTO entries (at, body) VALUES (?, ?)", (time.time(), body))
        self.db.execute("COMMIT")

    def set(self, volts: float) -> float:
        """Set and read back in one exchange; RuntimeError if the readback differs."""
        readback = float(self.psu.query(SET.format(v=volts)))
        _check(volts, readback)
        return readback

    def measure(self) -> tuple[float, float]:
        volts, amps = (float(x) for x in self.psu.query(MEASURE).split(";"))
        return volts, amps

    def close(self) -> None:
        self.psu.close()
        if self.db is not None:
            self.db.close()


class RecordFloor:
    """Variant e: :class:`RawVisa`'s change, recording what the interlock records.

    The rows are the interlock's for the same change (kinds, payloads, actor,
    run id), made by the journal's own encoding, hashing and time format, in a
    database made by the journal's own ``connect``. What it leaves out is the
    interlock's own work: checks, state, the staging machinery, the witness.
    """

    ACTOR = "script"

    def __init__(self, raw: RawVisa, path: Path) -> None:
        from interlock.journal.db import ENTRY_COLUMNS, connect

        self.raw = raw
        self.db = connect(path, create=True)
        self._insert = f"INSERT INTO entries ({ENTRY_COLUMNS}) VALUES ({', '.join('?' * 10)})"
        self._head = 0  # seq of the last row written (the only writer)
        self._prev = "0" * 64  # and its hash
        self._staged: list[tuple[str, str, float, str]] = []  # kind, wall, mono, payload

    def stage(self, kind: str, payload: dict[str, Any]) -> None:
        from interlock.journal.entries import canonical_payload
        from interlock.journal.store import format_wall

        wall = format_wall(datetime.now(UTC))
        self._staged.append((kind, wall, time.monotonic(), canonical_payload(payload)))

    def commit(self) -> None:
        """The staged rows, chained to the head, in one durable commit."""
        from interlock.journal.entries import entry_hash

        db = self.db
        db.execute("BEGIN IMMEDIATE")
        row = db.execute("SELECT seq, hash FROM head WHERE id = 1").fetchone()
        seq, prev = row if row is not None else (0, "0" * 64)
        rows = []
        for kind, wall, mono, payload in self._staged:
            seq += 1
            fields = (seq, wall, mono, "overhead", "run", kind, self.ACTOR, payload, prev)
            prev = entry_hash(*fields)
            rows.append((*fields, prev))
        db.executemany(self._insert, rows)
        db.execute(
            "INSERT INTO head (id, seq, hash) VALUES (1, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            (seq, prev),
        )
        db.execute("COMMIT")
        self._staged.clear()
        self._head, self._prev = seq, prev

    def change(self, volts: float) -> None:
        line = SET.format(v=volts)
        setpoint = {"net": NET, "quantity": "voltage", "value": volts}
        self.stage("request", {**setpoint, "client": "", "action": "set"})
        request = self._head + len(self._staged)
        steps = self.decide(volts)
        self.stage("verdict", {"allowed": True, "request": request, "steps": steps})
        self.stage("command", {**setpoint, "instrument": "psu1", "data": line + "\n"})
        self.commit()
        reply = self.raw.psu.query(line)
        self.read_back(volts, reply)
        self.stage("readback", {**setpoint, "instrument": "psu1", "query": line, "reply": reply})
        reply = self.raw.psu.query(MEASURE)
        voltage, current = (float(x) for x in reply.split(";"))
        self.stage(
            "readback",
            {"instrument": "psu1", "query": MEASURE, "reply": reply, "data": MEASURE + "\n"},
        )
        self.stage("measurement", {"net": NET, "voltage": voltage, "current": current})

    def decide(self, volts: float) -> int:
        """The request decided (here: nothing checked); how many steps it takes."""
        return 1

    def read_back(self, volts: float, reply: str) -> None:
        _check(volts, float(reply))

    def close(self) -> None:
        self.db.close()


class DesignFloor(RecordFloor):
    """Variant f: :class:`RecordFloor` plus the rest of what the design asks of every
    change, each done once, flat, with the interlock's own functions: the limit
    engine's plan for the request (the one the controller decides a voltage by), the
    file check before the commit (the journal's files still the ones held), the
    witness moved after it, and the engine's readback rule. No controller, drivers,
    gate, staging machinery or layers. ``f - c+`` is the least an interlock that
    does all this costs in Python; ``b - f`` is what the interlock's structure adds.
    """

    def __init__(self, raw: RawVisa, path: Path, configuration: Any) -> None:
        from interlock.journal.files import OWNER_ONLY, OnDisk, companions, file_identity
        from interlock.journal.witness import START, Witness, WitnessRecord
        from interlock.sequence import armed_state

        super().__init__(raw, path)
        self.limits = configuration.limits
        self.state = armed_state(configuration)
        self._decided = self.state  # what the last request decided, commanded once sent
        self.witness = Witness.create(path, WitnessRecord(START, START), OWNER_ONLY)
        held = [(p, file_identity(p)) for p in (path, *companions(path))]
        self.on_disk = OnDisk((*held, (self.witness.path, self.witness.identity())))

    def commit(self) -> None:
        from interlock.journal.witness import Point

        if self.on_disk.changed():
            raise RuntimeError("a file of the journal went")
        start = Point(self._head, self._prev)
        super().commit()
        self.witness.advance(start, Point(self._head, self._prev), lambda point: True)

    def decide(self, volts: float) -> int:
        """The limit engine's plan for the request, refused before anything is staged."""
        from interlock.limits import SetVoltage
        from interlock.limits.ramps import plan_voltage

        plan = plan_voltage(self.limits, self.state, SetVoltage(NET, volts), time.monotonic())
        if not plan.verdict.allowed:
            raise RuntimeError(plan.verdict.reason)
        self._decided = plan.steps[-1].decision.state
        return len(plan.steps)

    def read_back(self, volts: float, reply: str) -> None:
        """The engine's readback rule, once the decided state is the commanded one."""
        from interlock.limits.measurements import check_readback

        self.state = self._decided
        if check_readback(self.limits, NET, "voltage", volts, float(reply)) is not None:
            raise RuntimeError(f"readback {reply}, set {volts:g} V")

    def close(self) -> None:
        self.witness.close()
        super().close()


def pymeasure_supply(resource: str):  # type: ignore[no-untyped-def]
    """A small PyMeasure instrument for channel 1 of the simulated E36312A."""
    from pymeasure.instruments import Instrument
    from pymeasure.instruments.validators import strict_range

    class SimulatedE36312A(Instrument):
        voltage = Instrument.control(
            "VOLT? (@1)",
            "VOLT %g,(@1)",
            "Channel 1 voltage setpoint, V.",
            validator=strict_range,
            values=[0, 6],
        )
        measured = Instrument.measurement(
            MEASURE, "Channel 1 measured voltage and current (V, A).", separator=";"
        )

        def __init__(self, adapter: str, name: str = "Simulated E36312A", **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(
                adapter,
                name,
                includeSCPI=False,
                visa_library="@py",
                read_termination="\n",
                write_termination="\n",
                timeout=5000,
                **kwargs,
            )

    instrument = SimulatedE36312A(resource)
    if not disable_nagle(instrument.adapter.connection):
        raise RuntimeError("could not set TCP_NODELAY on PyMeasure's pyvisa-py session")
    return instrument


def _pymeasure_change(instrument) -> Callable[[float], None]:  # type: ignore[no-untyped-def]
    def change(volts: float) -> None:
        instrument.voltage = volts
        _check(volts, instrument.voltage)
        volts_read, amps = instrument.measured
        del volts_read, amps

    return change


@dataclass
class Variants:
    changes: dict[str, Callable[[float], None]]  # each variant's change function
    journal: Journal  # b's
    client: Any  # a's client
    service_sim: SimProcess  # a's simulated bench (ground truth)
    service_journal: Path  # a's service's journal


@contextlib.contextmanager
def variants(directory: Path) -> Iterator[Variants]:
    """Everything up and armed."""
    import interlock
    from interlock.config import load_configuration
    from interlock.controller import Controller
    from interlock.service.tokens import read_token

    with contextlib.ExitStack() as stack:
        sims = {}
        for key in ("service", "inproc", "raw", "relay"):
            bench = make_bench(directory / f"sim-{key}", 1)
            sims[key] = stack.enter_context(SimProcess(bench))
        served = served_bench(sims["service"].bench, sims["service"].resources, directory / "svc")
        stack.enter_context(service_process(served, directory / "service.log"))
        client = stack.enter_context(
            interlock.connect(served, role="operator", start=False, who="benchmark")
        )
        client.arm()

        def disarm() -> None:
            with contextlib.suppress(Exception):
                client.disarm()

        stack.callback(disarm)

        local = served_bench(sims["inproc"].bench, sims["inproc"].resources, directory / "local")
        configuration = load_configuration(local)
        journal = stack.enter_context(
            Journal(directory / "local" / "journal.sqlite", bench=configuration.bench.name)
        )
        controller = Controller(configuration, journal)
        controller.connect()
        stack.callback(controller.close)
        controller.arm("benchmark")

        resource = sims["raw"].resources["psu1"]
        raw = RawVisa(resource)
        stack.callback(raw.close)
        durable = RawVisa(resource, directory / "raw-commit.sqlite")
        stack.callback(durable.close)
        recording = RawVisa(resource)
        stack.callback(recording.close)
        record = RecordFloor(recording, directory / "record-floor.sqlite")
        stack.callback(record.close)
        designed = RawVisa(resource)
        stack.callback(designed.close)
        floor = DesignFloor(designed, directory / "design-floor.sqlite", configuration)
        stack.callback(floor.close)
        try:
            pm = pymeasure_supply(resource)
        except ImportError:
            print("PyMeasure is not installed (pip install -e '.[bench]'): variant d skipped")
            pm = None
        else:
            stack.callback(pm.adapter.close)
        relay = stack.enter_context(
            relay_process(sims["relay"].resources["psu1"], directory / "relay")
        )

        def through_service(volts: float) -> None:
            client.set_voltage(NET, volts)
            client.measure(NET)

        def through_service_at_once(volts: float) -> None:
            client.set_voltage(NET, volts, measure=True)

        def in_process(volts: float) -> None:
            controller.set_voltage(NET, volts)
            controller.measure(NET)

        settings = client.bench.service
        http = stack.enter_context(
            httpx.Client(
                transport=httpx.HTTPTransport(uds=str(settings.socket)),
                base_url="http://interlock",
                headers={"Authorization": f"Bearer {read_token(settings.tokens, 'script')}"},
            )
        )

        def through_http(volts: float) -> None:
            result_of(http.put(f"/nets/{NET}/voltage", json={"volts": volts}))
            result_of(http.get(f"/nets/{NET}/measurement"))

        def channel_only(volts: float) -> None:
            client.status()
            client.status()

        changes = {
            "a": through_service,
            "a1": through_service_at_once,
            "a-http": through_http,
            "a0": channel_only,
            "b": in_process,
            "c": raw.change,
            "c+": durable.change,
            "e": record.change,
            "f": floor.change,
            "r": relay.change,
        }
        if pm is not None:
            changes["d"] = _pymeasure_change(pm)
        yield Variants(changes, journal, client, sims["service"], settings.journal)


LABELS = {
    "a": "a. service (Python client, command channel)",
    "a1": "a1. service, change and measurement in one round trip",
    "a-http": "a-http. service, HTTP API",
    "a0": "a0. service, 2 x status only",
    "b": "b. in-process Controller",
    "c": "c. raw pyvisa-py",
    "c+": "c+. raw + 1 durable commit",
    "e": "e. the record's floor (c + the interlock's rows, 1 commit)",
    "f": "f. the design's floor (e + limit plan, file check, witness, readback rule)",
    "r": "r. minimal relay process (c+ through a socket)",
    "d": "d. PyMeasure strict_range",
}


@contextlib.contextmanager
def relay_process(resource: str, directory: Path) -> Iterator[Any]:
    """:mod:`benchmarks.relay` serving ``resource``, and a client connected to it."""
    from benchmarks.relay import RelayClient

    directory.mkdir()
    path = directory / "relay.sock"
    proc = subprocess.Popen(
        [PYTHON, "-m", "benchmarks.relay", str(path), resource, str(directory / "relay.sqlite")],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=Path(__file__).resolve().parents[1],  # where the benchmarks package is
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        started, _, _ = select.select([proc.stdout], [], [], RELAY_START_S)
        if not started or proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the relay process did not start within {RELAY_START_S:g} s")
        client = RelayClient(path)
        try:
            yield client
        finally:
            client.close()
    finally:
        stop_process(proc)


def measure(
    changes: dict[str, Callable[[float], None]], rounds: int, block: int, warmup: int
) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {key: [] for key in changes}
    for change in changes.values():
        for i in range(warmup):
            change(VALUES[i % 2])
    for _ in range(rounds):
        for key, change in changes.items():
            times = samples[key]
            for i in range(block):
                start = time.perf_counter()
                change(VALUES[i % 2])
                times.append(time.perf_counter() - start)
    return samples


def journal_cost(journal: Journal, change: Callable[[float], None]) -> tuple[float, float | None]:
    """Journal entries, and commits (each an fsync), per change of the in-process variant."""
    changes = 10
    change(VALUES[1])  # each change then starts and ends with the same entries staged
    first = journal.last().seq
    with CommitCounter(journal) as counter:
        for i in range(changes):
            change(VALUES[i % 2])
    entries = (journal.last().seq - first) / changes
    return entries, None if counter.commits is None else counter.commits / changes


def report(
    samples: dict[str, list[float]], journal_per_change: tuple[float, float | None]
) -> list[dict]:
    ms = {key: [s * 1e3 for s in values] for key, values in samples.items()}
    raw, durable = median(ms["c"]), median(ms["c+"])
    rows, results = [], []
    for key, values in ms.items():
        med, p99 = median(values), percentile(values, 99)
        added, ratio = med - durable, med / durable
        bar = ""
        if key in ("a", "b"):
            met = added <= BAR_ADDED_MS and ratio <= BAR_RATIO
            bar = "met" if met else "NOT met"
        rows.append(
            [
                LABELS[key],
                len(values),
                med,
                p99,
                f"{med - raw:+.2f}",
                f"{added:+.2f}",
                f"{ratio:.2f}",
                bar or "-",
            ]
        )
        results.append({"variant": key, "median_ms": med, "p99_ms": p99, "bar": bar})
    print_table(
        "Overhead per checked setpoint change (set + readback + measurement)",
        ["variant", "n", "median ms", "p99 ms", "vs c ms", "vs c+ ms", "x c+", "bar"],
        rows,
    )
    if "r" in ms:
        floor = median(ms["r"])
        own, inproc = median(ms["a"]) - floor, median(ms["b"]) - durable
        print(
            f"The process boundary alone (r - c+): {floor - durable:+.2f} ms. The interlock's "
            f"own work through the service (a - r): {own:+.2f} ms "
            f"(bar {BAR_OWN_SERVICE_MS}: {'met' if own <= BAR_OWN_SERVICE_MS else 'NOT met'}); "
            f"in process (b - c+): {inproc:+.2f} ms "
            f"(bar {BAR_OWN_IN_PROCESS_MS}: "
            f"{'met' if inproc <= BAR_OWN_IN_PROCESS_MS else 'NOT met'})."
        )
    if "e" in ms:
        record = median(ms["e"])
        print(
            f"Its record alone (e - c+): {record - durable:+.2f} ms. The interlock's own work "
            f"beyond its record, in process (b - e): {median(ms['b']) - record:+.2f} ms."
        )
    if "f" in ms:
        designed = median(ms["f"])
        print(
            f"All the design asks of a change, flat (f - c+): {designed - durable:+.2f} ms "
            f"(the in-process bar is {BAR_OWN_IN_PROCESS_MS} ms). What the interlock's "
            f"structure adds to it (b - f): {median(ms['b']) - designed:+.2f} ms."
        )
    entries, commits = journal_per_change
    print(
        f"bar (a, b): median <= c+ + {BAR_ADDED_MS} ms and <= {BAR_RATIO} x c+. "
        f"The interlock journals {entries:.1f} entries per change"
        + (f", in {commits:.1f} durable commits." if commits is not None else ".")
    )
    return results


# Where a change's time goes in the service: the client's clock, the service's journal
# (mono_time: when an entry was staged, or written before its commit for a command
# intent) and the simulator's ground truth (when the supply received each line); one
# monotonic clock for the three processes.
PATH_STEPS = (
    ("client sends -> request journaled (channel, service checks)", "sent", "request"),
    ("-> command intent written (limit check, verdict)", "request", "intent"),
    ("-> supply received VOLT (durable commit, send)", "intent", "set_received"),
    ("-> setpoint readback journaled (instrument)", "set_received", "set_readback"),
    ("-> client has the answer (compare, reply)", "set_readback", "set_answered"),
    ("-> measurement query journaled (channel)", "set_answered", "query"),
    ("-> supply received MEAS (send)", "query", "meas_received"),
    ("-> measurement journaled (instrument)", "meas_received", "measurement"),
    ("-> client has the measurement (reply)", "measurement", "done"),
)


def _first(items: list[tuple[float, str]], after: float, prefix: str) -> float | None:
    return next((at for at, text in items if at >= after and text.startswith(prefix)), None)


def service_path(rig: Variants, count: int) -> None:
    """Time the steps of ``count`` changes through the service, one after the other."""
    client = rig.client
    stamps = []
    for i in range(count):
        sent = time.monotonic()
        client.set_voltage(NET, VALUES[i % 2])
        answered = time.monotonic()
        client.measure(NET)
        stamps.append((sent, answered, time.monotonic()))
    start = stamps[0][0]
    truth = rig.service_sim.truth()["instruments"]["psu1"]["commands"]
    received = [(c["monotonic"], c["line"]) for c in truth if c["monotonic"] >= start]
    with contextlib.closing(sqlite3.connect(f"file:{rig.service_journal}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT mono_time, kind, payload FROM entries WHERE mono_time >= ? ORDER BY seq",
            (start,),
        ).fetchall()
    journaled = []
    for mono, kind, payload in rows:
        body = json.loads(payload)
        text = str(body.get("data", body.get("query", "")))
        journaled.append((mono, f"{kind}:{body.get('action', '')}:{text}"))
    steps: dict[str, list[float]] = {label: [] for label, _, _ in PATH_STEPS}
    for sent, answered, done in stamps:
        marks: dict[str, float | None] = {"sent": sent, "set_answered": answered, "done": done}
        marks["request"] = _first(journaled, sent, "request:set:")
        marks["intent"] = _first(journaled, sent, "command::VOLT")
        marks["set_received"] = _first(received, sent, "VOLT")
        marks["set_readback"] = _first(journaled, sent, "readback::VOLT")
        # A query's own entry, or its answer in its place (Journal.answer).
        asked = [_first(journaled, sent, f"{kind}::MEAS") for kind in ("command", "readback")]
        marks["query"] = min((at for at in asked if at is not None), default=None)
        marks["meas_received"] = _first(received, sent, "MEAS")
        marks["measurement"] = _first(journaled, sent, "measurement:")
        if any(v is None or v > done for v in marks.values()):
            continue
        for label, begin, end in PATH_STEPS:
            steps[label].append((marks[end] - marks[begin]) * 1e3)  # type: ignore[operator]
    rows_out = [
        [label, len(values), median(values), percentile(values, 99)]
        for label, values in steps.items()
        if values
    ]
    print_table(
        "Where a change's time goes through the service (client, service journal, ground truth)",
        ["step", "n", "median ms", "p99 ms"],
        rows_out,
    )


def profile_in_process(change: Callable[[float], None], count: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(count):
        change(VALUES[i % 2])
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats(
        __import__("os").environ.get("SORT", "tottime")
    ).print_stats(int(__import__("os").environ.get("NSTATS", "15")))
    print(f"\nin-process profile, {count} changes, by own time:\n")
    print("\n".join(out.getvalue().splitlines()[:40]))


# The journal's calls a change makes, timed one by one (none calls another of them).
STAGING = ("request", "verdict", "readback", "query_intent", "answer", "measurement")


def breakdown_in_process(rig: Variants, count: int) -> None:
    """Where b's time goes, against c+, change by change in turn: the exchanges, the durable
    intent (its commit and the witness), the staged entries, and the rest (controller,
    drivers, limit engine), each the sum of its calls' wall time; and the thread's CPU time.
    Each timed call adds about a microsecond of its own."""
    from interlock.drivers.visa import VisaTransport

    spent: dict[str, float] = {}

    def timed(owner: Any, name: str, part: str) -> Callable[[], None]:
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[part] = spent.get(part, 0.0) + time.perf_counter() - start

        setattr(owner, name, wrapper)
        return lambda: setattr(owner, name, original)

    undo = [timed(VisaTransport, "exchange", "exchanges")]
    undo.append(
        timed(
            Journal, "command_intent", "durable intent (the staged rows' insert, commit, witness)"
        )
    )
    undo += [timed(Journal, name, "staged entries (their rows made)") for name in STAGING]
    totals = {"b": 0.0, "c+": 0.0}
    cpu = {"b": 0.0, "c+": 0.0}
    try:
        for i in range(count):
            for key in totals:
                start, began = time.perf_counter(), time.thread_time()
                rig.changes[key](VALUES[i % 2])
                totals[key] += time.perf_counter() - start
                cpu[key] += time.thread_time() - began
    finally:
        for restore in reversed(undo):
            restore()
    per = 1e6 / count
    rows = [[part, f"{seconds * per:.0f}"] for part, seconds in spent.items()]
    rest = totals["b"] - sum(spent.values())
    rows.append(["the rest (controller, drivers, limit engine)", f"{rest * per:.0f}"])
    rows.append(["b, whole change", f"{totals['b'] * per:.0f}"])
    rows.append(["c+, whole change (its exchanges and commit)", f"{totals['c+'] * per:.0f}"])
    rows.append(["b, thread CPU time", f"{cpu['b'] * per:.0f}"])
    rows.append(["c+, thread CPU time", f"{cpu['c+'] * per:.0f}"])
    print_table(
        f"Where an in-process change's time goes ({count} changes, mean per change)",
        ["part", "us"],
        rows,
    )


def run(quick: bool = False, *, rounds: int | None = None, block: int | None = None,
        directory: str | None = None, profile: bool = False,
        breakdown: bool = False) -> list[dict]:  # fmt: skip
    rounds = rounds or (2 if quick else 10)
    block = block or (10 if quick else 50)
    with (
        tempfile.TemporaryDirectory(prefix="overhead-", dir=directory) as tmp,
        variants(Path(tmp)) as rig,
    ):
        per_change = journal_cost(rig.journal, rig.changes["b"])
        print(load_average())
        samples = measure(rig.changes, rounds, block, warmup=5 if quick else 20)
        print(load_average())
        results = report(samples, per_change)
        service_path(rig, 20 if quick else 200)
        if profile:
            profile_in_process(rig.changes["b"], 200)
        if breakdown:
            breakdown_in_process(rig, 100 if quick else 1000)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds (default 10)")
    parser.add_argument("--block", type=int, default=50, help="changes per variant and round")
    parser.add_argument("--dir", help="directory for the journals (default: a tmp dir)")
    parser.add_argument("--profile", action="store_true", help="profile the in-process variant")
    parser.add_argument(
        "--breakdown", action="store_true", help="time the in-process variant's parts"
    )
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    run(args.quick, rounds=args.rounds if not args.quick else None,
        block=args.block if not args.quick else None, directory=args.dir,
        profile=args.profile, breakdown=args.breakdown)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
