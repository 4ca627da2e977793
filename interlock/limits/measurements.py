"""Measurement-time rules: what the instruments report, held against the pinned limits.

The controller measures, then asks here; each rule answers None (as
expected) or a :class:`Finding` that names the rule, where it is defined and
what was seen. The controller journals the finding and trips: it decides
nothing itself. Pure, as the rest of the engine: readings come in as
numbers, never as instruments.

A reading that is not a finite number (NaN, an infinity) never passes a
rule: every comparison is written so that it fails closed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from interlock.engineering import amount
from interlock.limits.model import BUILT_IN, BenchState, PinnedLimits
from interlock.limits.requests import is_finite_number

# The unit of each setting a readback is checked for.
READBACK_UNITS = {"voltage": "V", "current_limit": "A", "ovp": "V", "ocp": "A"}


def _read(value: object, unit: str) -> str:
    """A reply as read: a number in its unit, anything else as it came."""
    return amount(value, unit) if is_finite_number(value) else repr(value)


# What a net may carry before it is measured when the profile does not say: the ID
# net ([identity] max_stray_voltage) and a wired supply channel of no net in the
# profile, with its output off at arming ([rules] unlisted_max_stray_voltage).
DEFAULT_MAX_STRAY_VOLTAGE = 0.5  # V

# The supply's own over-voltage protection sits this far above a net's max_voltage
# (the larger of the two): it never trips on a legal setpoint, always soon after an
# illegal one.
OVP_MARGIN_ABSOLUTE = 0.1  # V
OVP_MARGIN_RELATIVE = 0.05


@dataclass(frozen=True)
class Finding:
    """A measurement a rule does not accept: the rule, where it is defined, what was seen."""

    rule: str
    where: str
    problem: str


def ovp_level(max_voltage: float) -> float:
    """The over-voltage protection programmed for a net whose limit is ``max_voltage``."""
    return max_voltage + max(OVP_MARGIN_ABSOLUTE, OVP_MARGIN_RELATIVE * max_voltage)


def _tolerance_where(limits: PinnedLimits, net: str) -> str:
    return limits.where(f"nets.{net}.readback_absolute, nets.{net}.readback_relative")


# --- a live net ------------------------------------------------------------------------


def settling(limits: PinnedLimits, state: BenchState, net: str, now: float) -> bool:
    """Within ``settle_time`` of the net's last live change: an output may still be
    rising into a capacitive load, so only "too much" is a fault then."""
    return now < state.net(net).changed_at + limits.nets[net].settle_time


def check_live(
    limits: PinnedLimits,
    net: str,
    volts: float,
    amps: float,
    *,
    tripped: bool,
    protected: bool | None,
    window: tuple[float, float],
    settling: bool = False,
) -> Finding | None:
    """A live net's reading against its envelope.

    ``protected`` is None where the supply has no over-current protection (the
    monitor is then the only one, and a profile that requires ``ocp`` refuses
    such a supply at load).

    ``window`` is the range of setpoints the output may have been at while it
    was measured (a ramp step may have happened meanwhile). While ``settling``
    only "too much" is a fault: not regulation lost low, not too little current.
    """
    n = limits.nets[net]
    key = f"nets.{net}"
    if tripped:
        return Finding("live.protection_tripped", BUILT_IN, "the supply's protection tripped")
    if protected is False:
        return Finding(
            "live.protection_off",
            BUILT_IN,
            "the supply's over-current protection is off (turned off at the instrument?)",
        )
    if not (is_finite_number(volts) and is_finite_number(amps)):
        return Finding("finite-value", BUILT_IN, f"not a reading: {volts!r} V, {amps!r} A")
    low, high = window
    tolerance = n.readback_tolerance(high)
    if volts > n.max_voltage + tolerance:
        return Finding(
            "live.max_voltage",
            limits.where(f"{key}.max_voltage") + " (and the readback tolerance)",
            f"{amount(volts, 'V')} above the limit of {amount(n.max_voltage, 'V')}",
        )
    if volts > high + tolerance or (not settling and volts < low - tolerance):
        return Finding(
            "live.regulation",
            _tolerance_where(limits, net),
            f"{amount(volts, 'V')}, commanded {amount(high, 'V')} "
            "(regulation lost: short or overload?)",
        )
    if amps > n.live_max_current:
        return Finding(
            f"{key}.live_max_current",
            limits.where(f"{key}.live_max_current"),
            f"{amount(amps, 'A')} above the live window ({amount(n.live_max_current, 'A')})",
        )
    if not settling and amps < n.live_min_current:
        return Finding(
            f"{key}.live_min_current",
            limits.where(f"{key}.live_min_current"),
            f"{amount(amps, 'A')} below the live window ({amount(n.live_min_current, 'A')}): open?",
        )
    return None


def check_live_at_zero(limits: PinnedLimits, state: BenchState, net: str) -> Finding | None:
    """A live net at 0 V draws nothing: its current window (live_min_current) would
    trip the monitor for certain. For the dry run, which predicts that before a real
    run finds out. A setpoint within the readback tolerance of 0 V is 0 V here."""
    n = limits.nets.get(net)
    held = state.net(net)
    if (
        n is None
        or not held.output
        or abs(held.voltage) > n.readback_tolerance(0.0)
        or n.live_min_current <= 0
    ):
        return None
    key = f"nets.{net}.live_min_current"
    return Finding(
        key,
        limits.where(key),
        f"{net} live at 0 V draws no current, below its live window: the monitor would "
        "trip the bench; turn the output off instead",
    )


# --- read back ---------------------------------------------------------------------------


def readback_tolerance(limits: PinnedLimits, net: str, quantity: str, commanded: float) -> float:
    n = limits.nets[net]
    if quantity == "current_limit":
        return n.current_tolerance(commanded)
    return n.readback_tolerance(commanded)


def check_readback(
    limits: PinnedLimits, net: str, quantity: str, commanded: float, readback: float
) -> Finding | None:
    """A setting read back (``voltage``, ``current_limit`` or ``ovp``) within tolerance."""
    tolerance = readback_tolerance(limits, net, quantity, commanded)
    if is_finite_number(readback) and abs(readback - commanded) <= tolerance:
        return None
    where = (
        limits.where(f"nets.{net}.readback_relative") + " (at least 1 mA)"
        if quantity == "current_limit"
        else _tolerance_where(limits, net)
    )
    unit = READBACK_UNITS.get(quantity, "")
    return Finding(
        f"readback.{quantity}",
        where,
        f"{net} {quantity} reads back {_read(readback, unit)}, commanded "
        f"{amount(commanded, unit)} (tolerance {amount(tolerance, unit)})",
    )


def check_range(limits: PinnedLimits, net: str, readback: object) -> Finding | None:
    """The output range selected at arming reads back by its name (in any case)."""
    selected = limits.supply_ranges[net]
    if isinstance(readback, str) and readback.strip().upper() == selected.upper():
        return None
    return Finding(
        "readback.range",
        limits.where(f"nets.{net}.max_voltage, nets.{net}.max_current"),
        f"{net} output range reads back {readback!r}, selected {selected} "
        "(the first of its supply's ranges that covers the net's limits)",
    )


def check_protection_armed(net: str, armed: bool) -> Finding | None:
    """Over-current protection, commanded on at arming, reads back on."""
    if armed is True:
        return None
    return Finding(
        "readback.ocp", BUILT_IN, f"{net} over-current protection reads back off, commanded on"
    )


def check_output(
    net: str, commanded_on: bool, reads_on: bool, *, tripped: bool = False, limit: float = 0.0
) -> Finding | None:
    """An output reads back as commanded right after ``OUTP ON`` or ``OUTP OFF``.

    ``tripped`` (the supply says its protection tripped) and ``limit`` (the
    current limit programmed) say why an output went off at once.
    """
    if reads_on == commanded_on:
        return None
    if not commanded_on:
        problem = "output reads on after OUTP OFF"
    elif not tripped:
        problem = "output reads off after OUTP ON"
    else:
        problem = (
            "output went off at once: the supply's protection tripped (does the DUT "
            f"draw more than the {amount(limit, 'A')} current limit?)"
        )
    return Finding("readback.output", BUILT_IN, problem)


def check_off_before_live(
    net: str, *, output: bool, tripped: bool, protected: bool | None
) -> Finding | None:
    """Before its relay closes, a net's supply channel is off, untripped and protected
    (where it has over-current protection: None where it has none): an output turned
    on behind our back must not reach the DUT."""
    if output or tripped:
        state = "on" if output else "tripped"
        return Finding(
            "readback.output", BUILT_IN, f"{net}: supply output {state} before it was turned on"
        )
    if protected is False:
        return Finding(
            "readback.ocp",
            BUILT_IN,
            f"{net}: supply over-current protection off before going live",
        )
    return None


# --- before energising: safe-to-mate and the DUT's identity -------------------------------


def _stray_default(key: str) -> tuple[str, float]:
    return f"{BUILT_IN} ({key} not set: DEFAULT_MAX_STRAY_VOLTAGE)", DEFAULT_MAX_STRAY_VOLTAGE


def _stray(rule: str, where: str, net: str, volts: float, limit: float) -> Finding | None:
    if abs(volts) <= limit:
        return None
    return Finding(
        rule,
        where,
        f"{net} carries {amount(volts, 'V')} before it is energised (max {amount(limit, 'V')})",
    )


def check_mate_stray(limits: PinnedLimits, net: str, volts: float) -> Finding | None:
    """Safe-to-mate: the net, its supply disconnected, carries no stray voltage."""
    key = f"nets.{net}.safe_to_mate.max_stray_voltage"
    limit = limits.nets[net].safe_to_mate.max_stray_voltage
    return _stray("safe-to-mate.stray_voltage", limits.where(key), net, volts, limit)


def check_mate_resistance(limits: PinnedLimits, net: str, ohms: float) -> Finding | None:
    """Safe-to-mate: the net measures inside its resistance window (not miswired)."""
    mate = limits.nets[net].safe_to_mate
    if mate.min_resistance <= ohms <= mate.max_resistance:
        return None
    table = limits.where(f"nets.{net}.safe_to_mate")
    return Finding(
        "safe-to-mate.resistance",
        f"{table}.min_resistance, max_resistance",
        f"{net} measures {amount(ohms, 'ohm')}, expected {amount(mate.min_resistance, 'ohm')} .. "
        f"{amount(mate.max_resistance, 'ohm')} ({table}): miswired or wrong DUT",
    )


def check_identity_stray(limits: PinnedLimits, volts: float) -> Finding | None:
    """The DUT's ID net carries no stray voltage before its resistor is measured."""
    identity = limits.identity
    if identity is None:
        return None
    if identity.max_stray_voltage is None:
        where, limit = _stray_default("identity.max_stray_voltage")
    else:
        where, limit = limits.where("identity.max_stray_voltage"), identity.max_stray_voltage
    return _stray("identity.stray_voltage", where, identity.net, volts, limit)


@dataclass(frozen=True)
class IdentityCheck:
    """The DUT's identity as measured: what was expected, what was seen, and whether
    it is the one pinned (``finding`` is None)."""

    expected: str
    seen: str
    finding: Finding | None

    @property
    def ok(self) -> bool:
        return self.finding is None


def check_dut_identity(limits: PinnedLimits, ohms: float) -> IdentityCheck:
    """The DUT's ID resistor measures inside the profile's window."""
    identity = limits.identity
    if identity is None:
        raise ValueError("the profile has no [identity] to check")
    low, high = amount(identity.min_resistance, "ohm"), amount(identity.max_resistance, "ohm")
    expected = f"{low} .. {high} on {identity.net}"
    seen = f"{amount(ohms, 'ohm')}"
    if identity.min_resistance <= ohms <= identity.max_resistance:
        return IdentityCheck(expected, seen, None)
    where = limits.where("identity.min_resistance, identity.max_resistance")
    return IdentityCheck(
        expected, seen, Finding("identity.dut", where, f"expected {expected}, seen {seen}")
    )


class Identified(Protocol):
    maker: str
    model: str
    serial: str


def same_instrument(expected: Identified, seen: Identified) -> bool:
    """``identity.instrument``: an instrument is the one bench.toml names. Makers write
    their names in various cases; serials and models are exact."""
    return (
        expected.maker.casefold() == seen.maker.casefold()
        and expected.model == seen.model
        and expected.serial == seen.serial
    )


# --- all off: at start-up, arming and reset ------------------------------------------------


def check_channel_off(
    supply: str,
    channel: int,
    *,
    output: bool,
    voltage: float,
    tripped: bool,
    coupled: bool = False,
) -> list[Finding]:
    """A supply channel found as it should be with nothing live: output off, no
    protection trip latched, and not tracking another (:func:`check_coupling`)."""
    findings = []
    if output:
        findings.append(
            Finding(
                "all-off.output",
                BUILT_IN,
                f"{supply} CH{channel} output on at {amount(voltage, 'V')}",
            )
        )
    if tripped:
        findings.append(
            Finding("all-off.protection", BUILT_IN, f"{supply} CH{channel} protection tripped")
        )
    coupling = check_coupling(supply, channel, coupled)
    if coupling is not None:
        findings.append(coupling)
    return findings


def check_coupling(supply: str, channel: int, coupled: bool) -> Finding | None:
    """A supply channel not tracking another: set at its front panel, tracking makes a
    setpoint for one channel change the other's, which no readback of the one channel
    shows. Checked with the rest at start-up, arming and reset, and alone before a net
    goes live (a supply without a panel lock may be switched since arming)."""
    if not coupled:
        return None
    return Finding(
        "all-off.coupling",
        BUILT_IN,
        f"{supply} CH{channel} tracks another channel (tracking, series or parallel): a "
        "setpoint for one would change the other; set the channels independent at the supply",
    )


def check_relays_open(closed: Iterable[str]) -> Finding | None:
    """Every relay found open (coil and contact) with nothing live."""
    names = sorted(closed)
    if not names:
        return None
    return Finding("all-off.relays", BUILT_IN, f"relays closed: {', '.join(names)}")


def check_off_voltage(
    limits: PinnedLimits, supply: str, channel: int, net: str | None, volts: float
) -> Finding | None:
    """A supply channel with its output off measures no more than the stray voltage
    its net may carry (its safe-to-mate limit, or, for a channel of no net in the
    profile, ``[rules] unlisted_max_stray_voltage``)."""
    if net is not None and net in limits.nets:
        key = f"nets.{net}.safe_to_mate.max_stray_voltage"
        where, limit = limits.where(key), limits.nets[net].safe_to_mate.max_stray_voltage
    elif limits.unlisted_max_stray_voltage is not None:
        key = "rules.unlisted_max_stray_voltage"
        where, limit = limits.where(key), limits.unlisted_max_stray_voltage
    else:
        where = (
            f"{BUILT_IN} (DEFAULT_MAX_STRAY_VOLTAGE: [rules] unlisted_max_stray_voltage not set)"
        )
        limit = DEFAULT_MAX_STRAY_VOLTAGE
    if abs(volts) <= limit:
        return None
    return Finding(
        "all-off.stray_voltage",
        where,
        f"{supply} CH{channel} measures {amount(volts, 'V')} with its output off",
    )


# --- relays --------------------------------------------------------------------------------


def check_contacts(
    expected: int, coils: int, contacts: int, channels: Mapping[str, int], settle_time: float
) -> Finding | None:
    """Relay coils and their auxiliary contacts both as commanded (``expected``, masks
    of 1-based channels; ``channels`` names them). The caller allows the contacts the
    board's contact settle time to follow before it takes a finding as a fault."""
    if coils == expected and contacts == expected:
        return None
    names = {channel: relay for relay, channel in channels.items()}
    differ = contacts ^ expected
    relays = sorted(
        names.get(c, f"channel {c}")
        for c in range(1, differ.bit_length() + 1)
        if differ >> (c - 1) & 1
    )
    return Finding(
        "contact-sense",
        f"interlock/catalog.py: RelayBoardModel.contact_settle_time ({amount(settle_time, 's')})",
        f"relay contacts disagree with their coils: {', '.join(relays)}",
    )
