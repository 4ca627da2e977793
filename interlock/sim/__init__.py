"""The simulated bench: instruments, relay board and DUT behind real transports.

SCPI instruments serve raw sockets on 127.0.0.1 (pyvisa-py reaches them as
``TCPIP::127.0.0.1::PORT::SOCKET``), the relay board runs the real firmware on
a pseudo-terminal, and an electrical model of the DUT keeps them consistent.
Faults can be injected at start or at run time; the ground truth records what
every DUT net really saw.

Modules, one job each: ``scpi`` (parser, error queue), ``instrument`` (what
all SCPI models share), ``psu`` and ``dmm`` (the models), ``dut`` (the pure
electrical model), ``electrical`` (its thread-safe facade: relays, outputs,
loads), ``server`` (one instrument on a TCP port), ``faults`` (SPEC syntax),
``truth`` (ground truth), ``control`` (the control channel), ``bench``
(assembly), ``relay_board`` (the firmware on a pty), ``pytest_fixtures``;
and the simulator as a process of its own: ``host`` (serving it where the
bench's service finds it), ``process`` (finding, starting, stopping it),
``client`` (reaching it from another process), ``render`` (its truth as
text).
"""

from interlock.sim.bench import SimulatedBench
from interlock.sim.client import SimulatorClient
from interlock.sim.faults import Fault, parse_fault
from interlock.sim.relay_board import SimulatedRelayBoard
from interlock.sim.truth import GroundTruth

__all__ = [
    "Fault",
    "GroundTruth",
    "SimulatedBench",
    "SimulatedRelayBoard",
    "SimulatorClient",
    "parse_fault",
]
