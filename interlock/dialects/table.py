"""The README's table of supported models, rendered from the dialect files.

``python -m interlock.dialects.table`` prints it; a test holds the README's copy
equal to it, so what the README promises is what the files say.
"""

from __future__ import annotations

import math

from interlock.dialects import dialects
from interlock.dialects.model import MeterModel, SupplyChannel, SupplyModel, SwitchModel

START = "<!-- supported-models:start -->"
END = "<!-- supported-models:end -->"


def _channel(number: int, channel: SupplyChannel) -> str:
    if channel.ranges:  # each range as it is selected: P15V 15 V / 7 A or P30V 30 V / 4 A
        return f"CH{number} " + " or ".join(
            f"{r.name} {r.max_voltage:g} V / {r.max_current:g} A" for r in channel.ranges
        )
    volts = f"{channel.max_voltage:g} V"
    if channel.min_voltage < 0:
        volts = f"{channel.min_voltage:g}..{volts}"
    watts = f" / {channel.max_power:g} W" if math.isfinite(channel.max_power) else ""
    return f"CH{number} {volts} / {channel.max_current:g} A{watts}"


def _ranges(model: object) -> str:
    if isinstance(model, SupplyModel):
        return "; ".join(_channel(n, c) for n, c in sorted(model.channels.items()))
    if isinstance(model, MeterModel):
        return f"{model.max_dc_voltage:g} V DC, {model.max_resistance:g} ohm"
    if isinstance(model, SwitchModel):
        contacts = f"{model.contact_max_voltage:g} V / {model.contact_max_current:g} A"
        if math.isfinite(model.contact_max_power):
            contacts += f" / {model.contact_max_power:g} W"
        return f"{model.relays} relays, {contacts}"
    return ""


def supported_models_table() -> str:
    rows = [
        "| kind | family (dialect file) | model | ranges | transport | capabilities | "
        "unconfirmed: verify on hardware before use |",
        "|---|---|---|---|---|---|---|",
    ]
    for dialect in sorted(dialects().values(), key=lambda d: (d.kind, d.name)):
        caps = ", ".join(dialect.capabilities.names()) or "-"
        link = dialect.link
        transport = link.kind + (f" :{link.port}" if link.port else f" {link.baud} baud")
        if link.reached:  # the port is the twin's only: say how a real unit is reached
            transport = f"{link.reached} (twin: {transport})"
        if link.min_gap:
            transport += f", {link.min_gap * 1000:g} ms gap"
        for name, model in dialect.models.items():
            unconfirmed = [
                *dialect.unconfirmed,
                *dialect.capabilities.unconfirmed,
                *model.unconfirmed,
            ]
            rows.append(
                f"| {dialect.kind} | {dialect.title} (`{dialect.name.replace('-', '_')}.toml`) "
                f"| {model.maker} {name} | {_ranges(model)} | {transport} | {caps} | "
                f"{'; '.join(unconfirmed) or '-'} |"
            )
    return "\n".join(rows)


if __name__ == "__main__":
    print(supported_models_table())
