"""Exit codes shared by every command, and which error ends a command with which.

0 pass, 1 a measurement failed, 2 config or usage error, 3 refused by the
interlock, 4 fault (instrument, journal, latched fault, no service), 130
interrupted (Ctrl-C, or SIGTERM or SIGHUP during a run: the bench driven safe first,
where a command had it).

One mapping for every command: a refusal is a refusal whether ``arm`` or
``run`` met it. Imported by :mod:`interlock.cli`, by the command modules and
by the sequence runner (a run's report carries its exit code); it imports
nothing of theirs, so the arrows point one way.
"""

from __future__ import annotations

from interlock.errors import (
    AccessDenied,
    ConfigError,
    InterlockError,
    InvalidArgument,
    InvalidRequest,
    LimitViolation,
    StateError,
)

EXIT_PASS = 0
EXIT_MEASUREMENT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_FAULT = 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it

#: What each code means, as the README's table says it (``--help`` shows it too).
MEANINGS = {
    EXIT_PASS: "pass",
    EXIT_MEASUREMENT_FAILED: "a measurement failed (or an operator declined a prompt)",
    EXIT_USAGE: "configuration or usage error",
    EXIT_REFUSED: "refused by the interlock (a limit, the state, the role)",
    EXIT_FAULT: "fault (instrument, journal, latched fault, no service)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C; SIGTERM or SIGHUP during a run)",
}


def exit_code_for(error: InterlockError) -> int:
    """A command ended by ``error``.

    A configuration error, a bad argument or a malformed request 2; the
    interlock's refusals (a limit, an operation the state or the role does not
    allow) 3; anything else (a latched fault, an instrument, the journal, no
    service) 4.
    """
    if isinstance(error, ConfigError | InvalidArgument | InvalidRequest):
        return EXIT_USAGE
    if isinstance(error, LimitViolation | StateError | AccessDenied):
        return EXIT_REFUSED
    return EXIT_FAULT


#: An operator's request to the service ended by an error: the same mapping as any command's.
request_exit_code = exit_code_for


__all__ = [
    "EXIT_FAULT",
    "EXIT_INTERRUPTED",
    "EXIT_MEASUREMENT_FAILED",
    "EXIT_PASS",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "MEANINGS",
    "exit_code_for",
    "request_exit_code",
]
