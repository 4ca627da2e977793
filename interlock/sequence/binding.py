"""Holding a sequence against the bench it is about to run on.

First the target: a sequence written for another DUT type is refused before
anything else is looked at (exit 3), because its limits, nets and wiring were
never meant for this board. Then the names: every net must be one the
profile limits (and a measured net must have a supply to measure it with),
and every relay is resolved against the bench's wiring. Relays are named by
role (``MOTOR.power``, ``VBUS.sense``) as in profiles, so one sequence runs on
any bench wired for its DUT; a bench relay name (``K3``) is accepted too.
"""

from __future__ import annotations

from dataclasses import replace

from interlock.config import Configuration
from interlock.errors import ConfigError, LimitViolation
from interlock.sequence.model import Sequence, Step, collected


def check_profile(sequence: Sequence, configuration: Configuration) -> None:
    """Refuse a sequence written for another DUT than the one this bench is set up for."""
    profile = configuration.profile
    if sequence.profile != profile.name:
        raise LimitViolation(
            f'written for "{sequence.profile}", but bench '
            f'{configuration.bench.name} is set up for "{profile.name}" ({profile.shown_path}): '
            "not run",
            "sequence.profile",
            sequence.where("sequence.profile"),
        )


def bind(sequence: Sequence, configuration: Configuration) -> Sequence:
    """The sequence with relays resolved to the bench's names; one ConfigError naming
    every unknown name at once."""
    check_profile(sequence, configuration)
    steps, errors = [], []
    for step in sequence.steps:
        try:
            steps.append(_bind_step(sequence, step, configuration))
        except ConfigError as error:
            errors.append(error)
    if errors:
        raise collected(errors)
    return replace(sequence, steps=tuple(steps))


def _bind_step(sequence: Sequence, step: Step, configuration: Configuration) -> Step:
    bench, limits = configuration.bench, configuration.limits
    if step.net is not None:
        if step.net not in limits.nets:
            raise ConfigError(
                sequence.shown_path,
                f"{step.key}.net",
                f'unknown net "{step.net}" (profile {configuration.profile.name} limits '
                f"{', '.join(sorted(limits.nets))})",
            )
        wiring = bench.wiring.get(step.net)
        if step.action == "measure" and (wiring is None or wiring.supply is None):
            raise ConfigError(
                sequence.shown_path,
                f"{step.key}.net",
                f"{step.net} has no supply on bench {bench.name} to measure it with",
            )
    if step.relay is not None:
        return replace(step, relay=resolve_relay(sequence, step, configuration))
    return step


def resolve_relay(sequence: Sequence, step: Step, configuration: Configuration) -> str:
    bench = configuration.bench
    reference = step.relay or ""
    key = f"{step.key}.relay"
    net, dot, role = reference.partition(".")
    if not dot:
        if reference not in bench.relays:
            raise ConfigError(
                sequence.shown_path,
                key,
                f'unknown relay "{reference}" on bench {bench.name} '
                f"(relays: {', '.join(sorted(bench.relays))})",
            )
        return reference
    wiring = bench.wiring.get(net)
    if wiring is None:
        raise ConfigError(
            sequence.shown_path, key, f'"{reference}": net {net} is not wired on bench {bench.name}'
        )
    if role not in ("power", "sense"):
        raise ConfigError(
            sequence.shown_path, key, f'"{reference}": expected NET.power or NET.sense'
        )
    relay = wiring.power_relay if role == "power" else wiring.sense_relay
    if relay is None:
        raise ConfigError(
            sequence.shown_path,
            key,
            f'"{reference}": net {net} has no {role} relay on bench {bench.name}',
        )
    return relay
