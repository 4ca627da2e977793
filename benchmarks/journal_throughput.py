"""Durable journal entries per second: sequential, threads, processes; what the
witness costs a commit; how long the service's start-up check takes.

Every entry is a committed transaction (WAL, synchronous=FULL), so the
figures are bound by fsync on the disk holding the journal. Run:

    .venv/bin/python -m benchmarks.journal_throughput [--entries 2000] [--writers 1,2,4,8]
                                                      [--startup-entries 1000000]
                                                      [--dir /path/on/the/bench/disk]

Writers in threads share one Journal (one lock, one connection); writers in
processes each open their own on the same file and serialise on SQLite's
write lock (BEGIN IMMEDIATE). Each run ends by verifying the whole chain and
its witness, and says whether the witness holds the head (racing writers
must not move it back).

The witness (interlock.journal.witness) is written after every commit: its
cost is measured alone (the write, as a commit makes it: lock, read, compare,
write) and as the difference between commits to a journal with a witness and
to one without (a journal whose witness was removed), in interleaved blocks.
The start-up check is timed on a journal of --startup-entries entries: the
first start verifies it whole, the next only what was written since.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import load_average, median, print_table
from interlock.journal import Journal, verify_journal
from interlock.journal.startup import check_at_start
from interlock.journal.witness import Point, Witness, witness_path


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


TMPFS = "/dev/shm"


def witness_advance_us(path: Path, calls: int) -> float:
    """Microseconds per witness write as a commit makes it, on the journal's file system."""
    Journal(path, bench="bench-witness").close()
    witness = Witness.open(path)
    assert witness is not None
    try:
        head = witness.read().head
        points = [Point(i, f"{i:064x}") for i in range(1, calls + 1)]
        start = time.perf_counter()
        for point in points:
            witness.advance(head, point, lambda _: True)
            head = point
        return 1e6 * (time.perf_counter() - start) / calls
    finally:
        witness.close()


def witness_ab(directory: Path, blocks: int, per_block: int) -> tuple[float, float]:
    """Median microseconds per durable commit with the witness, and without it."""
    with_path, without_path = directory / "with.sqlite", directory / "without.sqlite"
    for path in (with_path, without_path):
        with Journal(path, bench="bench-witness") as journal:
            journal.measurement("VBUS", voltage=24.0)
    witness_path(without_path).unlink()  # a journal that holds entries: no new witness is made
    times: dict[Path, list[float]] = {with_path: [], without_path: []}
    journals = {path: Journal(path, bench="bench-witness") for path in times}
    try:
        for block in range(blocks):
            order = (with_path, without_path) if block % 2 == 0 else (without_path, with_path)
            for path in order:
                journal = journals[path]
                for i in range(per_block):
                    begun = time.perf_counter()
                    journal.measurement("VBUS", voltage=24.0 + (i % 7) / 100, current=0.2)
                    times[path].append(time.perf_counter() - begun)
    finally:
        for journal in journals.values():
            journal.close()
    return 1e6 * median(times[with_path]), 1e6 * median(times[without_path])


def startup_checks(path: Path, entries: int) -> list[tuple[str, int, float]]:
    """(what, entries checked, seconds): the whole chain, a first start, the next start."""
    with Journal(path, bench="bench-startup") as journal:
        journal.begin_run("run-startup")
        for i in range(entries):
            # Staged: written a thousand to a commit (the journal's backlog bound).
            journal.measurement("VBUS", voltage=24.0 + (i % 7) / 100, current=0.2, durable=False)
    rows = []
    begun = time.perf_counter()
    report = verify_journal(path)
    rows.append(("journal verify (the whole chain)", report.entries, time.perf_counter() - begun))
    with Journal(path, bench="bench-startup") as journal:
        first = check_at_start(journal)
        rows.append(("first start (no checkpoint yet)", first.entries, first.seconds))
        for _ in range(1000):
            journal.measurement("VBUS", voltage=24.0, current=0.2, durable=False)
    with Journal(path, bench="bench-startup") as journal:
        second = check_at_start(journal)
        rows.append(("next start (1000 entries written since)", second.entries, second.seconds))
    return rows


def run(
    quick: bool = False,
    *,
    entries: int | None = None,
    writer_counts: list[int] | None = None,
    startup_entries: int | None = None,
    directory: str | None = None,
) -> list[tuple[str, int, int, float]]:
    entries = entries or (100 if quick else 2000)
    writer_counts = writer_counts or ([1, 2] if quick else [1, 2, 4, 8])
    startup_entries = startup_entries or (5000 if quick else 1_000_000)
    print(load_average())
    rows: list[tuple[str, int, int, float]] = []
    at_head: list[bool] = []
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        tmp_path = Path(tmp)

        def record(name: str, writers: int, path: Path, elapsed: float) -> None:
            report = verify_journal(path)
            rows.append((name, writers, report.entries, elapsed))
            at_head.append(
                report.witness is not None and report.witness.head.seq == report.last_seq
            )

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
            ["mode", "writers", "entries", "seconds", "entries/s", "ms/entry", "witness at head"],
            [
                [
                    name,
                    writers,
                    count,
                    elapsed,
                    f"{count / elapsed:.0f}",
                    f"{1e3 * elapsed / count:.3f}",
                    "yes" if ok else "NO",
                ]
                for (name, writers, count, elapsed), ok in zip(rows, at_head, strict=True)
            ],
        )

        calls = 2000 if quick else 50_000
        advance_us = witness_advance_us(tmp_path / "advance.sqlite", calls)
        blocks, per_block = (4, 25) if quick else (60, 100)
        ab_rows = []
        # On the journal's disk, and on tmpfs, where no fsync hides the witness's own work.
        for where, place in (("journal's dir", tmp_path), ("tmpfs", TMPFS)):
            if place is None or not Path(place).is_dir():
                continue
            with tempfile.TemporaryDirectory(dir=place) as ab_dir:
                with_us, without_us = witness_ab(Path(ab_dir), blocks, per_block)
            ab_rows.append([where, blocks * per_block, with_us, without_us, with_us - without_us])
        print(load_average())
        print_table(
            "What the witness adds to a commit",
            ["durable commits", "n", "with a witness us", "without us", "difference us"],
            [
                *ab_rows,
                ["the witness write alone (lock, read, compare, write)", calls, advance_us, "", ""],
            ],
        )

        checks = startup_checks(tmp_path / "startup.sqlite", startup_entries)
        print(load_average())
        print_table(
            f"The start-up check of a journal of {startup_entries:,} entries",
            ["check", "entries checked", "seconds"],
            [[what, f"{count:,}", f"{seconds:.3f}"] for what, count, seconds in checks],
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=2000, help="entries per row (default 2000)")
    parser.add_argument("--writers", default="1,2,4,8", help="writer counts (default 1,2,4,8)")
    parser.add_argument(
        "--startup-entries",
        type=int,
        default=1_000_000,
        help="entries of the journal whose start-up check is timed (default 1,000,000)",
    )
    parser.add_argument("--dir", help="directory for the journal files (default: a tmp dir)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        run(True, directory=args.dir)
    else:
        writer_counts = [int(n) for n in args.writers.split(",")]
        run(
            entries=args.entries,
            writer_counts=writer_counts,
            startup_entries=args.startup_entries,
            directory=args.dir,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
