"""What each supported instrument model can deliver, per channel.

A profile may only tighten these: a limit beyond what the instrument model
can deliver is a configuration error (the instrument would accept a value
the profile calls safe, or refuse one the profile allows). The figures are
the models' rated (not over-programming) ranges from their data sheets.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SupplyChannel:
    """One output of a power supply: rated ranges in V and A."""

    max_voltage: float
    max_current: float
    max_ovp: float  # highest over-voltage protection setting
    min_current: float = 0.002  # lowest current limit it regulates at


@dataclass(frozen=True)
class SupplyModel:
    maker: str
    model: str
    channels: dict[int, SupplyChannel]


@dataclass(frozen=True)
class MeterModel:
    maker: str
    model: str
    max_dc_voltage: float
    max_resistance: float
    max_dc_current: float


# The relay board firmware's host watchdog (interlock/firmware/rb_core.py WATCHDOG_MIN_MS and
# WATCHDOG_MAX_MS, set in whole milliseconds): copied here so that configuration
# and driver check against it without importing either; a test holds them equal.
RELAY_WATCHDOG_MIN = 0.050  # s
RELAY_WATCHDOG_MAX = 5.0  # s
RELAY_WATCHDOG_RESOLUTION = 0.001  # s


@dataclass(frozen=True)
class RelayBoardModel:
    maker: str
    model: str
    relays: int  # channels 1..relays
    contact_max_voltage: float  # rating of the relay contacts, V DC
    contact_max_current: float  # A
    forbidden_pairs: int = 16  # size of the firmware's table of forbidden combinations
    # How long a relay's auxiliary contact may take to follow its coil.
    contact_settle_time: float = 0.25  # s
    watchdog_min: float = RELAY_WATCHDOG_MIN  # s
    watchdog_max: float = RELAY_WATCHDOG_MAX  # s
    watchdog_resolution: float = RELAY_WATCHDOG_RESOLUTION  # s: set in whole steps of this


SUPPLIES: dict[str, SupplyModel] = {
    # Keysight E36312A: 6 V / 5 A, and two 25 V / 1 A outputs.
    "E36312A": SupplyModel(
        maker="Keysight Technologies",
        model="E36312A",
        channels={
            1: SupplyChannel(max_voltage=6.0, max_current=5.0, max_ovp=6.6),
            2: SupplyChannel(max_voltage=25.0, max_current=1.0, max_ovp=27.5),
            3: SupplyChannel(max_voltage=25.0, max_current=1.0, max_ovp=27.5),
        },
    ),
    # Keysight E36313A: 6 V / 10 A, and two 25 V / 2 A outputs.
    "E36313A": SupplyModel(
        maker="Keysight Technologies",
        model="E36313A",
        channels={
            1: SupplyChannel(max_voltage=6.0, max_current=10.0, max_ovp=6.6),
            2: SupplyChannel(max_voltage=25.0, max_current=2.0, max_ovp=27.5),
            3: SupplyChannel(max_voltage=25.0, max_current=2.0, max_ovp=27.5),
        },
    ),
}

METERS: dict[str, MeterModel] = {
    "34461A": MeterModel("Keysight Technologies", "34461A", 1000.0, 1e9, 10.0),
    "34410A": MeterModel("Agilent Technologies", "34410A", 1000.0, 1e9, 3.0),
}

RELAY_BOARDS: dict[str, RelayBoardModel] = {
    # The interlock relay board of interlock/firmware/: 8 relays rated 30 V DC / 2 A.
    "RB8": RelayBoardModel(
        "interlock", "RB8", relays=8, contact_max_voltage=30.0, contact_max_current=2.0
    ),
}
