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
import threading
import time

from benchmarks.common import load_average, median, percentile, print_table
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


def _row(title: str, samples_s: list[float]) -> list[object]:
    ms = [s * 1000 for s in samples_s]
    return [title, len(ms), median(ms), percentile(ms, 99), min(ms), max(ms)]


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


def run(
    quick: bool = False,
    *,
    watchdog: str = "500 ms",
    wdt_trials: int | None = None,
    estop_trials: int | None = None,
    directory: str | None = None,  # unused: the board keeps nothing on disk
) -> dict[str, list[float]]:
    wdt_trials = wdt_trials or (2 if quick else 20)
    estop_trials = estop_trials or (10 if quick else 200)
    period = parse_quantity(watchdog, DURATION)
    print(load_average())
    with SimulatedRelayBoard(watchdog=watchdog) as sim:
        assert sim.port is not None
        watch = _AllOpen(sim)
        with RelayBoard(sim.port) as board:
            board.identify()
            estop = bench_estop(sim, board, watch, estop_trials)
            wdt = bench_watchdog(board, watch, wdt_trials, period)
    print(load_average())
    print_table(
        "Relay board firmware over the pty: time to all relays open",
        ["event", "n", "median ms", "p99 ms", "min ms", "max ms"],
        [
            _row("E-stop input -> all relays open", estop),
            _row(f"host silence -> all relays open (watchdog {watchdog})", wdt),
            _row("  of which beyond the watchdog period", [s - period for s in wdt]),
        ],
    )
    return {"estop": estop, "watchdog": wdt}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchdog", default="500 ms", help="host watchdog period")
    parser.add_argument("--wdt-trials", type=int, default=20)
    parser.add_argument("--estop-trials", type=int, default=200)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        run(True, watchdog=args.watchdog)
    else:
        run(watchdog=args.watchdog, wdt_trials=args.wdt_trials, estop_trials=args.estop_trials)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
