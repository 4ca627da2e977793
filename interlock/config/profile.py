"""profiles/<device>.toml: the limits of one DUT type.

A profile says nothing about a bench: relays are named by the net they serve
(``VBUS.power``, ``MOTOR.sense``) and resolved against a bench's wiring when
the two are put together (:mod:`interlock.config.pinned`). Every value is
bounded (:mod:`.bounds`); a net's limits are held against each other (a
tolerance within its range, a ramp across the whole range within the limit
engine's bounds on a plan).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from interlock.config.bounds import (
    CURRENT_LIMIT,
    MAX_CURRENT,
    MAX_ITEMS,
    MAX_SLEW,
    MAX_STEP,
    MAX_TEXT,
    MAX_TITLE,
    READBACK_ABSOLUTE,
    READBACK_ABSOLUTE_SHARE,
    READBACK_RELATIVE,
    RESISTANCE_LIMIT,
    SETTLE_TIME,
    STRAY_VOLTAGE,
    TOTAL_POWER,
    VOLTAGE_LIMIT,
    Range,
    show,
)
from interlock.config.reader import Table, display_path, read_toml, resolve_file
from interlock.dialects.model import REQUIRABLE
from interlock.limits.model import DutIdentity, NetLimits, SafeToMate
from interlock.limits.ramps import (
    RAMP_MARGIN,
    RAMP_MAX_SECONDS,
    RAMP_MAX_STEPS,
    ramp_duration,
    ramp_step_count,
)
from interlock.units import DURATION, VOLTAGE


@dataclass(frozen=True)
class NeverTogether:
    """No two relays of this group may be closed at the same time."""

    relays: tuple[str, ...]  # as written in the profile: "VBUS.sense" or a relay name
    reason: str
    key: str  # "rules.never_together[0]"


@dataclass(frozen=True)
class OpenBeforeChange:
    """These relays must be open before ``net``'s setpoint, limit or output changes."""

    net: str
    relays: tuple[str, ...]
    reason: str
    key: str


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    path: Path
    sha256: str
    identity: DutIdentity | None
    nets: dict[str, NetLimits]
    power_on: tuple[str, ...]
    power_off: tuple[str, ...]
    max_total_power: float
    never_together: tuple[NeverTogether, ...]
    open_before_change: tuple[OpenBeforeChange, ...]
    # [rules] unlisted_max_stray_voltage: a wired supply channel of no net here, output
    # off at arming, may measure this much (None: the limit engine's default).
    unlisted_max_stray_voltage: float | None = None
    # The steps of power_off, in order: the nets of one step may go off together (an
    # array of names in the file); power_off is them one after another. Empty: each net
    # a step of its own.
    power_off_steps: tuple[tuple[str, ...], ...] = ()

    @property
    def shown_path(self) -> str:
        return display_path(self.path)

    def where(self, key: str) -> str:
        """Where a rule is defined, as shown in a refusal."""
        return f"{self.shown_path}: {key}"


def load_profile(path: str | Path) -> Profile:
    """Load and validate a DUT profile. Raises ConfigError naming file and key."""
    path = resolve_file(path)
    data, raw = read_toml(path)
    root = Table(data, display_path(path))

    device = root.table("device")
    name = device.string("name", max_length=MAX_TITLE)
    description = device.string("description", required=False) or ""
    device.finish()

    identity = None
    ident = root.table("identity", required=False)
    if ident is not None:
        identity = DutIdentity(
            net=ident.name("net"),
            min_resistance=ident.bounded("min_resistance", RESISTANCE_LIMIT),
            max_resistance=ident.bounded("max_resistance", RESISTANCE_LIMIT),
            max_stray_voltage=ident.bounded("max_stray_voltage", STRAY_VOLTAGE, required=False),
        )
        _ordered(
            ident,
            "min_resistance",
            identity.min_resistance,
            "max_resistance",
            identity.max_resistance,
            RESISTANCE_LIMIT,
        )
        ident.finish()

    nets = {net: _net_limits(net, table) for net, table in root.tables("nets").items()}
    if not nets:
        raise root.error("nets", "a profile needs at least one net")

    sequencing = root.table("sequencing")
    power_on = tuple(sequencing.string_list("power_on"))
    power_off_steps = _steps(sequencing, "power_off")
    power_off = tuple(net for step in power_off_steps for net in step)
    for key, order in (("power_on", power_on), ("power_off", power_off)):
        if sorted(order) != sorted(nets):
            raise sequencing.error(
                key,
                f"must list every net exactly once ({', '.join(sorted(nets))}), got {list(order)}",
            )
    sequencing.finish()

    rules = root.table("rules")
    max_total_power = rules.bounded("max_total_power", TOTAL_POWER)
    unlisted_stray = rules.bounded("unlisted_max_stray_voltage", STRAY_VOLTAGE, required=False)
    never_together = []
    for group in rules.array_of_tables("never_together"):
        relays = tuple(group.string_list("relays"))
        if len(relays) < 2 or len(set(relays)) != len(relays):
            raise group.error("relays", "expected two or more distinct relays")
        never_together.append(NeverTogether(relays, group.string("reason"), group.path))
        group.finish()
    open_before = []
    for rule in rules.array_of_tables("open_before_change"):
        net = rule.string("net")
        if net not in nets:
            raise rule.error("net", f'unknown net "{net}" (not in [nets])')
        relays = tuple(rule.string_list("relays"))
        if not relays:
            raise rule.error("relays", "expected at least one relay")
        open_before.append(OpenBeforeChange(net, relays, rule.string("reason"), rule.path))
        rule.finish()
    rules.finish()
    root.finish()

    return Profile(
        name=name,
        description=description,
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        identity=identity,
        nets=nets,
        power_on=power_on,
        power_off=power_off,
        max_total_power=max_total_power,
        never_together=tuple(never_together),
        open_before_change=tuple(open_before),
        unlisted_max_stray_voltage=unlisted_stray,
        power_off_steps=power_off_steps,
    )


def _steps(table: Table, key: str) -> tuple[tuple[str, ...], ...]:
    """An order whose entries are a name, or an array of names that go together."""
    value = table.data.get(key)
    if not isinstance(value, list) or all(isinstance(entry, str) for entry in value):
        return tuple((name,) for name in table.string_list(key) or [])
    value = table._take(key, True)
    if len(value) > MAX_ITEMS:
        raise table.error(key, f"expected at most {MAX_ITEMS} entries, got {len(value)}")
    steps = []
    for entry in value:
        names = entry if isinstance(entry, list) else [entry]
        if not names or not all(
            isinstance(n, str) and n and len(n) <= MAX_TEXT and n.isprintable() for n in names
        ):
            raise table.error(
                key, "expected names, or arrays of names that go off together (non-empty)"
            )
        steps.append(tuple(names))
    return tuple(steps)


def _ordered(table: Table, key: str, low: float, high_key: str, high: float, bound: Range) -> None:
    """``key``'s value at most ``high_key``'s, or an error that shows both."""
    if low > high:
        shown_low, shown_high = show(low, bound.dimension), show(high, bound.dimension)
        raise table.error(key, f"{shown_low} is above {high_key} ({shown_high})")


def _net_limits(net: str, table: Table) -> NetLimits:
    mate = table.table("safe_to_mate")
    safe_to_mate = SafeToMate(
        min_resistance=mate.bounded("min_resistance", RESISTANCE_LIMIT),
        max_resistance=mate.bounded("max_resistance", RESISTANCE_LIMIT),
        max_stray_voltage=mate.bounded("max_stray_voltage", STRAY_VOLTAGE),
    )
    _ordered(
        mate,
        "min_resistance",
        safe_to_mate.min_resistance,
        "max_resistance",
        safe_to_mate.max_resistance,
        RESISTANCE_LIMIT,
    )
    mate.finish()
    limits = NetLimits(
        net=net,
        min_voltage=table.bounded("min_voltage", VOLTAGE_LIMIT),
        max_voltage=table.bounded("max_voltage", VOLTAGE_LIMIT),
        max_current=table.bounded("max_current", MAX_CURRENT),
        max_slew=table.bounded("max_slew", MAX_SLEW),
        max_step=table.bounded("max_step", MAX_STEP),
        readback_absolute=table.bounded("readback_absolute", READBACK_ABSOLUTE),
        readback_relative=table.bounded("readback_relative", READBACK_RELATIVE),
        settle_time=table.bounded("settle_time", SETTLE_TIME),
        live_min_current=table.bounded("live_min_current", CURRENT_LIMIT),
        live_max_current=table.bounded("live_max_current", CURRENT_LIMIT),
        safe_to_mate=safe_to_mate,
        require=_require(table),
    )
    _ordered(
        table, "min_voltage", limits.min_voltage, "max_voltage", limits.max_voltage, VOLTAGE_LIMIT
    )
    _ordered(
        table,
        "live_min_current",
        limits.live_min_current,
        "live_max_current",
        limits.live_max_current,
        CURRENT_LIMIT,
    )
    _ordered(
        table,
        "live_max_current",
        limits.live_max_current,
        "max_current",
        limits.max_current,
        CURRENT_LIMIT,
    )
    if limits.readback_absolute > READBACK_ABSOLUTE_SHARE * limits.max_voltage:
        raise table.error(
            "readback_absolute",
            f"{show(limits.readback_absolute, VOLTAGE)} is more than "
            f"{READBACK_ABSOLUTE_SHARE:.0%} of max_voltage "
            f"({show(limits.max_voltage, VOLTAGE)}): it would check next to nothing",
        )
    _check_ramp(table, limits)
    table.finish()
    return limits


def _require(table: Table) -> tuple[str, ...] | None:
    """What the net's supply must be able to do; None: what it has of OVP and OCP."""
    words = table.string_list("require", required=False)
    if words is None:
        return None
    for word in words:
        if word not in REQUIRABLE:
            raise table.error(
                "require", f'unknown capability "{word}" (known: {", ".join(REQUIRABLE)})'
            )
    return tuple(dict.fromkeys(words))


def _check_ramp(table: Table, limits: NetLimits) -> None:
    """The longest legal ramp (min_voltage to max_voltage) is one the limit engine plans:
    its own bounds on a plan (ramp.max_steps, ramp.max_duration), not a second copy."""
    low, high = limits.min_voltage, limits.max_voltage
    across = f"ramping min_voltage to max_voltage ({show(low, VOLTAGE)} to {show(high, VOLTAGE)})"
    steps = ramp_step_count(limits, low, high)
    if steps > RAMP_MAX_STEPS:
        raise table.error(
            "max_step",
            f"{across} in steps of {show(limits.max_step, VOLTAGE)} takes {steps:.3g} steps; "
            f"at most {RAMP_MAX_STEPS:,} are allowed (ramp.max_steps)",
        )
    seconds = ramp_duration(limits, low, high)
    if seconds > RAMP_MAX_SECONDS:
        raise table.error(
            "max_slew",
            f"{across} at max_slew takes {show(seconds, DURATION)} (with the "
            f"{RAMP_MARGIN - 1:.0%} margin between steps); at most "
            f"{show(RAMP_MAX_SECONDS, DURATION)} is allowed (ramp.max_duration)",
        )
