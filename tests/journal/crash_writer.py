"""A journal writer to be killed: run as a script by the crash tests.

Usage: crash_writer.py JOURNAL WIRE_FILE NAME [THREADS] [PAUSE_S]

Appends command intents as fast as it can, from THREADS threads. For each
one it prints ``durable <seq>`` once the intent is committed, then "sends"
the bytes by appending them to WIRE_FILE (the stand-in for a serial port),
then prints ``sent <seq>``. The test kills it with SIGKILL at a random
moment and checks that everything on the wire is in the journal. PAUSE_S
between commands leaves the write lock free now and then, as a controller
does; back to back, it would hold off other processes (SQLite's write lock is
not fair).

With DIE_BEFORE_WITNESS=N in its environment it kills itself (SIGKILL) at its
Nth commit, after the commit and before the witness write that follows it:
the one moment a crash leaves the witness behind the database.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import threading
import time

from interlock.journal import Journal, JournaledWriter
from interlock.journal.witness import Witness


def exit_with_parent() -> None:
    """Stop when the test that started this process is gone (no orphan loops)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def die_before_witness(commits: int) -> None:
    advance = Witness.advance
    counted = itertools.count(1)

    def advance_or_die(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if next(counted) >= commits:
            os.kill(os.getpid(), signal.SIGKILL)
        return advance(self, *args, **kwargs)

    Witness.advance = advance_or_die  # type: ignore[method-assign]


def main() -> None:
    exit_with_parent()
    if "DIE_BEFORE_WITNESS" in os.environ:
        die_before_witness(int(os.environ["DIE_BEFORE_WITNESS"]))
    journal_path, wire_path, name = sys.argv[1:4]
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    pause = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    journal = Journal(journal_path, bench="crash-bench", actor=name)
    wire_fd = os.open(wire_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    wire = JournaledWriter("psu", lambda data: os.write(wire_fd, data))
    print_lock = threading.Lock()

    def say(line: str) -> None:
        with print_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def burst(worker: int) -> None:
        n = 0
        while True:
            n += 1
            if worker == 0 and n % 10 == 1:
                # Short runs, so retention (see crash_pruner.py) has whole runs to remove.
                journal.begin_run(f"run-{name}-{n // 10}")
            # Unique bytes per command, so each line on the wire names its entry.
            data = f"VOLT {n % 30}.{worker},(@1);*OPC {name}/{worker}/{n}\n".encode()
            intent = journal.command_intent("psu", data, net="VBUS", quantity="voltage")
            say(f"durable {intent.seq}")
            wire.send(intent)
            say(f"sent {intent.seq}")
            journal.measurement("VBUS", voltage=float(n % 30), current=0.1)
            if pause:
                time.sleep(pause)

    workers = [threading.Thread(target=burst, args=(w,), daemon=True) for w in range(threads)]
    for worker in workers:
        worker.start()
    say("ready")
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    main()
