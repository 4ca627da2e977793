"""Run the benchmarks, each printing its table: ``python -m benchmarks [--quick] [--only NAME]``.

Everything runs against the simulated bench (1 ms instrument latency) over
loopback and pseudo-terminals, and stops by itself. ``--quick`` runs each
benchmark scaled down (seconds, not minutes): a check that they work, not
figures to quote. The figures depend on the machine and on its load: the
load average is printed around each benchmark; compare ratios measured in
the same run rather than absolute times across runs.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import load_average

# name -> (module, what it measures); run in this order.
BENCHMARKS = {
    "overhead": ("benchmarks.overhead", "overhead per checked setpoint change"),
    "time_to_safe": ("benchmarks.time_to_safe", "time to safe state, 4 live nets"),
    "estop_flood": ("benchmarks.estop_flood", "emergency stop under a flood of requests"),
    "estop_exec": ("benchmarks.estop_exec", "interlock estop from exec to the stop journaled"),
    "monitor_scaling": ("benchmarks.monitor_scaling", "monitor poll rate against live nets"),
    "journal_throughput": ("benchmarks.journal_throughput", "durable journal entries per second"),
    "memory": ("benchmarks.memory", "service resident memory over a long run"),
    "firmware_watchdog": ("benchmarks.firmware_watchdog", "relay board watchdog and E-stop"),
    "guardian": ("benchmarks.guardian", "kill -9 of the service to supplies off"),
    "under_load": ("benchmarks.under_load", "no false trips beside CPU-bound processes"),
}


def _revision() -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        return subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="scaled down: seconds, not minutes")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--dir", help="directory for journals and run files (default: tmp)")
    args = parser.parse_args(argv)
    names = [n for n in BENCHMARKS if not args.only or n in args.only]
    started = time.monotonic()
    print(
        f"# interlock benchmarks{' (quick)' if args.quick else ''}: "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, revision {_revision()}, "
        f"Python {platform.python_version()}, {load_average()}",
        flush=True,
    )
    failed = []
    for name in names:
        module, what = BENCHMARKS[name]
        print(f"\n## {name}: {what}\n", flush=True)
        begun = time.monotonic()
        try:
            importlib.import_module(module).run(args.quick, directory=args.dir)
        except Exception as error:  # one broken benchmark must not hide the others' figures
            failed.append(name)
            print(f"{name} FAILED: {type(error).__name__}: {error}", flush=True)
        print(f"({name}: {time.monotonic() - begun:.0f} s)", flush=True)
    print(f"\nall done in {time.monotonic() - started:.0f} s; {load_average()}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
