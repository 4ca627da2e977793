"""Time to the safe state: injected short -> all outputs off, and
emergency-stop request -> all outputs off, on the simulated bench.

"All outputs off" is read from the simulator's ground truth: the moment the
supply received the line that turned its last live output off. Run:

    .venv/bin/python -m benchmarks.time_to_safe [--trials 50] [--monitor-period "50 ms"]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from interlock.config import load_configuration
from interlock.controller import Controller
from interlock.journal import Journal
from interlock.sim.bench import SimulatedBench
from interlock.units import DURATION, parse_quantity

ROOT = Path(__file__).resolve().parents[1]


def outputs_off_at(sim: SimulatedBench, after: float) -> float | None:
    """When the supply received the first all-off line after ``after`` (ground truth)."""
    for command in sim.truth()["instruments"]["psu"]["commands"]:
        if command["monotonic"] >= after and command["line"].startswith("OUTP OFF"):
            return command["monotonic"]
    return None


def power_up(ctl: Controller) -> None:
    ctl.set_voltage("VLOGIC", 5.0)
    ctl.output_on("VLOGIC")
    ctl.set_voltage("VBUS", 4.0)
    ctl.output_on("VBUS")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run(trials: int, monitor_period: float) -> dict[str, list[float]]:
    configuration = load_configuration(ROOT / "bench.toml")
    results: dict[str, list[float]] = {"estop": [], "short": []}
    with (
        tempfile.TemporaryDirectory() as tmp,
        SimulatedBench(configuration.bench, ports="free") as sim,
        Journal(Path(tmp) / "journal.sqlite", bench=configuration.bench.name) as journal,
    ):
        ctl = Controller(
            configuration, journal, resources=sim.resources, monitor_period=monitor_period
        )
        ctl.connect()
        try:
            for kind in ("estop", "short"):
                for _ in range(trials):
                    ctl.arm("benchmark")
                    power_up(ctl)
                    start = time.monotonic()
                    if kind == "estop":
                        ctl.emergency_stop("benchmark")
                    else:
                        sim.inject("short:VBUS")
                        while ctl.state != "fault":
                            time.sleep(0.001)
                    off = outputs_off_at(sim, start)
                    if off is not None:
                        results[kind].append(off - start)
                    sim.clear()
                    ctl.reset("benchmark")
        finally:
            ctl.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--monitor-period", default="50 ms")
    args = parser.parse_args()
    period = parse_quantity(args.monitor_period, DURATION)
    results = run(args.trials, period)
    print(f"time to all outputs off, {args.trials} trials each, monitor period {period * 1e3:g} ms")
    print(f"{'event':<8} {'n':>4} {'median ms':>10} {'p99 ms':>8} {'max ms':>8}")
    for kind, values in results.items():
        ms = [v * 1e3 for v in values]
        print(
            f"{kind:<8} {len(ms):>4} {statistics.median(ms):>10.2f} "
            f"{percentile(ms, 99):>8.2f} {max(ms):>8.2f}"
        )


if __name__ == "__main__":
    main()
