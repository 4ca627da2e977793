"""profiles/<device>.toml: the limits of one DUT type.

A profile says nothing about a bench: relays are named by the net they serve
(``VBUS.power``, ``MOTOR.sense``) and resolved against a bench's wiring when
the two are put together (:mod:`interlock.config.pinned`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from interlock.config.reader import Table, display_path, read_toml
from interlock.units import CURRENT, DURATION, POWER, RATIO, RESISTANCE, SLEW_RATE, VOLTAGE


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

    def readback_tolerance(self, commanded: float) -> float:
        """How far a read-back voltage may be from ``commanded`` (absolute + relative)."""
        return self.readback_absolute + self.readback_relative * abs(commanded)

    def current_tolerance(self, commanded: float) -> float:
        """How far a read-back current limit may be: the relative tolerance, and at least
        a supply's programming resolution (1 mA on the supplies of the catalogue)."""
        return max(1e-3, self.readback_relative * abs(commanded))


@dataclass(frozen=True)
class DutIdentity:
    """The DUT's identity check: its ID resistor on ``net`` must measure inside the window."""

    net: str
    min_resistance: float
    max_resistance: float


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

    @property
    def shown_path(self) -> str:
        return display_path(self.path)

    def where(self, key: str) -> str:
        """Where a rule is defined, as shown in a refusal."""
        return f"{self.shown_path}: {key}"


def load_profile(path: str | Path) -> Profile:
    """Load and validate a DUT profile. Raises ConfigError naming file and key."""
    path = Path(path).resolve()
    data, raw = read_toml(path)
    root = Table(data, display_path(path))

    device = root.table("device")
    name = device.string("name")
    description = device.string("description", required=False) or ""
    device.finish()

    identity = None
    ident = root.table("identity", required=False)
    if ident is not None:
        identity = DutIdentity(
            net=ident.string("net"),
            min_resistance=ident.quantity("min_resistance", RESISTANCE),
            max_resistance=ident.quantity("max_resistance", RESISTANCE),
        )
        _ordered(ident, "min_resistance", identity.min_resistance, identity.max_resistance)
        ident.finish()

    nets = {net: _net_limits(net, table) for net, table in root.tables("nets").items()}
    if not nets:
        raise root.error("nets", "a profile needs at least one net")

    sequencing = root.table("sequencing")
    power_on = tuple(sequencing.string_list("power_on"))
    power_off = tuple(sequencing.string_list("power_off"))
    for key, order in (("power_on", power_on), ("power_off", power_off)):
        if sorted(order) != sorted(nets):
            raise sequencing.error(
                key,
                f"must list every net exactly once ({', '.join(sorted(nets))}), got {list(order)}",
            )
    sequencing.finish()

    rules = root.table("rules")
    max_total_power = rules.quantity("max_total_power", POWER)
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
    )


def _ordered(table: Table, key: str, low: float, high: float) -> None:
    if low > high:
        raise table.error(key, "is greater than its maximum")


def _net_limits(net: str, table: Table) -> NetLimits:
    mate = table.table("safe_to_mate")
    safe_to_mate = SafeToMate(
        min_resistance=mate.quantity("min_resistance", RESISTANCE),
        max_resistance=mate.quantity("max_resistance", RESISTANCE),
        max_stray_voltage=mate.quantity("max_stray_voltage", VOLTAGE),
    )
    _ordered(mate, "min_resistance", safe_to_mate.min_resistance, safe_to_mate.max_resistance)
    mate.finish()
    limits = NetLimits(
        net=net,
        min_voltage=table.quantity("min_voltage", VOLTAGE),
        max_voltage=table.quantity("max_voltage", VOLTAGE),
        max_current=table.quantity("max_current", CURRENT),
        max_slew=table.quantity("max_slew", SLEW_RATE),
        max_step=table.quantity("max_step", VOLTAGE),
        readback_absolute=table.quantity("readback_absolute", VOLTAGE),
        readback_relative=table.quantity("readback_relative", RATIO),
        settle_time=table.quantity("settle_time", DURATION),
        live_min_current=table.quantity("live_min_current", CURRENT),
        live_max_current=table.quantity("live_max_current", CURRENT),
        safe_to_mate=safe_to_mate,
    )
    _ordered(table, "min_voltage", limits.min_voltage, limits.max_voltage)
    _ordered(table, "live_min_current", limits.live_min_current, limits.live_max_current)
    if limits.live_max_current > limits.max_current:
        raise table.error("live_max_current", "is greater than max_current")
    for key in ("max_current", "max_slew", "max_step"):
        if getattr(limits, key) <= 0:
            raise table.error(key, "must be greater than zero")
    table.finish()
    return limits
