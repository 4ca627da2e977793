"""The one exception hierarchy of interlock.

Every error the package raises derives from :class:`InterlockError`, so a
caller (the CLI, the service, a test script) can catch the root and still
tell the kinds apart::

    InterlockError
    ├── ConfigError            bad bench.toml / profile / sequence: names file and key
    ├── LimitViolation         a request refused by the limit engine: names the rule
    ├── InstrumentError        anything that went wrong talking to an instrument
    │   ├── InstrumentTimeout      no (complete) reply in time
    │   ├── ConnectionLost         transport closed, refused or unplugged
    │   ├── ProtocolError          a reply that is garbage, malformed or NAKed
    │   ├── IdentityMismatch       *IDN? / identify differs from bench.toml
    │   ├── SetupMismatch          set up otherwise than bench.toml says (a meter's rear inputs)
    │   └── ReadbackMismatch       the instrument does not hold what was commanded
    ├── FaultLatched           the bench is in a latched fault; only an operator reset clears it
    ├── StateError             an operation not allowed in the current state
    ├── JournalError           the journal cannot be written or read
    │   └── JournalCorrupt         the hash chain is broken (edited, removed, reordered, cut, wiped)
    ├── SimulatorError         the simulated bench could not do what was asked
    ├── AccessDenied           the service refused: no valid token, or the role may not
    ├── ServiceUnavailable     no controller service answers where the bench says
    ├── InvalidRequest         a malformed request to the service
    │   └── LineTooLong            a command channel line over its bound (interlock.service.wire)
    └── InvalidArgument        a call's argument of a wrong type or out of range (a ValueError too)
        └── QuantityError          a text that is not a quantity of the expected dimension

Lower-layer errors (pyvisa, pyserial, sqlite3, OSError) are translated with
``raise ... from exc`` at the layer that owns the resource, never let through.
A library call given a bad argument (a driver's, the simulator's, a unit's
parser) raises :class:`InvalidArgument`, never a bare ``ValueError``; it is a
``ValueError`` as well, Python's word for a bad value, so that a caller
written against that convention still catches it. ``tests/test_error_tree.py``
lists the few bare ``raise ValueError(...)`` left and why no caller sees them.
"""

from __future__ import annotations


class InterlockError(Exception):
    """Root of every error raised by interlock."""


class ConfigError(InterlockError):
    """A configuration file is invalid.

    The message always names the file and the key path, for example
    ``profiles/motor_drive.toml: nets.VBUS.max_voltage: expected a voltage, got "12"``.
    """

    def __init__(self, file: str, key: str, problem: str) -> None:
        self.file = str(file)
        self.key = key
        self.problem = problem
        location = f"{self.file}: {key}" if key else self.file
        super().__init__(f"{location}: {problem}")


class LimitViolation(InterlockError):
    """A requested change was refused by the limit engine.

    ``rule`` is the identifier of the rule that refused it (e.g.
    ``nets.VBUS.max_voltage``) and ``where`` the place it is defined
    (``profiles/motor_drive.toml: nets.VBUS.max_voltage``).
    """

    def __init__(self, reason: str, rule: str, where: str) -> None:
        self.reason = reason
        self.rule = rule
        self.where = where
        super().__init__(f"refused by {rule} ({where}): {reason}")


class InstrumentError(InterlockError):
    """Talking to an instrument failed. ``instrument`` names it as in bench.toml."""

    def __init__(self, instrument: str, message: str) -> None:
        self.instrument = instrument
        super().__init__(f"{instrument}: {message}")


class InstrumentTimeout(InstrumentError):
    """The instrument did not answer (completely) within its timeout."""


class ConnectionLost(InstrumentError):
    """The connection to the instrument was refused, closed or broken."""


class ProtocolError(InstrumentError):
    """The instrument answered with something that cannot be trusted."""


class IdentityMismatch(InstrumentError):
    """The instrument (or DUT) is not the one bench.toml expects."""

    def __init__(self, instrument: str, expected: str, seen: str) -> None:
        self.expected = expected
        self.seen = seen
        super().__init__(instrument, f"identity mismatch: expected {expected}, seen {seen}")


class SetupMismatch(InstrumentError):
    """The instrument is set up otherwise than bench.toml says (a meter reading the inputs
    on the other side of its front/rear switch, where nothing is wired)."""


class ReadbackMismatch(InstrumentError):
    """The value read back differs from the commanded one beyond tolerance."""


class FaultLatched(InterlockError):
    """The bench is in a latched fault; only an operator reset clears it."""

    @classmethod
    def on_bench(cls, bench: str, cause: str) -> FaultLatched:
        """Refused because of the latch: what it is, and who clears it how."""
        return cls(
            f"bench {bench} is in a latched fault: {cause} (an operator clears it with "
            "`interlock reset` once its cause is dealt with)"
        )


class StateError(InterlockError):
    """The operation is not allowed in the controller's current state."""


class JournalError(InterlockError):
    """The journal could not be written or read."""


class JournalCorrupt(JournalError):
    """The journal's hash chain is broken at ``seq``, or its witness says entries are missing."""

    def __init__(self, seq: int | None, message: str) -> None:
        self.seq = seq
        super().__init__(message)


class SimulatorError(InterlockError):
    """The simulated bench could not do what was asked."""


class AccessDenied(InterlockError):
    """The service refused the request: no valid token, or the role may not do this."""

    def __init__(self, message: str, *, role: str | None = None, needs: str | None = None) -> None:
        self.role = role
        self.needs = needs
        super().__init__(message)


class ServiceUnavailable(InterlockError):
    """No controller service answers where the bench says it listens."""


class InvalidRequest(InterlockError):
    """The request was malformed (a missing field, a string where a number belongs)."""


class InvalidArgument(InterlockError, ValueError):
    """An argument of a library call is of the wrong type or out of range; the message names it.

    For example ``set_watchdog: must be 0.05..5 s, got 7.0`` from the relay board's driver.
    """


class QuantityError(InvalidArgument):
    """A text is not a quantity of the expected dimension (the message says why).

    Raised by :func:`interlock.units.parse_quantity`; the configuration's loaders
    turn it into a :class:`ConfigError` naming the file and the key.
    """


__all__ = [
    "AccessDenied",
    "ConfigError",
    "ConnectionLost",
    "FaultLatched",
    "IdentityMismatch",
    "InstrumentError",
    "InstrumentTimeout",
    "InterlockError",
    "InvalidArgument",
    "InvalidRequest",
    "JournalCorrupt",
    "JournalError",
    "LimitViolation",
    "ProtocolError",
    "QuantityError",
    "ReadbackMismatch",
    "ServiceUnavailable",
    "SetupMismatch",
    "SimulatorError",
    "StateError",
]
