"""Time from a kill -9 of the service to every supply output off, through its guardian.

Real processes, as a bench runs them: the simulated bench (a process of its
own), ``interlock serve`` (with its guardian), and this one as the operator's
client. Each trial brings three nets live, welds the relay of one of them
(so the board's watchdog cannot disconnect it), kills the service with
SIGKILL and reads, from the simulator's ground truth, when each supply
output went off. Time 0 is just before the signal is sent. Then it starts
the service again, which finds the board's watchdog latched and the
guardian's record, and resets (operator). Run::

    .venv/bin/python -m benchmarks.guardian [--trials 20]

Bar (the issue): every supply output off within 1 s of the service's death.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import load_average, median, percentile, print_table

ROOT = Path(__file__).resolve().parents[1]
BAR_S = 1.0
TRIALS = 20


def _bench_copy(directory: Path) -> Path:
    text = (ROOT / "bench.toml").read_text(encoding="utf-8")
    text = text.replace('profile = "profiles/', f'profile = "{ROOT}/profiles/')
    for key, value in (
        ("socket", "interlock.sock"),
        ("journal", "journal.sqlite"),
        ("tokens", "tokens"),
    ):
        text = re.sub(rf'(?m)^{key} = "[^"]*"', f'{key} = "{value}"', text)
    path = directory / "bench.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _serve(bench: Path, log: Path) -> subprocess.Popen[Any]:
    from interlock.config import load_bench
    from interlock.service.background import answers

    socket_path = load_bench(bench).service.socket
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "interlock", "serve", "--bench", str(bench)],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while not answers(socket_path):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the service did not start: see {log}")
        time.sleep(0.05)
    return proc


def _outputs_on(sim: Any) -> bool:
    return any(ch["output"] for ch in sim.truth()["supplies"]["psu"].values())


def trial(bench: Path, sim: Any, log: Path) -> float:
    """One kill; seconds from the signal to the last supply output off."""
    import interlock

    proc = _serve(bench, log)
    try:
        with interlock.connect(bench, role="operator", start=False) as client:
            if client.status()["state"] == "fault":
                client.reset()
            client.lease().acquire()
            client.arm()
            for net, volts in (("VLOGIC", 5.0), ("VBUS", 4.0), ("MOTOR", 3.0)):
                client.set_current_limit(net, 0.3)
                client.set_voltage(net, volts)
                client.output_on(net)
            sim.inject("weld:K1")
            killed = time.monotonic()
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            deadline = time.monotonic() + 10
            while _outputs_on(sim):
                if time.monotonic() > deadline:
                    raise RuntimeError("supply outputs still on 10 s after the kill")
                time.sleep(0.005)
            with contextlib.suppress(Exception):
                client.close()  # its lease and connections went with the service
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    offs = [
        change.monotonic
        for change in sim.history("VLOGIC", seconds=30).changes
        if change.kind == "supply"
        and change.data["field"] == "output"
        and not change.data["new"]
        and change.monotonic >= killed
    ]
    sim.clear()
    return max(offs) - killed


def run(quick: bool = False, directory: str | None = None, trials: int | None = None) -> None:
    from interlock.config import load_bench
    from interlock.sim.client import SimulatorClient
    from interlock.sim.process import ensure_simulator, stop_simulator

    count = trials or (3 if quick else TRIALS)
    work = Path(tempfile.mkdtemp(prefix="ilk-g-", dir=directory or "/tmp"))
    bench = _bench_copy(work)
    description = load_bench(bench)
    ensure_simulator(description)
    try:
        sim = SimulatorClient.of_bench(description)
        times = [trial(bench, sim, work / "serve.log") for _ in range(count)]
    finally:
        stop_simulator(description)
        shutil.rmtree(work, ignore_errors=True)
    print_table(
        f"kill -9 of the service to every supply output off ({count} trials, 3 nets live, "
        f"one relay welded; {load_average()})",
        ["median ms", "p99 ms", "max ms", "bar ms"],
        [[median(times) * 1e3, percentile(times, 99) * 1e3, max(times) * 1e3, BAR_S * 1e3]],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=TRIALS)
    parser.add_argument("--dir", help="directory for the bench's files (default: /tmp)")
    args = parser.parse_args(argv)
    run(trials=args.trials, directory=args.dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
