"""Every rule of the engine: its name, what it refuses or trips on, where it is
defined and which function enforces it. "Where is rule X enforced?" has one
answer, here; the README's table is rendered from it (:func:`rule_table`),
and tests hold both the table and this list to what the engine returns.

Names are as verdicts and findings carry them, with placeholders: ``<net>``
for a net of the profile, ``<i>`` for a rule's index in its array.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from interlock.catalog import RELAY_BOARDS
from interlock.limits.measurements import (
    DEFAULT_MAX_STRAY_VOLTAGE,
    OVP_MARGIN_ABSOLUTE,
    OVP_MARGIN_RELATIVE,
)
from interlock.limits.model import CURRENT_READBACK_RESOLUTION
from interlock.limits.ramps import RAMP_MAX_SECONDS, RAMP_MAX_STEPS

REQUEST = "request"
MEASUREMENT = "measurement"

PROFILE = "`profiles/<dut>.toml`"
BENCH = "`bench.toml`"
CATALOGUE = "`interlock/catalog.py`"

_STRAY_DEFAULT = f"{DEFAULT_MAX_STRAY_VOLTAGE:g} V (`DEFAULT_MAX_STRAY_VOLTAGE`) when not set"
_OVP = (
    f"max_voltage + the larger of {OVP_MARGIN_ABSOLUTE:g} V and {OVP_MARGIN_RELATIVE:.0%} "
    "(`ovp_level`)"
)
_CONTACT_SETTLE = sorted({m.contact_settle_time for m in RELAY_BOARDS.values()})


@dataclass(frozen=True)
class Rule:
    """One rule: its name (a pattern), when it applies, what it refuses or trips on,
    where it is defined, and the engine function that enforces it (and who asks)."""

    name: str
    when: str
    refuses: str
    defined: str
    enforced: str

    def matches(self, name: str) -> bool:
        return _pattern(self.name).fullmatch(name) is not None


def _pattern(name: str) -> re.Pattern[str]:
    parts = re.split(r"(<net>|<i>)", name)
    regex = "".join(
        r"[^.]+" if p == "<net>" else r"\d+" if p == "<i>" else re.escape(p) for p in parts
    )
    return re.compile(regex)


def _key(where: str, *keys: str) -> str:
    return f"{where}: " + ", ".join(f"`{k}`" for k in keys)


RULES: tuple[Rule, ...] = (
    # --- request time: one requested change against the limits and the whole state ---
    Rule(
        "request",
        REQUEST,
        "a request that is not one: an unknown kind, an output or relay neither on nor off",
        "built-in",
        "`requests.evaluate`",
    ),
    Rule(
        "finite-value",
        f"{REQUEST}, {MEASUREMENT}",
        "a value that is not a finite number (NaN, an infinity, a bool, an int beyond any "
        "float); a live reading that is not one",
        "built-in",
        "`requests.check_finite` (the controller and the service); `measurements.check_live`",
    ),
    Rule(
        "nets",
        REQUEST,
        "a net the profile does not name; a live net without limits",
        _key(PROFILE, "nets"),
        "`requests.evaluate`",
    ),
    Rule(
        "relays",
        REQUEST,
        "a relay the bench does not name",
        _key(BENCH, "relays"),
        "`requests.evaluate`",
    ),
    Rule(
        "nets.<net>.min_voltage",
        REQUEST,
        "a setpoint below the net's minimum",
        _key(PROFILE, "nets.<net>.min_voltage"),
        "`requests.evaluate`",
    ),
    Rule(
        "nets.<net>.max_voltage",
        REQUEST,
        "a setpoint above the net's maximum; a live net outside its range",
        _key(PROFILE, "nets.<net>.max_voltage"),
        "`requests.evaluate`",
    ),
    Rule(
        "nets.<net>.max_step",
        REQUEST,
        "a step on a live net larger than `max_step` (ramp it); turning on above it",
        _key(PROFILE, "nets.<net>.max_step"),
        "`requests.evaluate`",
    ),
    Rule(
        "nets.<net>.max_slew",
        REQUEST,
        "a step on a live net sooner than `max_slew` allows since its last change",
        _key(PROFILE, "nets.<net>.max_slew"),
        "`requests.evaluate`",
    ),
    Rule(
        "nets.<net>.max_current",
        REQUEST,
        "a current limit of 0 A or less or above the maximum; turning on without one",
        _key(PROFILE, "nets.<net>.max_current"),
        "`requests.evaluate`",
    ),
    Rule(
        "supply.min_current",
        REQUEST,
        "a current limit below what the wired supply channel regulates at",
        _key(BENCH, "wiring.<net>.supply") + f" (the model's `min_current`, {CATALOGUE})",
        "`requests.evaluate`",
    ),
    Rule(
        "sequencing.power_on",
        REQUEST,
        "turning a net on while a net listed before it is off",
        _key(PROFILE, "sequencing.power_on"),
        "`requests.evaluate`",
    ),
    Rule(
        "sequencing.power_off",
        REQUEST,
        "turning a net off while a net listed before it is on",
        _key(PROFILE, "sequencing.power_off"),
        "`requests.evaluate`",
    ),
    Rule(
        "hot-switch",
        REQUEST,
        "switching the relay that feeds a net whose output is on",
        _key(BENCH, "wiring.<net>.power_relay"),
        "`requests.evaluate`",
    ),
    Rule(
        "rules.never_together[<i>]",
        REQUEST,
        "two relays of the group closed at once",
        _key(PROFILE, "rules.never_together[<i>]"),
        "`requests.check_state`; the relay board's own table too",
    ),
    Rule(
        "rules.open_before_change[<i>]",
        REQUEST,
        "a change to the net while a listed relay is closed",
        _key(PROFILE, "rules.open_before_change[<i>]"),
        "`requests.evaluate`",
    ),
    Rule(
        "rules.max_total_power",
        REQUEST,
        "live nets whose setpoint x current limit add up to more",
        _key(PROFILE, "rules.max_total_power"),
        "`requests.check_state`",
    ),
    Rule(
        "ramp.max_steps",
        REQUEST,
        "a ramp of more steps than any ramp inside the net's range needs, or than "
        f"{RAMP_MAX_STEPS} (`RAMP_MAX_STEPS`, which also bounds a profile's range at load)",
        _key(PROFILE, "nets.<net>.max_step") + "; built-in",
        "`ramps.check_ramp`; `config.profile` at load",
    ),
    Rule(
        "ramp.max_duration",
        REQUEST,
        f"a ramp that waits more than {RAMP_MAX_SECONDS:g} s between its steps "
        "(`RAMP_MAX_SECONDS`, which also bounds a profile's range at load)",
        "built-in, with " + _key(PROFILE, "nets.<net>.max_slew"),
        "`ramps.check_ramp`; `config.profile` at load",
    ),
    Rule(
        "ramp.interrupted",
        REQUEST,
        "a ramp's next step after another request changed its net, or the limits were pinned again",
        "built-in",
        "`ramps.continue_ramp` (actuation, at each step)",
    ),
    # --- measurement time: what the instruments report -----------------------------------
    Rule(
        "live.protection_tripped",
        MEASUREMENT,
        f"a live net's supply protection tripped (OVP at {_OVP}; OCP armed at arming)",
        "built-in",
        "`measurements.check_live` (monitor; energising, after the settle time)",
    ),
    Rule(
        "live.protection_off",
        MEASUREMENT,
        "a live net's over-current protection reads off",
        "built-in",
        "`measurements.check_live` (monitor; energising, after the settle time)",
    ),
    Rule(
        "live.max_voltage",
        MEASUREMENT,
        "a live net reading above its maximum by more than the readback tolerance",
        _key(PROFILE, "nets.<net>.max_voltage", "readback_absolute", "readback_relative"),
        "`measurements.check_live` (monitor; energising, after the settle time)",
    ),
    Rule(
        "live.regulation",
        MEASUREMENT,
        "a live net reading outside its setpoints (during a step: old and new) +- the "
        "readback tolerance; low only once settled (`settle_time` since its last change)",
        _key(PROFILE, "nets.<net>.readback_absolute", "readback_relative", "settle_time"),
        "`measurements.check_live` (monitor; energising, after the settle time)",
    ),
    Rule(
        "nets.<net>.live_max_current",
        MEASUREMENT,
        "a live net drawing more than its window",
        _key(PROFILE, "nets.<net>.live_max_current"),
        "`measurements.check_live` (monitor; energising, after the settle time)",
    ),
    Rule(
        "nets.<net>.live_min_current",
        MEASUREMENT,
        "a live net drawing less than its window, once settled; the dry run refuses a live "
        "net at 0 V for it",
        _key(PROFILE, "nets.<net>.live_min_current", "settle_time"),
        "`measurements.check_live` (monitor; energising); `check_live_at_zero` (dry run)",
    ),
    Rule(
        "readback.voltage",
        MEASUREMENT,
        "a setpoint read back beyond the tolerance: when set, and before going live",
        _key(PROFILE, "nets.<net>.readback_absolute", "readback_relative"),
        "`measurements.check_readback` (actuation, arming, energising)",
    ),
    Rule(
        "readback.current_limit",
        MEASUREMENT,
        "a current limit read back beyond the relative tolerance, and at least "
        f"{CURRENT_READBACK_RESOLUTION * 1000:g} mA (`CURRENT_READBACK_RESOLUTION`)",
        _key(PROFILE, "nets.<net>.readback_relative"),
        "`measurements.check_readback` (actuation, arming, energising)",
    ),
    Rule(
        "readback.ovp",
        MEASUREMENT,
        f"the over-voltage protection read back beyond the tolerance of {_OVP}",
        _key(PROFILE, "nets.<net>.max_voltage", "readback_absolute", "readback_relative"),
        "`measurements.check_readback` (arming, energising)",
    ),
    Rule(
        "readback.range",
        MEASUREMENT,
        "a supply's output range read back other than the one selected at arming (the first "
        "of its channel's `ranges` that covers the net's maximum voltage and current), at "
        "arming or before the net goes live",
        _key(PROFILE, "nets.<net>.max_voltage", "max_current")
        + ", with the model's `ranges` (`interlock/dialects/<family>.toml`)",
        "`measurements.check_range` (arming; energising, with the output still off)",
    ),
    Rule(
        "readback.ocp",
        MEASUREMENT,
        "over-current protection reading off when armed, or before going live",
        "built-in",
        "`measurements.check_protection_armed` (arming); `check_off_before_live` (energising)",
    ),
    Rule(
        "readback.output",
        MEASUREMENT,
        "an output not as commanded after `OUTP ON` / `OUTP OFF`; on or tripped before "
        "its relay closes",
        "built-in",
        "`measurements.check_output` (actuation, energising); `check_off_before_live`",
    ),
    Rule(
        "safe-to-mate.stray_voltage",
        MEASUREMENT,
        "a net carrying a stray voltage, its supply disconnected, before it goes live",
        _key(PROFILE, "nets.<net>.safe_to_mate.max_stray_voltage"),
        "`measurements.check_mate_stray` (energising)",
    ),
    Rule(
        "safe-to-mate.resistance",
        MEASUREMENT,
        "a net measuring outside its resistance window before it goes live: miswired, wrong DUT",
        _key(PROFILE, "nets.<net>.safe_to_mate.min_resistance", "max_resistance"),
        "`measurements.check_mate_resistance` (energising)",
    ),
    Rule(
        "identity.stray_voltage",
        MEASUREMENT,
        "the DUT's ID net carrying a stray voltage before its resistor is measured",
        _key(PROFILE, "identity.max_stray_voltage") + f"; {_STRAY_DEFAULT}",
        "`measurements.check_identity_stray` (energising: at arming, before the first net "
        "goes live)",
    ),
    Rule(
        "identity.dut",
        MEASUREMENT,
        "the DUT's ID resistor outside its window: at arming, and before the first net goes live",
        _key(PROFILE, "identity.min_resistance", "max_resistance"),
        "`measurements.check_dut_identity` (energising)",
    ),
    Rule(
        "identity.instrument",
        MEASUREMENT,
        "an instrument whose `*IDN?` maker, model or serial is not the bench's: at connect, "
        "at every arm, at reset, and by the guardian",
        _key(BENCH, "instruments.<name>.identity"),
        "`measurements.same_instrument` (instruments, guardian)",
    ),
    Rule(
        "all-off.output",
        MEASUREMENT,
        "a supply output found on with nothing live: at connect, arming and reset",
        "built-in",
        "`measurements.check_channel_off` (start-up and arming)",
    ),
    Rule(
        "all-off.protection",
        MEASUREMENT,
        "a supply protection trip found latched: at connect and arming",
        "built-in",
        "`measurements.check_channel_off` (start-up and arming)",
    ),
    Rule(
        "all-off.coupling",
        MEASUREMENT,
        "a supply channel found tracking another (a setpoint for one would change the "
        "other): at connect, arming, reset and before a net goes live",
        "built-in",
        "`measurements.check_coupling` (start-up, arming, before going live)",
    ),
    Rule(
        "all-off.relays",
        MEASUREMENT,
        "a relay found closed (coil or contact) with nothing live",
        "built-in",
        "`measurements.check_relays_open` (start-up and arming)",
    ),
    Rule(
        "all-off.stray_voltage",
        MEASUREMENT,
        "a supply channel measuring a voltage with its output off, at arming",
        _key(PROFILE, "nets.<net>.safe_to_mate.max_stray_voltage")
        + "; for a channel of no net in the profile "
        + _key(PROFILE, "rules.unlisted_max_stray_voltage")
        + f", {_STRAY_DEFAULT}",
        "`measurements.check_off_voltage` (start-up and arming)",
    ),
    Rule(
        "contact-sense",
        MEASUREMENT,
        "relay contacts not following their coils within the board's contact settle time "
        f"({', '.join(f'{t:g} s' for t in _CONTACT_SETTLE)})",
        _key(CATALOGUE, "RelayBoardModel.contact_settle_time"),
        "`measurements.check_contacts` (actuation)",
    ),
)


def rule_named(name: str) -> Rule | None:
    """The registry's entry for a rule name as a verdict or finding carries it."""
    return next((rule for rule in RULES if rule.matches(name)), None)


def rule_table() -> str:
    """The registry as a Markdown table, as the README shows it."""
    lines = [
        "| rule | when | refuses or trips on | defined | enforced in |",
        "|---|---|---|---|---|",
    ]
    for rule in RULES:
        cells = (f"`{rule.name}`", rule.when, rule.refuses, rule.defined, rule.enforced)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m interlock.limits.registry: the README's table
    print(rule_table())
