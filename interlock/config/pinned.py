"""A bench and its profile put together, cross-checked, and pinned for the limit engine.

This is where a profile is held against the bench it runs on: every net it
limits must be wired, every relay it names must exist, and no limit may
exceed what the wired instrument (or relay contact) can deliver: a profile
may only tighten.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from interlock.catalog import RELAY_BOARDS, SUPPLIES, SWITCHES
from interlock.config.bench import Bench, load_bench
from interlock.config.bounds import show
from interlock.config.profile import Profile, load_profile
from interlock.dialects import Capabilities, SupplyChannel, dialect_of
from interlock.errors import ConfigError
from interlock.limits.measurements import ovp_level
from interlock.limits.model import NetLimits, OpenBeforeChangeRule, PinnedLimits, RelayGroupRule
from interlock.units import DURATION


@dataclass(frozen=True)
class Configuration:
    """What is in force on a bench: its description, its DUT profile, the pinned limits."""

    bench: Bench
    profile: Profile
    limits: PinnedLimits

    @property
    def hashes(self) -> dict[str, str]:
        return {
            str(self.bench.path): self.bench.sha256,
            str(self.profile.path): self.profile.sha256,
        }

    @property
    def power_off_channels(self) -> tuple[WiredChannel, ...]:
        return power_off_channels(self.bench, self.limits.power_off)


@dataclass(frozen=True)
class WiredChannel:
    """A supply channel the bench wires to a DUT net."""

    net: str
    supply: str  # instrument name
    channel: int


def power_off_channels(bench: Bench, power_off: Sequence[str]) -> tuple[WiredChannel, ...]:
    """Every wired supply channel, the profile's power-off order first, then the others
    in the bench's order: the order the safe state and the guardian turn them off in."""
    order = [net for net in power_off if net in bench.wiring]
    order += [net for net in bench.wiring if net not in order]
    return tuple(
        WiredChannel(net, wiring.supply.instrument, wiring.supply.channel)
        for net in order
        if (wiring := bench.wiring[net]).supply is not None
    )


def load_configuration(
    bench_path: str | Path = "bench.toml", profile_path: str | Path | None = None
) -> Configuration:
    """Load bench.toml and its profile (or ``profile_path`` instead), cross-check and pin them."""
    bench = load_bench(bench_path)
    try:
        profile = load_profile(profile_path if profile_path is not None else bench.profile_path)
    except ConfigError as error:
        if profile_path is None and not error.key and error.problem == "file not found":
            # Named where it was written: the fix is in bench.toml, or a file to restore.
            raise ConfigError(
                bench.shown_path, "bench.profile", f"{error.file}: file not found"
            ) from None
        raise
    return Configuration(bench, profile, pin_limits(bench, profile))


def resolve_relay(bench: Bench, profile: Profile, key: str, reference: str) -> str:
    """A profile names relays by role (``VBUS.power``, ``ID.sense``); find the bench's relay."""
    net, dot, role = reference.partition(".")
    if dot:
        wiring = bench.wiring.get(net)
        if wiring is None:
            raise ConfigError(
                profile.shown_path,
                key,
                f'"{reference}": net {net} is not wired on bench {bench.name} ({bench.shown_path})',
            )
        relay = {"power": wiring.power_relay, "sense": wiring.sense_relay}.get(role, "")
        if relay == "":
            raise ConfigError(
                profile.shown_path, key, f'"{reference}": expected NET.power or NET.sense'
            )
        if relay is None:
            raise ConfigError(
                profile.shown_path,
                key,
                f'"{reference}": net {net} has no {role} relay on bench {bench.name}',
            )
        return relay
    if reference not in bench.relays:
        raise ConfigError(
            profile.shown_path,
            key,
            f'unknown relay "{reference}" on bench {bench.name} ({bench.shown_path})',
        )
    return reference


def pin_limits(bench: Bench, profile: Profile) -> PinnedLimits:
    _check_monitor_period(bench)
    _check_common_output(bench)
    _check_capabilities(bench, profile)
    _check_safe_to_mate_wiring(bench, profile)
    if profile.identity is not None:
        _check_identity_wiring(bench, profile)

    never_together = []
    capacity = min(
        (
            RELAY_BOARDS[b.identity.model].forbidden_pairs
            for b in bench.instruments_of("switch")
            if b.identity.model in RELAY_BOARDS
        ),
        default=16,
    )
    pairs = 0
    for group in profile.never_together:
        # The board enforces these too, as pairs: they must fit in its table.
        pairs += len(group.relays) * (len(group.relays) - 1) // 2
        if pairs > capacity:
            raise ConfigError(
                profile.shown_path,
                group.key,
                f"the relay board holds {capacity} forbidden pairs; "
                f"the never-together rules make {pairs} by here",
            )
        relays = frozenset(
            resolve_relay(bench, profile, f"{group.key}.relays", r) for r in group.relays
        )
        never_together.append(
            RelayGroupRule(group.key, profile.where(group.key), relays, group.reason)
        )
    open_before = []
    for rule in profile.open_before_change:
        relays = frozenset(
            resolve_relay(bench, profile, f"{rule.key}.relays", r) for r in rule.relays
        )
        open_before.append(
            OpenBeforeChangeRule(rule.key, profile.where(rule.key), rule.net, relays, rule.reason)
        )

    return PinnedLimits(
        nets=dict(profile.nets),
        relays=frozenset(bench.relays),
        power_relays={net: bench.wiring[net].power_relay for net in profile.nets},
        never_together=tuple(never_together),
        open_before_change=tuple(open_before),
        power_on=profile.power_on,
        power_off=profile.power_off,
        max_total_power=profile.max_total_power,
        profile_file=profile.shown_path,
        bench_file=bench.shown_path,
        supply_floors=_supply_floors(bench, profile),
        supply_ranges=_supply_ranges(bench, profile),
        ovp_levels={net: ovp_level(limits.max_voltage) for net, limits in profile.nets.items()},
        identity=profile.identity,
        unlisted_max_stray_voltage=profile.unlisted_max_stray_voltage,
    )


def _supply_floors(bench: Bench, profile: Profile) -> dict[str, tuple[float, str]]:
    floors = {}
    for net in profile.nets:
        supply = bench.wiring[net].supply
        model = SUPPLIES[bench.instruments[supply.instrument].identity.model]
        floors[net] = (
            model.channels[supply.channel].min_current,
            f"{model.model} CH{supply.channel}",
        )
    return floors


def _supply_ranges(bench: Bench, profile: Profile) -> dict[str, str]:
    """The output range of each net whose supply channel has ranges (checked to exist by
    ``_check_capabilities``)."""
    ranges = {}
    for net, limits in profile.nets.items():
        supply = bench.wiring[net].supply
        model = SUPPLIES[bench.instruments[supply.instrument].identity.model]
        channel = model.channels[supply.channel]
        chosen = channel.range_for(limits.max_voltage, limits.max_current)
        if chosen is not None:
            ranges[net] = chosen.name
    return ranges


def _check_safe_to_mate_wiring(bench: Bench, profile: Profile) -> None:
    """Going live measures the net first (safe-to-mate): through its sense relay, by the meter."""
    for net in profile.nets:
        wiring = bench.wiring.get(net)
        if wiring is not None and wiring.sense_relay is None:
            raise ConfigError(
                profile.shown_path,
                f"nets.{net}.safe_to_mate",
                f"net {net} has no sense relay on bench {bench.name} ({bench.shown_path}) "
                "to measure it through",
            )
    if profile.nets and bench.meter is None:
        raise ConfigError(
            bench.shown_path,
            "meter",
            f"missing: profile {profile.shown_path} measures each net with a meter "
            "before it goes live",
        )


def _check_identity_wiring(bench: Bench, profile: Profile) -> None:
    net = profile.identity.net
    wiring = bench.wiring.get(net)
    if wiring is None or wiring.sense_relay is None:
        raise ConfigError(
            profile.shown_path,
            "identity.net",
            f"net {net} has no sense relay on bench {bench.name} ({bench.shown_path})",
        )
    if bench.meter is None:
        raise ConfigError(
            bench.shown_path,
            "meter",
            f"missing: profile {profile.shown_path} checks the DUT identity with a meter",
        )


def _check_required(
    profile: Profile, net: str, instrument: str, model: str, limits: NetLimits, caps: Capabilities
) -> None:
    """A net's supply has what the profile requires of it (by default: the protections it
    has are used, so a supply without OCP leaves over-current to the monitor)."""
    for capability in limits.require or ():
        if not caps.has(capability):
            raise ConfigError(
                profile.shown_path,
                f"nets.{net}.require",
                f"net {net} requires {capability}; its supply {instrument} ({model}) has none",
            )


def _check_range(
    profile: Profile, net: str, what: str, channel: SupplyChannel, limits: NetLimits
) -> None:
    """A channel with output ranges delivers its maxima only one range at a time: one range
    must cover both the net's max_voltage and its max_current (the first that does is
    selected at arming; the OVP level's range does not depend on the output range)."""
    if not channel.ranges or channel.range_for(limits.max_voltage, limits.max_current):
        return
    ranges = ", ".join(
        f"{r.name} {r.max_voltage:g} V / {r.max_current:g} A" for r in channel.ranges
    )
    raise ConfigError(
        profile.shown_path,
        f"nets.{net}",
        f"max_voltage {limits.max_voltage:g} V with max_current {limits.max_current:g} A: "
        f"no output range of the {what} delivers both ({ranges}); a profile may only tighten",
    )


def _check_common_output(bench: Bench) -> None:
    """One net per shared output switch: a supply whose outputs share one switch (the
    E3631A's OUTP) turns every output on with any one, so a second net on it would go
    live without its own safe-to-mate, readback and power-on order."""
    fed: dict[str, str] = {}
    for net, wiring in bench.wiring.items():
        if wiring.supply is None:
            continue
        name = wiring.supply.instrument
        dialect = dialect_of(bench.instruments[name].identity.model)
        if dialect is None or not dialect.capabilities.common_output:
            continue
        if name in fed:
            raise ConfigError(
                bench.shown_path,
                f"wiring.{net}.supply",
                f"{name} ({dialect.title}) switches all its outputs at once (one net per "
                f"shared output switch): it already feeds {fed[name]}, so {net} would go "
                "live with it",
            )
        fed[name] = net


def _check_monitor_period(bench: Bench) -> None:
    """One monitor pass over every wired channel of a supply fits in the monitor period:
    a dialect without channel lists or compound lines takes an exchange per query and
    channel, each at least its minimum gap after the last."""
    channels: dict[str, int] = {}
    for wiring in bench.wiring.values():
        if wiring.supply is not None:
            channels[wiring.supply.instrument] = channels.get(wiring.supply.instrument, 0) + 1
    for name, count in channels.items():
        dialect = dialect_of(bench.instruments[name].identity.model)
        exchanges = dialect.poll_exchanges(count)
        needed = exchanges * dialect.link.min_gap
        if needed > bench.service.monitor_period:
            raise ConfigError(
                bench.shown_path,
                "service.monitor_period",
                f"{show(bench.service.monitor_period, DURATION)} is shorter than one pass over "
                f"{name} ({dialect.title}): {exchanges} exchanges at least "
                f"{show(dialect.link.min_gap, DURATION)} apart take {show(needed, DURATION)}",
            )


def _check_capabilities(bench: Bench, profile: Profile) -> None:
    """Every limit must be within what the wired supply channel and relay contact can deliver."""
    for net, limits in profile.nets.items():
        key = f"nets.{net}"
        wiring = bench.wiring.get(net)
        if wiring is None or wiring.supply is None:
            raise ConfigError(
                profile.shown_path,
                key,
                f"net {net} has no supply on bench {bench.name} ({bench.shown_path} [wiring])",
            )
        instrument = bench.instruments[wiring.supply.instrument]
        model = SUPPLIES.get(instrument.identity.model)
        if model is None:
            raise ConfigError(
                bench.shown_path,
                f"instruments.{instrument.name}.identity.model",
                f'unknown power supply model "{instrument.identity.model}" '
                f"(known: {', '.join(sorted(SUPPLIES))})",
            )
        channel = model.channels.get(wiring.supply.channel)
        if channel is None:
            raise ConfigError(
                bench.shown_path,
                f"wiring.{net}.supply.channel",
                f"the {model.model} has no channel {wiring.supply.channel}",
            )
        ceilings = [
            (
                "max_voltage",
                limits.max_voltage,
                channel.max_voltage,
                "V",
                f"{model.model} CH{wiring.supply.channel}",
            ),
            (
                "max_current",
                limits.max_current,
                channel.max_current,
                "A",
                f"{model.model} CH{wiring.supply.channel}",
            ),
        ]
        relay = bench.relays[wiring.power_relay]
        # Every switch unit's contacts carry the net: the board's or any other unit's.
        board = SWITCHES.get(bench.instruments[relay.board].identity.model)
        if board is None:
            raise ConfigError(
                bench.shown_path,
                f"instruments.{relay.board}.identity.model",
                f'unknown switch unit model "{bench.instruments[relay.board].identity.model}" '
                f"(known: {', '.join(sorted(SWITCHES))})",
            )
        ceilings += [
            (
                "max_voltage",
                limits.max_voltage,
                board.contact_max_voltage,
                "V",
                f"relay {relay.name} contact rating",
            ),
            (
                "max_current",
                limits.max_current,
                board.contact_max_current,
                "A",
                f"relay {relay.name} contact rating",
            ),
        ]
        for field, value, ceiling, unit, what in ceilings:
            if value > ceiling:
                raise ConfigError(
                    profile.shown_path,
                    f"{key}.{field}",
                    f"{value:g} {unit} is beyond what the {what} can deliver ({ceiling:g} {unit}); "
                    "a profile may only tighten",
                )
        # A channel or a contact rated in watts as well delivers or switches its full
        # current only at low voltage: the net's highest voltage at its highest current
        # must fit.
        switched = limits.max_voltage * limits.max_current
        for watts, what, whose in (
            (channel.max_power, f"the {model.model} CH{wiring.supply.channel} can deliver", ""),
            (board.contact_max_power, f"relay {relay.name}'s contacts may switch", board.model),
        ):
            if switched > watts:
                rating = f"{watts:g} W, {whose}" if whose else f"{watts:g} W"
                raise ConfigError(
                    profile.shown_path,
                    f"{key}.max_current",
                    f"{limits.max_voltage:g} V at {limits.max_current:g} A is {switched:g} W, "
                    f"beyond what {what} ({rating}); a profile may only tighten",
                )
        _check_range(profile, net, f"{model.model} CH{wiring.supply.channel}", channel, limits)
        caps = dialect_of(model.model).capabilities
        _check_required(profile, net, instrument.name, model.model, limits, caps)
        if caps.has("ovp") and ovp_level(limits.max_voltage) > channel.max_ovp:
            raise ConfigError(
                profile.shown_path,
                f"{key}.max_voltage",
                f"{limits.max_voltage:g} V leaves no room for the over-voltage protection of "
                f"the {model.model} CH{wiring.supply.channel} (at most {channel.max_ovp:g} V)",
            )
