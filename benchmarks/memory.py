"""The service's resident memory over many journal entries and a long monitoring run.

Time-compressed: the service (``interlock serve``, its own process) monitors
4 live nets with a period of 1 ms instead of 50 ms, so it polls as fast as
it can. Two phases:

1. the monitor alone for ``--alone`` minutes, as on a bench left live while
   its script waits: RSS, the entries committed meanwhile, and how long the
   first change after it takes (it commits whatever the journal held back);
2. the monitor and a client changing setpoints and measuring without pause,
   until the journal holds ``--entries`` entries and the monitor has made
   ``--hours`` hours' worth of 50 ms passes, or after ``--minutes``.

The journal lives on tmpfs (``/dev/shm``) unless ``--dir`` says otherwise:
what is measured here is memory, not fsync, and without the fsyncs the run
gets through ten times as many entries. The service's RSS
(``/proc/PID/status``) is sampled along the way; the slope over the second
half of phase 2 (after warm-up) tells whether it keeps growing. Run::

    .venv/bin/python -m benchmarks.memory [--alone 3] [--entries 1000000] [--hours 1]
                                          [--minutes 12]
"""

from __future__ import annotations

import argparse
import contextlib
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
    rss_kib,
    served_bench,
    service_process,
)

NETS = 4
BENCH_PERIOD = 0.050  # the period a real bench monitors at: what a pass is worth


def _slope(xs: list[float], ys: list[float]) -> float:
    if len(xs) < 2:
        return float("nan")
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


class JournalCounter:
    """Entries and monitor measurements in the service's journal, read on the side (WAL)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        self.seq = self._head()
        self.measurements = 0

    def _head(self) -> int:
        row = self.db.execute("SELECT seq FROM head").fetchone()
        return row[0] if row else 0

    def update(self) -> int:
        head = self._head()
        # A net's reading each: the monitor's entries hold a supply's nets each.
        (count,) = self.db.execute(
            "SELECT coalesce(sum(CASE WHEN json_type(payload, '$.nets') = 'object' "
            "THEN (SELECT count(*) FROM json_each(payload, '$.nets')) ELSE 1 END), 0) "
            "FROM entries WHERE seq > ? AND seq <= ? AND kind = 'measurement'",
            (self.seq, head),
        ).fetchone()
        self.measurements += count
        self.seq = head
        return head

    def close(self) -> None:
        self.db.close()


def _monitor_alone(pid: int, seconds: float, every: float) -> list[tuple[float, int]]:
    """RSS samples (s, KiB) while nobody commands: only the service's monitor works."""
    samples, start = [], time.monotonic()
    while True:
        now = time.monotonic() - start
        samples.append((now, rss_kib(pid)))
        if now >= seconds:
            return samples
        time.sleep(min(every, seconds - now))


def run(quick: bool = False, *, entries: int | None = None, hours: float | None = None,
        minutes: float | None = None, alone: float | None = None,
        directory: str | None = None) -> dict[str, Any]:  # fmt: skip
    import interlock
    from interlock.errors import InterlockError

    entries = entries or (4_000 if quick else 1_000_000)
    hours = hours if hours is not None else (0.0 if quick else 1.0)
    limit = 60 * (minutes if minutes is not None else (0.05 if quick else 12.0))
    sample_every = 0.25 if quick else 5.0
    alone_minutes = alone if alone is not None else (0.02 if quick else 3.0)
    if directory is None and Path("/dev/shm").is_dir():
        directory = "/dev/shm"
    passes_wanted = hours * 3600 / BENCH_PERIOD
    samples: list[tuple[float, int, float, int]] = []  # (s, entries, passes, rss KiB)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mem-", dir=directory)))
        bench = make_bench(tmp / "sim", NETS, monitor_period="1 ms")
        sim = stack.enter_context(SimProcess(bench))
        served = served_bench(bench, sim.resources, tmp / "svc")
        pid = stack.enter_context(service_process(served, tmp / "service.log"))
        client = stack.enter_context(
            interlock.connect(served, role="operator", start=False, who="benchmark")
        )
        stack.enter_context(client.lease())
        client.arm()
        for net in bench.nets:
            client.set_voltage(net, 5.0)
            client.output_on(net)

        def power_down() -> None:
            with contextlib.suppress(InterlockError):
                for net in reversed(bench.nets):
                    client.output_off(net)
                client.disarm()

        stack.callback(power_down)
        counter = JournalCounter(tmp / "svc" / "run" / "journal.sqlite")
        stack.callback(counter.close)
        print(f"journal in {tmp}; {load_average()}")
        first_entries, rss0 = counter.update(), rss_kib(pid)
        # First the monitor alone, as on a bench left live while its script waits.
        quiet = _monitor_alone(pid, 60 * alone_minutes, sample_every)
        committed_alone = counter.update() - first_entries
        began = time.perf_counter()
        client.set_voltage(bench.nets[0], 5.0)  # the first durable write after it
        first_change_ms = (time.perf_counter() - began) * 1e3
        counter.update()
        passes_alone, rss_after_change = counter.measurements / NETS, rss_kib(pid)
        base = counter.measurements
        # Then the monitor and a client commanding without pause.
        start = time.monotonic()
        first_entries, rss1 = counter.update(), rss_kib(pid)
        requests = measures = 0
        next_sample = start
        while True:
            now = time.monotonic()
            if now >= next_sample:
                head = counter.update()
                passes = (counter.measurements - base - measures) / NETS
                samples.append((now - start, head, passes, rss_kib(pid)))
                next_sample += sample_every
                done = head >= entries and passes >= passes_wanted
                if done or now - start >= limit:
                    break
            net = bench.nets[requests % NETS]
            client.set_voltage(net, 5.0 if requests % 2 else 4.9)
            client.measure(net)
            requests, measures = requests + 1, measures + 1
        state = client.status()["state"]
        print(load_average())

    elapsed, head, passes, rss = samples[-1]
    half = [s for s in samples if s[0] >= elapsed / 2]
    peak = max(s[3] for s in samples)
    per_100k = _slope([s[1] / 1e5 for s in half], [s[3] for s in half])
    per_hour = _slope([s[2] * BENCH_PERIOD / 3600 for s in half], [s[3] for s in half])
    alone_hours = passes_alone * BENCH_PERIOD / 3600
    rows = [
        ["monitor alone: run time", f"{quiet[-1][0]:.0f} s"],
        ["monitor alone: passes (4 nets)", f"{passes_alone:,.0f} = {alone_hours:.2f} h at 50 ms"],
        ["monitor alone: entries committed meanwhile", f"{committed_alone:,}"],
        [
            "monitor alone: service RSS",
            f"{rss0 / 1024:.1f} -> {quiet[-1][1] / 1024:.1f} MiB "
            f"({(quiet[-1][1] - rss0) / max(alone_hours, 1e-9):+.0f} KiB per hour of monitoring)",
        ],
        [
            "the first change after it",
            f"{first_change_ms:.0f} ms; RSS then {rss_after_change / 1024:.1f} MiB",
        ],
        ["monitor and client: run time", f"{elapsed:.0f} s"],
        ["journal entries written", f"{head - first_entries:,}"],
        ["client changes (set + measure)", f"{requests:,}"],
        [
            "monitor passes (4 nets)",
            f"{passes:,.0f} = {passes * BENCH_PERIOD / 3600:.2f} h at 50 ms",
        ],
        ["service RSS at its start", f"{rss1 / 1024:.1f} MiB"],
        ["service RSS half way", f"{half[0][3] / 1024:.1f} MiB"],
        ["service RSS at the end", f"{rss / 1024:.1f} MiB (max {peak / 1024:.1f})"],
        ["RSS slope, second half", f"{per_100k:+.0f} KiB per 100k entries"],
        ["RSS slope, second half", f"{per_hour:+.0f} KiB per hour of monitoring"],
        ["controller state at the end", state],
    ]  # fmt: skip
    print_table("Service memory over a long run (time-compressed)", ["", "value"], rows)
    return {
        "samples": samples,
        "alone": quiet,
        "per_100k": per_100k,
        "per_hour": per_hour,
        "state": state,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--hours", type=float, default=1.0, help="hours of 50 ms monitoring")
    parser.add_argument("--minutes", type=float, default=12.0, help="stop after this anyway")
    parser.add_argument("--alone", type=float, default=3.0, help="minutes of the monitor alone")
    parser.add_argument("--dir", help="directory for the journal (default: /dev/shm)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        run(True, directory=args.dir)
    else:
        run(entries=args.entries, hours=args.hours, minutes=args.minutes, alone=args.alone,
            directory=args.dir)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
