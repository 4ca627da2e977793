"""Durable journal entries per second: sequential, threads, processes.

Every entry is a committed transaction (WAL, synchronous=FULL), so the
figures are bound by fsync on the disk holding the journal. Run:

    .venv/bin/python -m benchmarks.journal_throughput [--entries 2000] [--writers 1,2,4,8]
                                                      [--dir /path/on/the/bench/disk]

Writers in threads share one Journal (one lock, one connection); writers in
processes each open their own on the same file and serialise on SQLite's
write lock (BEGIN IMMEDIATE). Each run ends by verifying the whole chain.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import load_average, print_table
from interlock.journal import Journal, verify_journal


def _append(journal: Journal, count: int, kind: str) -> None:
    for i in range(count):
        if kind == "command":
            journal.command_intent(
                "psu", f"VOLT {i % 25},(@1)\n", net="VBUS", quantity="voltage", value=float(i % 25)
            )
        else:
            journal.measurement("VBUS", voltage=24.0 + (i % 7) / 100, current=0.2)


def bench_sequential(path: Path, count: int, kind: str) -> float:
    with Journal(path, bench="bench-throughput") as journal:
        start = time.perf_counter()
        _append(journal, count, kind)
        return time.perf_counter() - start


def bench_threads(path: Path, count: int, writers: int) -> float:
    with Journal(path, bench="bench-throughput") as journal:
        share = count // writers
        threads = [
            threading.Thread(target=_append, args=(journal, share, "measurement"))
            for _ in range(writers)
        ]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - start


def _process_writer(path: str, count: int, ready, go) -> None:
    with Journal(path, bench="bench-throughput") as journal:
        ready.release()
        go.wait()
        _append(journal, count, "measurement")


def bench_processes(path: Path, count: int, writers: int) -> float:
    Journal(path, bench="bench-throughput").close()  # schema made once, not raced
    context = multiprocessing.get_context("spawn")
    ready, go = context.Semaphore(0), context.Event()
    share = count // writers
    procs = [
        context.Process(target=_process_writer, args=(str(path), share, ready, go))
        for _ in range(writers)
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.acquire()  # all connected: time the appends, not interpreter start-up
    start = time.perf_counter()
    go.set()
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - start
    if any(proc.exitcode != 0 for proc in procs):
        raise SystemExit("a writer process failed")
    return elapsed


def run(
    quick: bool = False,
    *,
    entries: int | None = None,
    writer_counts: list[int] | None = None,
    directory: str | None = None,
) -> list[tuple[str, int, int, float]]:
    entries = entries or (100 if quick else 2000)
    writer_counts = writer_counts or ([1, 2] if quick else [1, 2, 4, 8])
    print(load_average())
    rows: list[tuple[str, int, int, float]] = []
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        tmp_path = Path(tmp)

        def record(name: str, writers: int, path: Path, elapsed: float) -> None:
            count = verify_journal(path).entries
            rows.append((name, writers, count, elapsed))

        for kind in ("measurement", "command"):
            path = tmp_path / f"seq-{kind}.sqlite"
            record(f"sequential ({kind})", 1, path, bench_sequential(path, entries, kind))
        for writers in writer_counts:
            path = tmp_path / f"threads-{writers}.sqlite"
            record("threads, one Journal", writers, path, bench_threads(path, entries, writers))
        # Quick: one row of processes (each a Python start-up, seconds on a loaded machine).
        for writers in writer_counts[-1:] if quick else writer_counts:
            path = tmp_path / f"procs-{writers}.sqlite"
            record("processes, one file", writers, path, bench_processes(path, entries, writers))

    print(load_average())
    print_table(
        "Durable journal entries per second (each entry one committed transaction)",
        ["mode", "writers", "entries", "seconds", "entries/s", "ms/entry"],
        [
            [
                name,
                writers,
                count,
                elapsed,
                f"{count / elapsed:.0f}",
                f"{1e3 * elapsed / count:.3f}",
            ]
            for name, writers, count, elapsed in rows
        ],
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=2000, help="entries per row (default 2000)")
    parser.add_argument("--writers", default="1,2,4,8", help="writer counts (default 1,2,4,8)")
    parser.add_argument("--dir", help="directory for the journal files (default: a tmp dir)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        run(True, directory=args.dir)
    else:
        writer_counts = [int(n) for n in args.writers.split(",")]
        run(entries=args.entries, writer_counts=writer_counts, directory=args.dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
