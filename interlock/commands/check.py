"""``interlock check``: validate a bench and its profile, print the resolved limits."""

from __future__ import annotations

import argparse

from interlock.commands.common import add_bench_argument, banner, bench_file
from interlock.config import Configuration, load_configuration
from interlock.config.bench import Instrument
from interlock.units import (
    CURRENT,
    DURATION,
    POWER,
    RATIO,
    RESISTANCE,
    SLEW_RATE,
    VOLTAGE,
    format_quantity,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="validate bench.toml and its profile; print the resolved limits",
        description="Validate the bench and its DUT profile and print the limits in force.",
    )
    add_bench_argument(parser)
    parser.add_argument(
        "--profile", metavar="FILE", help="check this profile instead of the bench's own"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    configuration = load_configuration(bench_file(args), args.profile)
    print(render(configuration))
    return 0


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    return [line.format(*headers).rstrip(), line.format(*("-" * w for w in widths)).rstrip()] + [
        line.format(*row).rstrip() for row in rows
    ]


def render(configuration: Configuration) -> str:
    bench, profile, limits = configuration.bench, configuration.profile, configuration.limits
    q = format_quantity
    out = [
        banner(bench),
        f"bench file   {bench.shown_path}  sha256 {bench.sha256[:16]}",
        f"profile      {profile.name} ({profile.shown_path})  sha256 {profile.sha256[:16]}",
        "",
        "Instruments",
    ]
    out += _table(
        ["name", "driver", "where", "expected identity"],
        [[i.name, i.driver, _where(i), str(i.identity)] for i in bench.instruments.values()],
    )
    out += ["", "Nets"]
    rows = []
    for net in profile.power_on:
        n = limits.nets[net]
        wiring = bench.wiring[net]
        mate = n.safe_to_mate
        rows.append(
            [
                net,
                f"{wiring.supply} via {wiring.power_relay}",
                f"{q(n.min_voltage, VOLTAGE)} .. {q(n.max_voltage, VOLTAGE)}",
                q(n.max_current, CURRENT),
                q(n.max_step, VOLTAGE),
                q(n.max_slew, SLEW_RATE),
                f"{q(n.readback_absolute, VOLTAGE)} + {q(n.readback_relative, RATIO)}",
                q(n.settle_time, DURATION),
                f"{q(n.live_min_current, CURRENT)} .. {q(n.live_max_current, CURRENT)}",
                f"{q(mate.min_resistance, RESISTANCE)} .. {q(mate.max_resistance, RESISTANCE)}",
                q(mate.max_stray_voltage, VOLTAGE),
            ]
        )
    out += _table(
        [
            "net",
            "supply",
            "voltage",
            "max current",
            "max step",
            "max slew",
            "readback tol",
            "settle",
            "live current",
            "mate resistance",
            "max stray",
        ],
        rows,
    )
    out += ["", "Rules"]
    out.append(f"power-on order   {' -> '.join(limits.power_on)}")
    out.append(f"power-off order  {' -> '.join(limits.power_off)}")
    out.append(f"max total power  {q(limits.max_total_power, POWER)}")
    for group in limits.never_together:
        out.append(f"never together   {', '.join(sorted(group.relays))}  ({group.where})")
    for rule in limits.open_before_change:
        out.append(
            f"open before {rule.net} changes: {', '.join(sorted(rule.relays))}  ({rule.where})"
        )
    if profile.identity is not None:
        ident = profile.identity
        out.append(
            f"DUT identity     {ident.net} measures "
            f"{q(ident.min_resistance, RESISTANCE)} .. {q(ident.max_resistance, RESISTANCE)}"
        )
    out += ["", "configuration OK"]
    return "\n".join(out)


def _where(instrument: Instrument) -> str:
    """Where it is reached, and for a meter with a front/rear switch, which inputs."""
    where = instrument.where
    return f"{where} ({instrument.terminals} inputs)" if instrument.terminals else where
