"""Configuration: bench.toml (what and where) and DUT profiles (limits).

Everything is validated on load; errors are :class:`~interlock.errors.ConfigError`
naming the file and the key path.
"""

from interlock.config.bench import (
    Bench,
    Identity,
    Instrument,
    Load,
    NetWiring,
    Relay,
    ServiceSettings,
    SimulationSettings,
    SupplyRef,
    load_bench,
)
from interlock.config.pinned import (
    Configuration,
    WiredChannel,
    load_configuration,
    pin_limits,
    power_off_channels,
)
from interlock.config.profile import DutIdentity, NetLimits, Profile, SafeToMate, load_profile

__all__ = [
    "Bench",
    "Configuration",
    "DutIdentity",
    "Identity",
    "Instrument",
    "Load",
    "NetLimits",
    "NetWiring",
    "Profile",
    "Relay",
    "SafeToMate",
    "ServiceSettings",
    "SimulationSettings",
    "SupplyRef",
    "WiredChannel",
    "load_bench",
    "load_configuration",
    "load_profile",
    "pin_limits",
    "power_off_channels",
]
