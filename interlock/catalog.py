"""What each supported instrument model can deliver, per channel: read from the
dialect files (:mod:`interlock.dialects`), kept here under the names the
configuration, the simulator and the drivers have always used.

A profile may only tighten these: a limit beyond what the instrument model
can deliver is a configuration error (the instrument would accept a value
the profile calls safe, or refuse one the profile allows). The figures are
the models' rated (not over-programming) ranges.
"""

from __future__ import annotations

from interlock.dialects import models
from interlock.dialects.model import (
    MeterModel,
    RelayBoardModel,
    SupplyChannel,
    SupplyModel,
    SwitchModel,
)

__all__ = [
    "METERS",
    "RELAY_BOARDS",
    "RELAY_WATCHDOG_MAX",
    "RELAY_WATCHDOG_MIN",
    "RELAY_WATCHDOG_RESOLUTION",
    "SUPPLIES",
    "SWITCHES",
    "MeterModel",
    "RelayBoardModel",
    "SupplyChannel",
    "SupplyModel",
    "SwitchModel",
]

SUPPLIES: dict[str, SupplyModel] = models("supply")  # type: ignore[assignment]
METERS: dict[str, MeterModel] = models("meter")  # type: ignore[assignment]
SWITCHES: dict[str, SwitchModel] = models("switch")  # type: ignore[assignment]
# Switch units with the interlock board's own rules (host watchdog, forbidden pairs).
RELAY_BOARDS: dict[str, SwitchModel] = {
    name: model for name, model in SWITCHES.items() if model.forbidden_pairs and model.watchdog_max
}

# The relay board firmware's host watchdog (interlock/firmware/rb_core.py WATCHDOG_MIN_MS and
# WATCHDOG_MAX_MS, set in whole milliseconds), from the RB8's dialect file; a test
# holds them equal to the firmware's.
RELAY_WATCHDOG_MIN = RELAY_BOARDS["RB8"].watchdog_min  # s
RELAY_WATCHDOG_MAX = RELAY_BOARDS["RB8"].watchdog_max  # s
RELAY_WATCHDOG_RESOLUTION = RELAY_BOARDS["RB8"].watchdog_resolution  # s
