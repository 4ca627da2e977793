"""No false trips under load: CPU-bound processes on every core while a client commands.

The simulated bench (4 nets on two supplies) and the service in processes of
their own, as on a real bench; a client that holds the lease, keeps the 4 nets
live and changes setpoints and measures without pause; and ``--hogs``
processes (default 4, on 2 cores) each running ``while True: pass`` for the
whole run. Nothing goes wrong on the bench: every trip is a false one. The
service's journal then says how many the run had, by cause: the relay
board's watchdog (the service's heartbeat late), a lease lost (the client's
heartbeats late), anything else. A trip is reset by an operator and the run
goes on, so one run counts them all. Run::

    .venv/bin/python -m benchmarks.under_load [--minutes 10] [--hogs 4]

Bar (the issue): zero relay-watchdog trips and zero lost leases in 10 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import re
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    SimProcess,
    load_average,
    make_bench,
    print_table,
    served_bench,
    service_process,
)

NETS = 4
MINUTES = 10.0


def hog(stop: Any) -> None:
    """One core's worth of pure Python, as long as the run lasts."""
    n = 0
    while not stop.is_set():
        for _ in range(100_000):
            n += 1


def commander(bench_file: str, nets: list[str], stop: Any, changes: Any, leases: Any) -> None:
    """Hold the lease, keep the nets live, change and measure without pause."""
    import interlock
    from interlock.errors import InterlockError

    with interlock.connect(bench_file, role="operator", start=False, who="commander") as client:
        i = 0
        while not stop.is_set():
            try:
                if client._lease is None or client.lease_lost is not None:
                    if client._lease is not None:
                        client._lease.release()
                    client.lease().acquire()
                    leases.value += 1
                status = client.status()
                if status["state"] == "safe":
                    client.arm()
                    continue
                if status["state"] not in ("armed", "live"):
                    time.sleep(0.05)
                    continue
                for net in nets:
                    if not status["nets"][net]["output"]:
                        client.set_voltage(net, 5.0)
                        client.output_on(net)
                while not stop.is_set() and client.lease_lost is None:
                    net = nets[i % len(nets)]
                    client.set_voltage(net, 5.0 if i % 2 else 4.9)
                    client.measure(net)
                    i += 1
                    changes.value = i
            except InterlockError:
                time.sleep(0.05)
        with contextlib.suppress(InterlockError):
            for net in nets:
                client.output_off(net)


def _faults(journal: Path, before: float) -> list[dict[str, Any]]:
    """The faults journaled before the run ended (not those of the client's going)."""
    with contextlib.closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT payload FROM entries WHERE kind = 'fault' AND mono_time < ?", (before,)
        ).fetchall()
    return [json.loads(payload) for (payload,) in rows]


# The supervisor's account of this host's heartbeats in a watchdog trip's detail.
_BEATS = re.compile(r"this host's last heartbeats: (?:(\d+) ms apart, )?the last (\d+) ms ago")
WATCHDOG_MS = 500


def _host_was_late(detail: str) -> bool | None:
    """Whether this host's heartbeats were late when the board's watchdog trip was read."""
    found = _BEATS.search(detail)
    if found is None:
        return None
    apart = int(found[1]) if found[1] else 0
    return max(apart, int(found[2])) >= WATCHDOG_MS


def _kind(fault: dict[str, Any]) -> str:
    cause, detail = fault.get("cause", ""), fault.get("detail", "")
    if cause == "relay-board" and "WDT" in detail:
        late = _host_was_late(detail)
        side = {True: "host late", False: "host on time", None: "host not known"}[late]
        return f"relay-board watchdog ({side})"
    if cause == "lease":
        return "lease lost"
    return f"other ({cause})"


def run(quick: bool = False, *, minutes: float | None = None, hogs: int = 4,
        directory: str | None = None) -> dict[str, Any]:  # fmt: skip
    import interlock

    seconds = 60 * (minutes if minutes is not None else (0.2 if quick else MINUTES))
    context = multiprocessing.get_context("spawn")
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="uld-", dir=directory)))
        bench = make_bench(tmp / "sim", NETS)
        sim = stack.enter_context(SimProcess(bench))
        served = served_bench(bench, sim.resources, tmp / "svc")
        stack.enter_context(service_process(served, tmp / "service.log"))
        operator = stack.enter_context(
            interlock.connect(served, role="operator", start=False, who="benchmark")
        )
        stop, changes, leases = context.Event(), context.Value("q", 0), context.Value("q", 0)
        procs = [context.Process(target=hog, args=(stop,)) for _ in range(hogs)]
        procs.append(
            context.Process(target=commander, args=(str(served), bench.nets, stop, changes, leases))
        )

        def end() -> None:
            stop.set()
            for proc in procs:
                if proc.pid is None:
                    continue  # never started
                proc.join(30)
                if proc.is_alive():
                    proc.terminate()
                    proc.join(5)

        stack.callback(end)
        print(load_average(), flush=True)
        procs[-1].start()
        deadline = time.monotonic() + 120
        while changes.value == 0:  # the client under way before the clock starts
            if not procs[-1].is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the commanding client did not get going")
            time.sleep(0.1)
        for proc in procs[:-1]:
            proc.start()
        began = time.monotonic()
        loads, resets = [], 0
        while time.monotonic() - began < seconds:
            time.sleep(min(5.0, seconds / 10))
            loads.append(load_average())
            status = operator.status()
            if status["state"] == "fault":
                print(f"  trip: {status['fault']}", flush=True)
                with contextlib.suppress(interlock.InterlockError):
                    operator.reset()
                    resets += 1
        ended = time.monotonic()
        elapsed = ended - began
        end()
        print(load_average(), flush=True)
        faults = _faults(tmp / "svc" / "run" / "journal.sqlite", ended)
    first = [f for f in faults if f.get("first", True)]
    counts: dict[str, int] = {}
    for fault in first:
        counts[_kind(fault)] = counts.get(_kind(fault), 0) + 1
    # A board's watchdog trip opens the relays at once: the monitor may see a live net's
    # current vanish and trip first. Such a trip is counted as the board's, not hidden.
    for fault in faults:
        if not fault.get("first", True) and _kind(fault).startswith("relay-board watchdog"):
            counts[_kind(fault)] = counts.get(_kind(fault), 0) + 1
    rows = [
        ["run time", f"{elapsed:.0f} s"],
        ["CPU-bound processes", f"{hogs} (2 CPUs)"],
        ["load average (1 min), sampled", f"{loads[len(loads) // 2] if loads else '-'}"],
        ["client changes (set + measure)", f"{changes.value:,}"],
        ["leases taken by the client", f"{leases.value}"],
        *[
            [
                f"relay-board watchdog trips, {side}",
                f"{counts.pop(f'relay-board watchdog ({side})', 0)}",
            ]
            for side in ("host late", "host on time", "host not known")
        ],
        ["leases lost", f"{counts.pop('lease lost', 0)}"],
        ["other trips", ", ".join(f"{k}: {v}" for k, v in counts.items()) or "0"],
    ]
    print_table("False trips under load (4 nets live, a client commanding)", ["", "value"], rows)
    for fault in faults:
        after = "" if fault.get("first", True) else " (after the first)"
        print(f"  {fault.get('cause')}: {fault.get('detail')}{after}")
    return {"faults": first, "changes": changes.value, "elapsed": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=MINUTES)
    parser.add_argument("--hogs", type=int, default=4)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    run(args.quick, minutes=None if args.quick else args.minutes, hogs=args.hogs)


if __name__ == "__main__":
    main()
