"""Time from host silence, and from E-stop, until all relays are open.

The real firmware runs in the simulated relay board on a pty; the host is
the interlock driver over pyserial. Times come from the board's ground
truth (the contact listener), so they include the firmware's loop, not the
host's view of it. Run:

    .venv/bin/python -m benchmarks.firmware_watchdog [--watchdog "500 ms"]
                                                     [--wdt-trials 20] [--estop-trials 200]

Host silence is measured from the moment the last heartbeat left the host
(its reply is awaited, so the board did get it), so the figure is the
watchdog period plus the firmware's reaction plus one serial hop;
"overshoot" is that minus the period. The simulated board runs on CPython
threads: a loaded machine shows in the tail. The load average is printed.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import threading
import time

from interlock.drivers.relay_board import RelayBoard
from interlock.sim.relay_board import SimulatedRelayBoard
from interlock.units import DURATION, parse_quantity


class _AllOpen:
    def __init__(self, sim: SimulatedRelayBoard) -> None:
        self.event = threading.Event()
        self.at = 0.0
        sim.add_listener(self._changed)

    def _changed(self, contacts: list[bool], at: float) -> None:
        if not any(contacts):
            self.at = at
            self.event.set()

    def arm(self) -> None:
        self.event.clear()

    def wait(self, timeout: float) -> float:
        if not self.event.wait(timeout):
            raise RuntimeError(f"relays still closed after {timeout} s")
        return self.at


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def _report(title: str, samples_s: list[float]) -> None:
    ms = [s * 1000 for s in samples_s]
    print(
        f"{title}: n={len(ms)}  median {statistics.median(ms):.2f} ms  "
        f"p99 {_p99(ms):.2f} ms  min {min(ms):.2f} ms  max {max(ms):.2f} ms"
    )


def bench_watchdog(board: RelayBoard, watch: _AllOpen, trials: int, period: float) -> list[float]:
    samples = []
    for _ in range(trials):
        board.reset_trip()
        board.set_relays(0xFF)
        watch.arm()
        silent_from = time.monotonic()
        board.heartbeat()
        samples.append(watch.wait(period * 4 + 1) - silent_from)
        while board.get_state().trip_cause != "WDT":
            time.sleep(0.001)
    return samples


def bench_estop(
    sim: SimulatedRelayBoard, board: RelayBoard, watch: _AllOpen, trials: int
) -> list[float]:
    samples = []
    for _ in range(trials):
        board.reset_trip()
        board.set_relays(0xFF)
        watch.arm()
        pressed = time.monotonic()
        sim.press_estop()
        samples.append(watch.wait(1.0) - pressed)
        sim.release_estop()
        while board.get_state().estop_active:
            time.sleep(0.001)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchdog", default="500 ms", help="host watchdog period")
    parser.add_argument("--wdt-trials", type=int, default=20)
    parser.add_argument("--estop-trials", type=int, default=200)
    args = parser.parse_args(argv)
    period = parse_quantity(args.watchdog, DURATION)
    with SimulatedRelayBoard(watchdog=args.watchdog) as sim:
        assert sim.port is not None
        watch = _AllOpen(sim)
        with RelayBoard(sim.port) as board:
            board.identify()
            estop = bench_estop(sim, board, watch, args.estop_trials)
            wdt = bench_watchdog(board, watch, args.wdt_trials, period)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    _report("E-stop -> all relays open", estop)
    _report(f"host silence -> all relays open (watchdog {args.watchdog})", wdt)
    _report("  watchdog overshoot", [s - period for s in wdt])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
