"""A simulated bench whose extra nets are wired straight through (benchmarks only).

``python -m benchmarks.simhost BENCH --hardwire P05 --hardwire P06 ...`` serves
the bench's simulated instruments like ``interlock sim start --json --ports
free`` (first stdout line: JSON with the resources and the control channel),
with the contacts of the named relays closed for good in the electrical
model. The monitor-scaling benchmark uses it for nets whose power relays
the 8-relay board does not have (added to a generated bench by
:func:`benchmarks.common.load_generated`): their supply outputs then reach
their loads, so they draw current like the nets behind real relays. Ends on
SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading

from benchmarks.common import load_generated
from interlock.sim.bench import SimulatedBench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench")
    parser.add_argument("--hardwire", action="append", default=[], metavar="RELAY")
    args = parser.parse_args(argv)
    bench = load_generated(args.bench).bench
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with SimulatedBench(bench, ports="free", control=True) as sim:
        for relay in args.hardwire:
            sim.electrical.set_relay(relay, True, bench.relays[relay].channel)
        print(json.dumps(sim.describe()), flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
