"""Monitor scaling: the achieved poll rate against the number of live nets.

For each count of live nets, a generated bench (three nets per simulated
E36312A, in a process of its own) and a :class:`~interlock.controller.Controller`
in this process whose monitor is asked to poll as fast as it can (period
1 us): each pass reads every live net, one exchange per supply (SCPI channel
list), asking every supply before it reads any reply, and journals the
readings of each supply's nets. The table shows passes per second, the time
of one pass, exchanges, journal entries and commits per pass, and whether
the pass fits in the bench's 50 ms monitor period. Beside each, the floor
(raw): the monitor's own lines sent by pyvisa-py to the same simulator from
one thread, every supply's line written and then every reply read (the
supplies answer side by side), with nothing else, once the monitor has
stopped; and the difference, the interlock's own time per pass. At the most
nets the same lines are also sent with one session and thread per supply
(as the monitor polled before), in the simulator's one process and with
each supply simulated in a process of its own: the two come out alike, so
what grows with the supplies is the poller's own work (a pyvisa-py session
and a thread hand-over per supply, one interpreter, 2 cores), not the
shared simulator.

The RB8 relay board has 8 relays; a net goes live through the interlock
only with a power relay and a sense relay (safe-to-mate), so at most 4 nets
go live the ordinary way (``output_on``). Beyond 4, the nets are *forced*
live: their supply outputs are turned on over a connection of our own and
the controller's commanded state says they are live; their power relays,
which the board does not have (no bench file may name them: they are added
in code, :func:`benchmarks.common.load_generated`), are hardwired closed in
the simulator (:mod:`benchmarks.simhost`), so they draw current like the
others. The
monitor's work per net is the same either way. Run::

    .venv/bin/python -m benchmarks.monitor_scaling [--nets 1,2,4,8,16,32] [--seconds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import pyvisa

from benchmarks.common import (
    NET_VOLTS,
    RELAY_NETS,
    CommitCounter,
    SimProcess,
    disable_nagle,
    force_live,
    generated_arming,
    load_average,
    load_generated,
    make_bench,
    median,
    print_table,
    served_bench,
)

PERIOD = 0.050  # the bench's monitor period, for the "fits" column
BAR_RATIO = 2.0  # the pass at the most nets against the pass at the fewest


def measure_nets(directory: Path, nets: int, seconds: float) -> dict[str, Any]:
    from interlock.controller import Controller
    from interlock.journal import Journal

    bench = make_bench(directory / "sim", nets)
    forced = bench.nets[RELAY_NETS:]
    hardwire = [f"P{bench.nets.index(net) + 1:02d}" for net in forced]
    with SimProcess(bench, hardwire=hardwire) as sim:
        served = served_bench(bench, sim.resources, directory / "local")
        configuration = load_generated(served)
        with Journal(directory / "local" / "journal.sqlite", bench=bench.sim_file.stem) as journal:
            controller = Controller(configuration, journal, monitor_period=1e-6)
            controller.connect()
            try:
                with generated_arming():
                    controller.arm("benchmark")
                for net in bench.nets[:RELAY_NETS]:
                    controller.set_voltage(net, NET_VOLTS)
                    controller.output_on(net)
                if forced:
                    force_live(controller, sim, forced, NET_VOLTS)
                time.sleep(0.2)
                passes, seq, start = controller.monitor.passes, journal.last().seq, time.monotonic()
                with CommitCounter(journal) as counter:
                    time.sleep(seconds)
                    passes = controller.monitor.passes - passes
                    elapsed = time.monotonic() - start
                    entries = journal.last().seq - seq
                fault = controller.fault_cause
                controller.monitor.stop()
                journal.flush()
                lines = _monitor_lines(journal.path, seq)
                threads = raw_pass(sim.resources, lines, seconds)
                raw = raw_pass_pipelined(sim.resources, lines, seconds)
            finally:
                controller.close()
    rate = passes / elapsed
    return {
        "nets": nets,
        "live by": "output_on" if nets <= RELAY_NETS else f"{RELAY_NETS} output_on + forced",
        "passes/s": rate,
        "ms/pass": 1e3 / rate if rate else math.inf,
        "exchanges/pass": math.ceil(nets / 3),
        "entries/pass": entries / passes if passes else math.nan,
        "commits/pass": (
            counter.commits / passes if passes and counter.commits is not None else math.nan
        ),
        "fault": fault,
        "raw ms/pass": raw * 1e3,
        "threads ms/pass": threads * 1e3,
        "lines": lines,
    }


def _monitor_lines(path: Path, after: int) -> dict[str, str]:
    """Each supply's line of the monitor's passes, as its journal recorded them."""
    lines: dict[str, str] = {}
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT payload FROM entries WHERE seq > ? AND kind = 'readback' ORDER BY seq",
            (after,),
        )
        for (payload,) in rows:
            body = json.loads(payload)
            if str(body.get("query", "")).startswith("MEAS"):
                lines.setdefault(str(body["instrument"]), str(body["query"]))
    return lines


@contextlib.contextmanager
def _sessions(resources: dict[str, str], lines: dict[str, str]) -> Iterator[list[tuple[Any, str]]]:
    """A pyvisa-py session (TCP_NODELAY) to each supply of ``lines``, with its line."""
    rm = pyvisa.ResourceManager("@py")
    sessions = []
    try:
        for name, line in sorted(lines.items()):
            session = rm.open_resource(
                resources[name], read_termination="\n", write_termination="\n", timeout=5000
            )
            disable_nagle(session)
            sessions.append((session, line))
        yield sessions
    finally:
        for session, _ in sessions:
            session.close()


def raw_pass(resources: dict[str, str], lines: dict[str, str], seconds: float) -> float:
    """The monitor's own lines by pyvisa-py, one session and one thread per supply, side
    by side, nothing else (no engine, no journal): median seconds a pass."""
    with _sessions(resources, lines) as sessions, ThreadPoolExecutor(max(1, len(sessions))) as pool:
        times = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            begin = time.perf_counter()
            futures = [pool.submit(s.query, line) for s, line in sessions[1:]]
            sessions[0][0].query(sessions[0][1])
            wait(futures)
            for future in futures:
                future.result()
            times.append(time.perf_counter() - begin)
        return median(times)


def raw_pass_pipelined(resources: dict[str, str], lines: dict[str, str], seconds: float) -> float:
    """The floor: the monitor's lines by pyvisa-py from one thread, every supply's line
    written, then every reply read in the same order (each supply still answers on its
    own), nothing else (no engine, no journal): median seconds a pass."""
    with _sessions(resources, lines) as sessions:
        times = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            begin = time.perf_counter()
            for session, line in sessions:
                session.write(line)
            for session, _ in sessions:
                session.read()
            times.append(time.perf_counter() - begin)
        return median(times)


def raw_pass_apart(directory: Path, lines: dict[str, str], seconds: float) -> float:
    """:func:`raw_pass` with each supply simulated in a process of its own, as real
    supplies each answer on their own: a thread per supply without the shared simulator."""
    with contextlib.ExitStack() as stack:
        resources = {}
        for name in lines:
            sim = stack.enter_context(SimProcess(make_bench(directory / f"apart-{name}", 3)))
            resources[name] = sim.resources["psu1"]
        return raw_pass(resources, lines, seconds)


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least squares line: (intercept, slope)."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0
    return my - slope * mx, slope


def run(quick: bool = False, *, nets: list[int] | None = None, seconds: float | None = None,
        directory: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    counts = nets or ([1, 4] if quick else [1, 2, 4, 8, 16, 32])
    seconds = seconds or (1.0 if quick else 5.0)
    print(load_average())
    results = []
    apart = None
    with tempfile.TemporaryDirectory(prefix="monitor-", dir=directory) as tmp:
        for count in counts:
            results.append(measure_nets(Path(tmp) / f"n{count}", count, seconds))
            print(f"  {count} nets: {results[-1]['passes/s']:.0f} passes/s; {load_average()}")
        if len(results[-1]["lines"]) > 1:
            apart = raw_pass_apart(Path(tmp) / "apart", results[-1]["lines"], seconds) * 1e3
    base = results[0]
    rows = []
    for r in results:
        fits = r["ms/pass"] <= PERIOD * 1e3
        rows.append(
            [
                r["nets"],
                r["live by"],
                r["passes/s"],
                r["ms/pass"],
                f"{r['ms/pass'] / base['ms/pass']:.1f}",
                r["raw ms/pass"],
                f"{r['raw ms/pass'] / base['raw ms/pass']:.1f}",
                r["ms/pass"] - r["raw ms/pass"],
                r["exchanges/pass"],
                f"{r['entries/pass']:.1f}",
                f"{r['commits/pass']:.1f}",
                "yes" if fits else "NO",
                r["fault"] or "-",
            ]
        )
    print_table(
        "Monitor: achieved poll rate against live nets (period 1 us: as fast as it goes)",
        ["live nets", "live by", "passes/s", "ms/pass", "x 1 net", "raw ms/pass", "raw x 1 net",
         "interlock ms/pass", "exchanges/pass", "journal entries/pass", "commits/pass",
         "fits 50 ms", "fault"],
        rows,
    )  # fmt: skip
    if len(results) > 1:
        last = results[-1]
        ratio, floor = last["ms/pass"] / base["ms/pass"], last["raw ms/pass"] / base["raw ms/pass"]
        print(
            f"bar: the pass at {last['nets']} nets at most {BAR_RATIO:g} x the pass at "
            f"{base['nets']}: x {ratio:.2f}, {'met' if ratio <= BAR_RATIO else 'NOT met'}; "
            f"the raw floor: x {floor:.2f}"
        )
        threads = last["threads ms/pass"] / base["threads ms/pass"]
        print(
            f"raw, one session and thread per supply: {base['threads ms/pass']:.2f} ms/pass "
            f"at {base['nets']} nets, {last['threads ms/pass']:.2f} at {last['nets']}: "
            f"x {threads:.2f}"
        )
        if apart is not None:
            print(
                f"the same with each of the {len(last['lines'])} supplies simulated in a "
                f"process of its own: {apart:.2f} ms/pass, "
                f"x {apart / base['threads ms/pass']:.2f}"
            )
        ys = [r["ms/pass"] for r in results]
        for what in ("nets", "exchanges/pass"):
            fixed, slope = _fit([r[what] for r in results], ys)
            print(f"least squares: ms/pass = {fixed:.2f} + {slope:.2f} x {what}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", default="1,2,4,8,16,32", help="counts of live nets")
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per count")
    parser.add_argument("--dir", help="directory for the journals (default: a tmp dir)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        run(True, directory=args.dir)
    else:
        counts = [int(n) for n in args.nets.split(",")]
        run(nets=counts, seconds=args.seconds, directory=args.dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
