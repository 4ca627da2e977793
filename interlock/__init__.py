"""interlock: a safety interlock controller for hardware test benches.

It sits between test scripts and bench instruments, checks every commanded
voltage, current or relay change against the DUT's limit profile before
anything is sent, and reads back what the instruments report before any
output goes live.
"""

from interlock.errors import (
    AccessDenied,
    ConfigError,
    ConnectionLost,
    FaultLatched,
    IdentityMismatch,
    InstrumentError,
    InstrumentTimeout,
    InterlockError,
    InvalidArgument,
    InvalidRequest,
    JournalCorrupt,
    JournalError,
    LimitViolation,
    ProtocolError,
    QuantityError,
    ReadbackMismatch,
    ServiceUnavailable,
    SetupMismatch,
    SimulatorError,
    StateError,
)

__version__ = "0.1.0"


#: The client library's faces, imported when first asked for (see ``__getattr__``).
_CLIENT = ("AsyncClient", "Client", "connect", "connect_async")


def __getattr__(name: str) -> object:
    # Lazy, so that ``import interlock`` (every tool, every subprocess) stays free of HTTP.
    if name in _CLIENT:
        import interlock.client

        return getattr(interlock.client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AccessDenied",
    "AsyncClient",
    "Client",
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
    "__version__",
    "connect",
    "connect_async",
]
