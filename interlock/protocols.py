"""The small interfaces the controller speaks to, one per instrument kind, and the
typed results that cross them. Drivers implement them and say so.

The controller never touches pyvisa or pyserial: any maker's supply, meter or
switch unit (or its simulated twin) fits behind these. A driver class names
the protocol it implements (``implements``) and the kind of instrument it
drives (``kind``); the registry (:mod:`interlock.drivers.registry`) finds
drivers through the ``interlock.drivers`` entry points.

Protocols::

    Instrument          open, close, is_open, identify -> Identified
    ├── PowerSupply     program and read back settings, outputs, protections, measure, poll
    ├── Meter           DC voltage and resistance
    └── SwitchUnit      relays by 1-based channel: set, open all, state
        └── RelayBank   a switch unit with its own rules: host watchdog, forbidden
                        combinations, E-stop, trips and events (the RB8 board)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from interlock.config import Identity
from interlock.dialects.model import Capabilities
from interlock.posted import Posted


@dataclass(frozen=True)
class Identified:
    """What an instrument answered when asked who it is."""

    maker: str
    model: str
    serial: str
    firmware: str

    @property
    def identity(self) -> Identity:
        return Identity(self.maker, self.model, self.serial)


@dataclass(frozen=True)
class Measured:
    """A supply channel's own measurement."""

    volts: float
    amps: float


@dataclass(frozen=True)
class Reading:
    """What the monitor reads of a live channel."""

    volts: float
    amps: float
    tripped: bool  # its over-voltage or over-current protection acted
    # Over-current protection still armed; None where the supply has none (the
    # monitor is then the only over-current protection).
    protected: bool | None


@dataclass(frozen=True)
class ChannelSettings:
    """Everything a supply holds for one channel."""

    voltage: float
    current_limit: float
    output: bool
    ovp: float | None  # None where the supply has no programmable level
    ocp: bool | None  # over-current protection armed; None where it has none
    tripped: bool  # its over-voltage or over-current protection
    range: str | None = None  # the output range it is in, where asked and it has several
    coupled: bool = False  # tracking on: a setpoint for it changes another channel's too


@dataclass(frozen=True)
class SwitchState:
    """What a switch unit reports: channel sets are 1-based. ``contacts`` is what its
    auxiliary contacts sense, or None where it has no contact sense."""

    commanded: frozenset[int]
    contacts: frozenset[int] | None

    @property
    def all_open(self) -> bool:
        return not self.commanded and not self.contacts


@runtime_checkable
class Instrument(Protocol):
    name: str
    kind: ClassVar[str]

    def open(self) -> None: ...

    def close(self) -> None: ...

    @property
    def is_open(self) -> bool: ...

    def identify(self) -> Identified: ...


@runtime_checkable
class PowerSupply(Instrument, Protocol):
    """A supply of one or more outputs; each setting is read back after it is set."""

    capabilities: Capabilities

    def program_voltage(self, channel: int, volts: float, **context: Any) -> float: ...

    def program_current_limit(self, channel: int, amps: float, **context: Any) -> float: ...

    def program_ovp(self, channel: int, volts: float, **context: Any) -> float: ...

    def select_range(self, channel: int, name: str, **context: Any) -> str: ...

    def enable_ocp(self, channel: int, **context: Any) -> bool: ...

    def set_output(self, channel: int, on: bool, **context: Any) -> bool: ...

    def outputs_off(self, channels: Sequence[int], **context: Any) -> list[bool]: ...

    def clear_protection(self, channel: int, **context: Any) -> None: ...

    def clear_trips(self, channels: Sequence[int], **context: Any) -> None: ...

    def lock_panel(self, locked: bool, **context: Any) -> None: ...

    def measure(self, channels: Sequence[int]) -> list[Measured]: ...

    def poll(self, channels: Sequence[int]) -> list[Reading]: ...

    def post_poll(
        self, channels: Sequence[int], between: Callable[[], None] | None = None
    ) -> Posted[list[Reading]]: ...

    def settings(
        self, channels: Sequence[int], *, ranges: bool = False, coupling: bool = False
    ) -> list[ChannelSettings]: ...


@runtime_checkable
class Meter(Instrument, Protocol):
    def check_setup(self) -> None:
        """SetupMismatch unless it is set up as bench.toml says (asked once it is
        known to be the one named)."""

    def measure_voltage(self, **context: Any) -> float: ...

    def measure_resistance(self, **context: Any) -> float: ...


@runtime_checkable
class SwitchUnit(Instrument, Protocol):
    """Relays by 1-based channel. ``contact_sense`` says whether ``state()`` reports the
    contacts themselves or only what was commanded."""

    contact_sense: bool

    def get_state(self) -> SwitchState: ...

    def set_relays(self, closed: Iterable[int], **context: Any) -> SwitchState: ...

    def open_all(self, **context: Any) -> SwitchState: ...


@runtime_checkable
class RelayBank(SwitchUnit, Protocol):
    """The interlock's relay board: a switch unit with its own rules and events."""

    on_event: Callable[[Any], None] | None

    def heartbeat(self) -> SwitchState: ...

    def reset_trip(self) -> SwitchState: ...

    def release(self) -> SwitchState: ...

    def load_forbidden(self, combinations: Iterable[Iterable[int] | int]) -> SwitchState: ...

    def set_watchdog(self, seconds: float) -> SwitchState: ...

    def next_event(self, timeout: float | None = None) -> Any: ...


# The protocol each kind of instrument implements.
PROTOCOLS: dict[str, type] = {"supply": PowerSupply, "meter": Meter, "switch": SwitchUnit}
