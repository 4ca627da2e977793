"""Prunes a journal in a loop: run as a script by the crash tests, then killed.

Usage: crash_pruner.py JOURNAL
"""

from __future__ import annotations

import sys
import time

from crash_writer import exit_with_parent  # the script's own directory is on sys.path

from interlock.journal import Journal
from interlock.journal.retention import RetentionPolicy, prune


def main() -> None:
    exit_with_parent()
    with Journal(sys.argv[1], bench="crash-bench", actor="pruner") as journal:
        policy = RetentionPolicy(max_entries=25, include_faulted=True)
        while True:
            report = prune(journal, policy)
            if report.entry is not None:
                print(f"pruned {report.removed}", flush=True)
            # Pruning is occasional in real use; back-to-back it would starve
            # the writer (SQLite's write lock is not fair).
            time.sleep(0.01)


if __name__ == "__main__":
    main()
