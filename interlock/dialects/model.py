"""What a dialect file says, once loaded: plain frozen data, no I/O.

A dialect is one family of instruments that speak alike (Keysight E36300,
Rigol DP800, Korad KA): how to reach them (:class:`Link`), how they say who
they are (:class:`IdentityQuery`), what each model can deliver
(:class:`SupplyModel`, :class:`MeterModel`, :class:`SwitchModel`), what the
family can do (:class:`Capabilities`) and the exact lines for each operation
(:class:`Command`, :class:`Query`), compiled once at load. Facts that could
not be checked are listed in ``unconfirmed``, per model.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["supply", "meter", "switch"]
KINDS: tuple[str, ...] = ("supply", "meter", "switch")
LINK_KINDS = ("visa-socket", "visa-serial", "serial")
FRAMINGS = ("line", "fixed", "idle")
REPLY_KINDS = ("number", "flag", "bit", "numbers", "text")


@dataclass(frozen=True)
class Link:
    """How the family is reached: a VISA TCP socket, VISA serial (ASRL) or raw pyserial."""

    kind: str  # one of LINK_KINDS
    port: int | None = None  # TCP port of a socket resource
    write_termination: str = "\n"
    read_termination: str = "\n"
    # "line": replies end at read_termination; "fixed": each query says its width;
    # "idle": a reply ends when the line falls silent (identity replies of raw serial)
    framing: str = "line"
    baud: int = 9600
    data_bits: int = 8
    parity: str = "N"
    stop_bits: int = 1
    flow: str = "none"  # none | rts-cts | dtr-dsr | xon-xoff
    min_gap: float = 0.0  # s between the end of one exchange and the next line
    idle: float = 0.05  # s of silence that ends an "idle"-framed reply
    after_set: float = 0.0  # extra wait after a line that sets something (slow firmware)
    # How a real unit is reached, where the port above is only the twin's (no LAN).
    reached: str = ""


@dataclass(frozen=True)
class Command:
    """A line that acts: ``template`` formatted with ``ch`` (a channel), ``chs`` (a
    channel list), ``value`` (a number) and ``state`` (the dialect's on/off words)."""

    key: str
    template: str
    per_channel_list: bool  # uses {chs}: one line for several channels

    def line(self, **fields: object) -> str:
        return self.template.format(**fields)


@dataclass(frozen=True)
class Query:
    """A line that asks, and how its reply is read."""

    key: str
    template: str
    reply: str  # one of REPLY_KINDS
    per_channel_list: bool
    true: tuple[str, ...] = ("1",)
    false: tuple[str, ...] = ("0",)
    bit: int | None = None  # reply "bit": which bit of a status byte or word
    # reply "bit" where one status word serves every channel: each channel's own bit
    bits: dict[int, int] = field(default_factory=dict)
    width: int | None = None  # fixed-framed replies: bytes to read
    pattern: re.Pattern[str] | None = None  # a group "value" holds the reply's value
    count: int | None = None  # reply "numbers": values per channel
    fields: dict[str, int] = field(default_factory=dict)  # reply "numbers": name -> index
    # Reading it clears what it reports (an event register): what it said is kept by the
    # driver until it clears the condition itself.
    clears_on_read: bool = False
    # Bytes its reply may be followed by that answer nothing (a Korad's sixth byte after
    # ISET1?): a serial link drops them before its next line quietly, more with a warning.
    trailing: int = 0

    def line(self, **fields: object) -> str:
        return self.template.format(**fields)


@dataclass(frozen=True)
class IdentityQuery:
    """How a model says who it is: a query and a pattern with named groups ``maker``,
    ``model``, ``serial`` and ``firmware`` (a missing group reads as "")."""

    query: Query
    pattern: re.Pattern[str]
    strip: str = ""  # trailing bytes some firmware appends (Korad's NUL, 0x01, 0xBC)


@dataclass(frozen=True)
class Capabilities:
    """What the family can do for the interlock; the rules and the controller ask these."""

    ovp: str = "none"  # "level" (programmable), "switch" (on/off only), "none"
    ocp: str = "none"  # "trip" (output off), "limit" (only limits), "none"
    ocp_level: str = "current-limit"  # "current-limit" | "separate" (its own level)
    trip_query: bool = False  # it says whether a protection tripped
    output_query: bool = True  # it says whether an output is on
    channel_lists: bool = False  # several channels in one exchange
    compound: bool = False  # several commands and queries in one line (;)
    panel_lock: bool = False  # the front panel can be locked from the interface
    watchdog: bool = False  # an output watchdog of its own
    general_output: bool = False  # a master switch besides each output's own
    common_output: bool = False  # one switch for every output: no output goes on alone
    contact_sense: bool = False  # (switches) auxiliary contacts read back
    unconfirmed: tuple[str, ...] = ()  # capabilities taken from a single or no source

    def names(self) -> list[str]:
        """The capabilities it has, as words for tables and messages."""
        words = []
        if self.ovp != "none":
            words.append("ovp" if self.ovp == "level" else "ovp (on/off)")
        if self.ocp != "none":
            words.append("ocp" if self.ocp == "trip" else "ocp (limits only)")
        for flag in (
            "trip_query",
            "channel_lists",
            "compound",
            "panel_lock",
            "watchdog",
            "general_output",
            "common_output",
            "contact_sense",
        ):
            if getattr(self, flag):
                words.append(flag.replace("_", "-"))
        return words

    def has(self, capability: str) -> bool:
        """Whether it has a capability a profile may require (``ovp``, ``ocp``, ...)."""
        if capability == "ovp":
            return self.ovp == "level"
        if capability == "ocp":
            return self.ocp == "trip"
        return bool(getattr(self, capability.replace("-", "_"), False))


# What a profile may require of a net's supply.
REQUIRABLE = ("ovp", "ocp", "trip_query", "panel_lock", "watchdog")


@dataclass(frozen=True)
class SupplyRange:
    """One output range of a channel that has several (the E3632A's P15V and P30V): what
    it can deliver, in V and A, and its name as the range command and query say it."""

    name: str
    max_voltage: float
    max_current: float

    def covers(self, volts: float, amps: float) -> bool:
        return volts <= self.max_voltage and amps <= self.max_current


@dataclass(frozen=True)
class SupplyChannel:
    """One output of a power supply: rated ranges in V and A.

    A channel with output ranges (``ranges``, smallest first) delivers its maxima only
    in one range or another: the maxima are their envelope, and the range a net needs
    is chosen from its limits (:meth:`range_for`).
    """

    max_voltage: float
    max_current: float
    max_ovp: float  # highest over-voltage protection setting (0 without a level)
    min_current: float = 0.002  # lowest current limit it regulates at
    min_voltage: float = 0.0  # a negative output goes below zero
    ranges: tuple[SupplyRange, ...] = ()
    # W it delivers, where that is less than its volts at its amps (an HMP4040's outputs:
    # 32 V or 10 A, at most 160 W); inf: no such rating.
    max_power: float = math.inf

    def range_for(self, volts: float, amps: float) -> SupplyRange | None:
        """The first declared range that delivers both ``volts`` and ``amps``: None if
        none does (or if the channel has no ranges)."""
        return next((r for r in self.ranges if r.covers(volts, amps)), None)


@dataclass(frozen=True)
class SupplyModel:
    maker: str
    model: str
    channels: dict[int, SupplyChannel]
    dialect: str = ""
    unconfirmed: tuple[str, ...] = ()


@dataclass(frozen=True)
class MeterModel:
    maker: str
    model: str
    max_dc_voltage: float
    max_resistance: float
    max_dc_current: float
    dialect: str = ""
    unconfirmed: tuple[str, ...] = ()


@dataclass(frozen=True)
class SwitchModel:
    """A switch unit: relays 1..relays, their contact ratings and the unit's own rules."""

    maker: str
    model: str
    relays: int
    contact_max_voltage: float  # V DC
    contact_max_current: float  # A
    # W a contact may switch, volts times amps, where it is rated below the two together
    # (a 300 V / 1 A / 50 W relay switches 1 A only up to 50 V); inf: no such rating.
    contact_max_power: float = math.inf
    forbidden_pairs: int = 0  # size of its own table of forbidden combinations (0: none)
    contact_settle_time: float = 0.25  # s an auxiliary contact may take to follow its coil
    watchdog_min: float = 0.0  # s; a host watchdog of its own (0: none)
    watchdog_max: float = 0.0
    watchdog_resolution: float = 0.001
    dialect: str = ""
    unconfirmed: tuple[str, ...] = ()


# Kept under the name the configuration has always used.
RelayBoardModel = SwitchModel
Model = SupplyModel | MeterModel | SwitchModel


@dataclass(frozen=True)
class Dialect:
    """One dialect file."""

    name: str
    kind: str  # one of KINDS
    title: str  # for tables: "Keysight E36300"
    driver: str  # the registered driver that speaks it
    path: str  # the file, for messages
    link: Link
    identity: IdentityQuery | None
    capabilities: Capabilities
    commands: dict[str, Command]
    queries: dict[str, Query]
    models: dict[str, Model]
    hook: str | None = None  # module beside the file with the quirks data cannot say
    sources: tuple[str, ...] = ()
    unconfirmed: tuple[str, ...] = ()  # family-wide facts not checked against a source
    on_word: str = "ON"
    off_word: str = "OFF"
    list_separator: str = ","

    def command(self, key: str) -> Command | None:
        return self.commands.get(key)

    def query(self, key: str) -> Query | None:
        return self.queries.get(key)

    def poll_exchanges(self, channels: int) -> int:
        """Exchanges one monitor pass takes for ``channels`` live channels of one supply."""
        keys = _POLL_QUERIES_MEASURE_ALL if "measure?" in self.queries else _POLL_QUERIES
        used = [self.queries[k] for k in keys if k in self.queries]
        if self.capabilities.compound:  # every query of the pass in one line
            return 1
        return sum(1 if q.per_channel_list else channels for q in used)


_POLL_QUERIES = (
    "measure_voltage?",
    "measure_current?",
    "tripped?",
    "ovp_tripped?",
    "ocp_tripped?",
    "ocp_state?",
    "output?",
)
_POLL_QUERIES_MEASURE_ALL = (
    "measure?",
    "tripped?",
    "ovp_tripped?",
    "ocp_tripped?",
    "ocp_state?",
    "output?",
)
