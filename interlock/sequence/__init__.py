"""Sequences: TOML files of steps, a dry run that sends nothing, and a runner.

- :mod:`.model`: the file format and its loader (errors name file and key).
- :mod:`.binding`: the sequence held against a bench (right DUT, known nets and relays).
- :mod:`.dryrun`: every step checked with the pure limit engine, on a simulated clock.
- :mod:`.target`: the small interface a run drives: a service, through the client library.
- :mod:`.runner`: the real run, its outcomes and exit codes.
"""

from interlock.sequence.binding import bind, check_profile
from interlock.sequence.dryrun import DryRunReport, StepCheck, armed_state, dry_run
from interlock.sequence.model import Sequence, Step, load_sequence
from interlock.sequence.runner import RunObserver, RunReport, SequenceRunner, StepResult
from interlock.sequence.target import (
    ClientTarget,
    Target,
    in_process_service,
    service_client,
)

__all__ = [
    "ClientTarget",
    "DryRunReport",
    "RunObserver",
    "RunReport",
    "Sequence",
    "SequenceRunner",
    "Step",
    "StepCheck",
    "StepResult",
    "Target",
    "armed_state",
    "bind",
    "check_profile",
    "dry_run",
    "in_process_service",
    "load_sequence",
    "service_client",
]
