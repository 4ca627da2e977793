"""Exit codes shared by every command, and which error ends a command with which.

0 pass, 1 a measurement failed, 2 config or usage error, 3 refused by the
interlock, 4 fault (instrument, journal, latched fault, no service).

Imported by :mod:`interlock.cli`, by the command modules and by the sequence
runner (a run's report carries its exit code); it imports nothing of theirs,
so the arrows point one way.
"""

from __future__ import annotations

from interlock.errors import (
    AccessDenied,
    ConfigError,
    FaultLatched,
    InterlockError,
    InvalidArgument,
    LimitViolation,
    StateError,
)

EXIT_PASS = 0
EXIT_MEASUREMENT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_FAULT = 4


def exit_code_for(error: InterlockError) -> int:
    """A command ended by ``error``: a configuration error or a bad argument 2, a limit's
    refusal 3, anything else 4."""
    if isinstance(error, ConfigError | InvalidArgument):
        return EXIT_USAGE
    if isinstance(error, LimitViolation):
        return EXIT_REFUSED
    return EXIT_FAULT


def request_exit_code(error: InterlockError) -> int:
    """An operator's request to the service ended by ``error``.

    The service's refusals (access, state, limits) exit 3; a latched fault, an
    instrument or a missing service 4; a configuration error (a token file
    open to others, say) 2, as everywhere.
    """
    if isinstance(error, FaultLatched):
        return EXIT_FAULT
    if isinstance(error, AccessDenied | StateError | LimitViolation):
        return EXIT_REFUSED
    return exit_code_for(error)


__all__ = [
    "EXIT_FAULT",
    "EXIT_MEASUREMENT_FAILED",
    "EXIT_PASS",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "exit_code_for",
    "request_exit_code",
]
