"""The floor of an emergency stop under a script flood: the least any Python service pays.

A stand-in for any service between scripts and instruments, with none of the
interlock's work (no limit check, no journal chain, no access control, no
monitor): one thread per connection on a Unix socket, one JSON line each
way, one pyvisa-py session per supply (TCP_NODELAY), and one lock held over
each exchange that changes a setting, which a stop waits for, so that a
change in flight cannot land after the stop's off line (the least ordering a
stop needs). Requests:

- ``{"op": "set", "supply": S, "channel": C, "volts": v}``: one durable
  SQLite commit (WAL, ``synchronous=FULL``), then ``VOLT v,(@C);:VOLT? (@C)``
  under the lock, the readback compared;
- ``{"op": "measure", "supply": S, "channel": C}``: the measurement exchange;
- ``{"op": "status"}``: a small answer, no instrument (the flood);
- ``{"op": "live"}``: every output on at 5 V (before each trial, as the
  service's trials begin with every net live);
- ``{"op": "stop"}``: the lock, one durable commit, and ``OUTP OFF`` with
  every channel to every supply, one after another (a write each, no reply).

:func:`run` measures it as :mod:`benchmarks.estop_flood` measures the
service: a keeper changing a setpoint and measuring without pause (every
net in turn, on both supplies), flooding
processes asking ``status`` as fast as they are answered (at the same nice
level as there), a stop at a random moment, and the time from the request
to the last supply receiving its off line (the simulator's ground truth).
The stop turns every output off in one step (the service's ``--power-off
together``).
Run with the service's figures by ``python -m benchmarks.estop_flood``; alone::

    .venv/bin/python -m benchmarks.stop_floor [--trials 100] [--flooders 4]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    PYTHON,
    SimProcess,
    make_bench,
    median,
    percentile,
    start_processes,
    stop_process,
)
from benchmarks.overhead import RawVisa
from benchmarks.relay import RelayClient, serve_lines

CONDITIONS = ("quiet", "script")


class StopRelay:
    """The exchanges, the commit and the stop, answered over a socket."""

    def __init__(self, resources: dict[str, str], channels: dict[str, list[int]], db: Path):
        # The raw variant's sessions (terminators, TCP_NODELAY): a session per supply.
        self.sessions = {name: RawVisa(resource).psu for name, resource in resources.items()}
        self.channels = channels
        self.db = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY, body TEXT)")
        self.db_lock = threading.Lock()
        self.gate = threading.Lock()  # held over a setting's exchange; the stop waits for it
        self.session_locks = {name: threading.Lock() for name in self.sessions}

    def commit(self, body: dict[str, Any]) -> None:
        with self.db_lock:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("INSERT INTO entries (body) VALUES (?)", (json.dumps(body),))
            self.db.execute("COMMIT")

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request["op"]
        if op == "status":
            return {"ok": {"state": "live", "nets": len(self.channels)}}
        if op == "live":  # every output on at 5 V, as the service's trials begin
            with self.gate:
                self.to_every_supply("VOLT 5,(@{chs})", "OUTP ON,(@{chs})", ask="OUTP? (@{chs})")
            return {"ok": True}
        if op == "stop":
            with self.gate:
                self.commit({"op": "stop"})
                self.to_every_supply("OUTP OFF,(@{chs})")
            return {"ok": True}
        supply, channel = request["supply"], int(request["channel"])
        session = self.sessions[supply]
        if op == "set":
            volts = float(request["volts"])
            self.commit({"supply": supply, "channel": channel, "volts": volts})
            with self.gate, self.session_locks[supply]:
                readback = float(session.query(f"VOLT {volts:g},(@{channel});:VOLT? (@{channel})"))
            if abs(readback - volts) > 1e-6:
                return {"error": f"read back {readback}, set {volts}"}
            return {"ok": readback}
        with self.session_locks[supply]:
            reply = session.query(f"MEAS:VOLT? (@{channel});:MEAS:CURR? (@{channel})")
        volts, amps = (float(x) for x in reply.split(";"))
        return {"ok": {"voltage": volts, "current": amps}}

    def to_every_supply(self, *lines: str, ask: str | None = None) -> None:
        """Each line to every supply in turn, ``{chs}`` its channels; no reply waited but
        ``ask``'s, which says the supply has taken the lines before it."""
        for name, session in self.sessions.items():
            chs = ",".join(map(str, self.channels[name]))
            with self.session_locks[name]:
                for line in lines:
                    session.write(line.format(chs=chs))
                if ask is not None:
                    session.query(ask.format(chs=chs))


def keeper(
    path: str, ports: list[tuple[str, int]], commanding: Any, stop: Any, changes: Any
) -> None:
    """The script: every net in turn, a setpoint and its measurement, without pause."""
    client = RelayClient(Path(path))
    i = 0
    while not stop.is_set():
        if not commanding.is_set():
            time.sleep(0.01)
            continue
        supply, channel = ports[i % len(ports)]
        client.call(
            {"op": "set", "supply": supply, "channel": channel, "volts": 5.0 if i % 2 else 4.9}
        )
        client.call({"op": "measure", "supply": supply, "channel": channel})
        i += 1
        changes.value = i
    client.close()


def flooder(path: str, active: Any, stop: Any, nice: int, sent: Any) -> None:
    os.nice(nice)
    client = RelayClient(Path(path))
    while not stop.is_set():
        if not active.is_set():
            time.sleep(0.01)
            continue
        client.call({"op": "status"})
        with sent.get_lock():
            sent.value += 1
    client.close()


def run(trials: int, flooders: int, nice: int, directory: str | None = None) -> dict[str, Any]:
    """The stop's time through the minimal relay, quiet and under a script flood."""
    from benchmarks.time_to_safe import _all_off_at

    results: dict[str, list[float]] = {c: [] for c in CONDITIONS}
    rates: dict[str, list[float]] = {c: [] for c in CONDITIONS}
    missed = dict.fromkeys(CONDITIONS, 0)
    rng = random.Random(11)
    context = multiprocessing.get_context("spawn")
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sfl-", dir=directory)))
        bench = make_bench(tmp / "sim", 4, power_off="together")
        sim = stack.enter_context(SimProcess(bench))
        channels: dict[str, list[int]] = {}
        for net in bench.nets:
            supply, channel = bench.supply_of(net)
            channels.setdefault(supply, []).append(channel)
        path = str(tmp / "relay.sock")
        relay = subprocess.Popen(
            [PYTHON, "-m", "benchmarks.stop_floor", "--serve", path, str(tmp / "floor.sqlite"),
             json.dumps({s: sim.resources[s] for s in channels}), json.dumps(channels)],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        stack.callback(stop_process, relay)
        assert relay.stdout is not None
        if relay.stdout.readline().strip() != "ready":
            raise RuntimeError("the stop relay did not start")
        stop, commanding, active = context.Event(), context.Event(), context.Event()
        changes, sent = context.Value("q", 0), context.Value("q", 0)
        ports = [bench.supply_of(net) for net in bench.nets]
        procs = [context.Process(target=keeper, args=(path, ports, commanding, stop, changes))]
        procs += [
            context.Process(target=flooder, args=(path, active, stop, nice, sent))
            for _ in range(flooders)
        ]
        start_processes(stack, procs, stop, 10)
        stopper = RelayClient(Path(path))
        stack.callback(stopper.close)
        stopper.call({"op": "stop"})  # the first of everything (sessions, the database) not timed
        for condition in [c for _ in range(trials) for c in CONDITIONS]:
            stopper.call({"op": "live"})
            if condition == "script":
                commanding.set()
                active.set()
            before = changes.value + sent.value
            settle = rng.uniform(0.2, 0.4)
            time.sleep(settle)
            rates[condition].append((changes.value + sent.value - before) / settle)
            if not all(proc.is_alive() for proc in procs):
                raise RuntimeError("a keeper or flooding process ended: the flood is not there")
            start = time.monotonic()
            stopper.call({"op": "stop"})
            commanding.clear()
            active.clear()
            off = _all_off_at(sim.truth(), list(channels), start)
            if off is None:
                missed[condition] += 1
            else:
                results[condition].append(off - start)
    return {"results": results, "missed": missed, "rates": rates}


HEADER = ["condition", "requests/s", "n", "median ms", "p99 ms", "max ms"]


def rows(found: dict[str, Any]) -> list[list[Any]]:
    out = []
    for condition, values in found["results"].items():
        ms = [v * 1e3 for v in values]
        rate = f"{median(found['rates'][condition]):.0f}"
        out.append([f"floor, {condition}", rate, len(ms), median(ms), percentile(ms, 99), max(ms)])
    return out


def _serve(argv: list[str]) -> int:
    path, database, resources, channels = argv[0], Path(argv[1]), argv[2], argv[3]
    from interlock.service.server import SWITCH_INTERVAL_S

    sys.setswitchinterval(SWITCH_INTERVAL_S)  # as the service does
    relay = StopRelay(json.loads(resources), json.loads(channels), database)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve_lines, args=(conn, relay.answer), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--serve":
        return _serve(argv[1:])
    from benchmarks.common import print_table
    from benchmarks.estop_flood import FLOODER_NICE, FLOODERS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--flooders", type=int, default=FLOODERS)
    args = parser.parse_args(argv)
    found = run(args.trials, args.flooders, FLOODER_NICE)
    print_table(
        "The floor: a stop through a minimal relay, request to all outputs off",
        HEADER,
        rows(found),
    )
    if any(found["missed"].values()):
        print(f"no all-off line found in the ground truth: {found['missed']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
