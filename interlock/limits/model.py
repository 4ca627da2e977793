"""What the limit engine reasons about: the pinned limits, the commanded state,
requests and verdicts. Data only; the rules are in :mod:`.requests`,
:mod:`.ramps` and :mod:`.measurements`.

The configuration builds these (:mod:`interlock.config`) and imports them
from here: the engine never imports the configuration.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from interlock.engineering import amount
from interlock.errors import LimitViolation

BUILT_IN = "interlock built-in rule"

# A read-back current limit is within the relative tolerance, and at least this far
# from the command: the programming resolution of every supply in interlock/catalog.py.
CURRENT_READBACK_RESOLUTION = 1e-3  # A


# --- a DUT's limits, as a profile states them --------------------------------------


@dataclass(frozen=True)
class SafeToMate:
    """What a net must look like, measured with its supply disconnected, before it is energised."""

    min_resistance: float
    max_resistance: float
    max_stray_voltage: float


@dataclass(frozen=True)
class NetLimits:
    net: str
    min_voltage: float
    max_voltage: float
    max_current: float
    max_slew: float
    max_step: float
    readback_absolute: float
    readback_relative: float
    settle_time: float
    live_min_current: float
    live_max_current: float
    safe_to_mate: SafeToMate
    # The capabilities the net's supply must have (ovp, ocp, ...); None: the protections
    # the wired supply has (the configuration resolves it at load).
    require: tuple[str, ...] | None = None

    def readback_tolerance(self, commanded: float) -> float:
        """How far a read-back voltage may be from ``commanded`` (absolute + relative)."""
        return self.readback_absolute + self.readback_relative * abs(commanded)

    def current_tolerance(self, commanded: float) -> float:
        """How far a read-back current limit may be: the relative tolerance, and at least
        a supply's programming resolution."""
        return max(CURRENT_READBACK_RESOLUTION, self.readback_relative * abs(commanded))


@dataclass(frozen=True)
class DutIdentity:
    """The DUT's identity check: its ID resistor on ``net`` must measure inside the window.

    ``max_stray_voltage`` is what the ID net may carry before its resistance is
    measured; None when the profile does not say (then the engine's default).
    """

    net: str
    min_resistance: float
    max_resistance: float
    max_stray_voltage: float | None = None


# --- the pinned limits ---------------------------------------------------------


@dataclass(frozen=True)
class RelayGroupRule:
    """No two of ``relays`` may be closed at once."""

    rule: str
    where: str
    relays: frozenset[str]
    reason: str


@dataclass(frozen=True)
class OpenBeforeChangeRule:
    """All of ``relays`` must be open before ``net`` changes."""

    rule: str
    where: str
    net: str
    relays: frozenset[str]
    reason: str


@dataclass(frozen=True)
class PinnedLimits:
    """Everything the engine needs, resolved from bench.toml and the profile."""

    nets: Mapping[str, NetLimits]
    relays: frozenset[str]
    power_relays: Mapping[str, str]  # net -> relay feeding it
    never_together: tuple[RelayGroupRule, ...]
    open_before_change: tuple[OpenBeforeChangeRule, ...]
    power_on: tuple[str, ...]
    power_off: tuple[str, ...]
    max_total_power: float
    profile_file: str  # as shown in refusals, e.g. "profiles/mdb24.toml"
    bench_file: str
    # Per net: the lowest current limit its supply channel can regulate at, and what
    # that channel is ("E36312A CH1"). A supply refuses less and keeps its old value.
    supply_floors: Mapping[str, tuple[float, str]] = field(default_factory=dict)
    # Per net: the over-voltage protection the supply is programmed to at arming.
    ovp_levels: Mapping[str, float] = field(default_factory=dict)
    # Per net on a supply channel with output ranges: the range selected at arming,
    # before anything else is programmed on it (the first that covers its limits).
    supply_ranges: Mapping[str, str] = field(default_factory=dict)
    # The DUT's identity check, if the profile has one.
    identity: DutIdentity | None = None
    # What a wired supply channel of no net in the profile may show with its output
    # off ([rules] unlisted_max_stray_voltage); None: the engine's default.
    unlisted_max_stray_voltage: float | None = None

    def where(self, key: str) -> str:
        return f"{self.profile_file}: {key}"


# --- the commanded state -----------------------------------------------------------


@dataclass(frozen=True)
class NetState:
    voltage: float = 0.0  # programmed setpoint, V
    current_limit: float = 0.0  # programmed current limit, A
    output: bool = False
    changed_at: float = -math.inf  # monotonic time of the last live voltage change
    on_at: float = -math.inf  # monotonic time the output last went on (off -> on)


@dataclass(frozen=True)
class BenchState:
    nets: Mapping[str, NetState] = field(default_factory=dict)
    closed_relays: frozenset[str] = frozenset()

    def net(self, name: str) -> NetState:
        return self.nets.get(name, _UNPROGRAMMED)

    def with_net(self, name: str, net_state: NetState) -> BenchState:
        return self.__class__({**self.nets, name: net_state}, self.closed_relays)

    @property
    def live_nets(self) -> list[str]:
        return [name for name, net in self.nets.items() if net.output]


SAFE_STATE = BenchState()
# What a net never programmed holds (immutable, so one instance serves every lookup).
_UNPROGRAMMED = NetState()


# --- requests ----------------------------------------------------------------------


@dataclass(frozen=True)
class SetVoltage:
    net: str
    volts: float


@dataclass(frozen=True)
class SetCurrentLimit:
    net: str
    amps: float


@dataclass(frozen=True)
class SetOutput:
    net: str
    on: bool


@dataclass(frozen=True)
class SetRelay:
    relay: str
    closed: bool


Request = SetVoltage | SetCurrentLimit | SetOutput | SetRelay
NET_REQUESTS = (SetVoltage, SetCurrentLimit, SetOutput)


def describe(request: Request) -> str:
    match request:
        case SetVoltage(net, volts):
            return f"set {net} to {amount(volts, 'V')}"
        case SetCurrentLimit(net, amps):
            return f"set {net} current limit to {amount(amps, 'A')}"
        case SetOutput(net, on):
            return f"turn {net} output {'on' if on else 'off'}"
        case SetRelay(relay, closed):
            return f"{'close' if closed else 'open'} relay {relay}"
    return repr(request)


# --- verdicts ------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    rule: str | None = None
    where: str | None = None
    reason: str = ""

    def raise_if_refused(self) -> None:
        if not self.allowed:
            raise LimitViolation(self.reason, self.rule or "", self.where or "")


ALLOWED = Verdict(True)


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    state: BenchState  # the resulting state if allowed, else the state unchanged


def refuse(rule: str, where: str, reason: str) -> Verdict:
    return Verdict(False, rule, where, reason)
