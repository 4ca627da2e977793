"""A real run that trips, written by the service on the simulated bench.

The sequence sets, ramps and measures; it is refused once, as it expects;
one measurement fails its window; at the prompt the bus is shorted, the
supply's protection trips and the bench faults; the next step finds the
fault and the run stops.
The post-mortem tests read its journal.
"""

from __future__ import annotations

import time
from pathlib import Path

from interlock.config import load_configuration
from interlock.sequence import SequenceRunner, bind, in_process_service, load_sequence
from interlock.sequence.runner import RunReport
from interlock.sim.bench import SimulatedBench
from tests.sequence.conftest import HEADER, ROOT_BENCH

STEPS = """
[[steps]]
action = "set"
net = "VLOGIC"
current_limit = "250 mA"
[[steps]]
label = "logic at 5 V"
action = "set"
net = "VLOGIC"
voltage = "5 V"
[[steps]]
action = "output"
net = "VLOGIC"
state = "on"
[[steps]]
action = "set"
net = "VLOGIC"
voltage = "9 V"
expect = "refused"
[[steps]]
label = "a window no board meets"
action = "measure"
net = "VLOGIC"
quantity = "current"
max = "1 mA"
[[steps]]
action = "set"
net = "VBUS"
current_limit = "300 mA"
[[steps]]
action = "set"
net = "VBUS"
voltage = "4 V"
[[steps]]
action = "output"
net = "VBUS"
state = "on"
[[steps]]
label = "bus up"
action = "ramp"
net = "VBUS"
to = "8 V"
[[steps]]
action = "prompt"
message = "short the bus"
[[steps]]
label = "soak"
action = "wait"
duration = "5 s"
[[steps]]
action = "output"
net = "VBUS"
state = "off"
"""

#: How long the controller may take to see the short (its monitor's pass, on a loaded machine).
TRIP_WAIT = 10.0


def run_that_trips(directory: Path) -> tuple[RunReport, Path]:
    """Run the sequence; returns its report and the journal's path."""
    configuration = load_configuration(ROOT_BENCH)
    path = directory / "sequence.toml"
    path.write_text(HEADER + STEPS, encoding="utf-8")
    sequence = bind(load_sequence(path), configuration)
    journal = directory / "journal.sqlite"
    with (
        SimulatedBench(configuration.bench, ports="free") as simulator,
        in_process_service(configuration, simulator=simulator, journal_path=journal) as target,
    ):

        def short_the_bus(step) -> bool:
            simulator.inject("short:VBUS")
            deadline = time.monotonic() + TRIP_WAIT
            while not target.status().get("fault"):
                assert time.monotonic() < deadline, "the bench did not trip on the short"
                time.sleep(0.02)
            return True

        runner = SequenceRunner(
            sequence, configuration, target, operator="tester", confirm=short_the_bus
        )
        report = runner.run()
    return report, journal
