"""Where each configuration value may lie, and why: one table for every file.

A value outside its range is a configuration error naming the file and the
key, never clamped. A key gets its bound by name (``table.bounded("settle_time",
SETTLE_TIME)``); a new key adds one row here. Ranges are wide enough for any
bench of the catalogue and tight enough that no value makes the service
misbehave (a lease lost before its first heartbeat, a ramp of a billion
steps, a wait of 1e308 s); cross-checks between keys live with the file that
has both (bench.py, profile.py, pinned.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from interlock.units import (
    CURRENT,
    DURATION,
    POWER,
    RATIO,
    RESISTANCE,
    SLEW_RATE,
    VOLTAGE,
    Dimension,
    format_quantity,
)


@dataclass(frozen=True)
class Range:
    """A closed range (``low`` excluded when ``above_low``) of one dimension, SI floats."""

    dimension: Dimension
    low: float
    high: float
    above_low: bool = False  # "greater than zero", not "zero or more"
    why: str = ""  # shown after the range in an error

    def admits(self, value: float) -> bool:
        above = value > self.low if self.above_low else value >= self.low
        return above and value <= self.high

    def expected(self) -> str:
        """What the range admits, as in "expected a non-negative voltage of at most 1 kV"."""
        name = self.dimension.name
        low, high = show(self.low, self.dimension), show(self.high, self.dimension)
        if self.above_low:
            return f"a {name} greater than {low} and at most {high}"
        if self.low == 0:
            return f"a non-negative {name} of at most {high}"
        return f"a {name} from {low} to {high}"


def show(value: float, dimension: Dimension) -> str:
    """A bound as people read it: ``1 h`` rather than ``3.6 ks``."""
    if dimension is DURATION and value >= 60:
        for factor, unit in ((3600, "h"), (60, "min")):
            if value >= factor:
                return f"{value / factor:g} {unit}"
    return format_quantity(value, dimension)


# --- names and text ----------------------------------------------------------------------

#: Instruments, relays and nets: keys of TOML tables, parts of the service's URLs
#: (``/nets/VBUS/voltage``), of fault specs (``short:VBUS``) and of role references
#: (``VBUS.power``): letters, digits, ``_`` and ``-``, no dot.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
NAME_RULE = "1 to 32 letters, digits, _ or -, starting with a letter or digit"
#: The bench's name: in the journal, on every banner, typed to arm a flight bench.
BENCH_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
BENCH_NAME_RULE = "1 to 64 letters, digits, _, . or -, starting with a letter or digit"

MAX_TITLE = 64  # a device's or a sequence's name
MAX_TEXT = 200  # descriptions, labels, reasons, instrument identities and resources
MAX_MESSAGE = 1000  # an operator prompt
MAX_PATH_BYTES = 4096  # PATH_MAX on Linux
#: sizeof(sockaddr_un.sun_path) on Linux, less its terminating NUL.
MAX_SOCKET_PATH_BYTES = 107
MAX_ITEMS = 256  # entries of an array (relay groups, orders) and tables of a file
MAX_STEPS = 10_000  # steps of a sequence

# --- bench.toml [service] ------------------------------------------------------------------

MONITOR_PERIOD = Range(DURATION, 0.001, 1.0, why="how long an out-of-envelope net may go unseen")
HEARTBEAT_PERIOD = Range(DURATION, 0.010, 1.0)
LEASE_TIMEOUT = Range(
    DURATION, 0.5, 60.0, why="a client heartbeats every lease_timeout / 4; a vanished "
    "client's outputs stay on this long"
)  # fmt: skip
IO_TIMEOUT = Range(DURATION, 0.010, 10.0, why="a trip waits for an exchange in progress")
DEFAULT_RELAY_WATCHDOG = 0.5  # s, when bench.toml does not say
#: The client heartbeats every lease_timeout / 4: at least this many of the service's
#: own periods (monitor, board heartbeat) fit between two of them.
LEASE_HEARTBEATS = 4
#: The relay board trips after this many missed heartbeats, no fewer.
WATCHDOG_HEARTBEATS = 3

# --- bench.toml [simulation] ---------------------------------------------------------------

LATENCY = Range(DURATION, 0.0, 0.1)
#: An exchange fits in io_timeout with room to spare: latency at most this share of it.
LATENCY_SHARE_OF_IO_TIMEOUT = 0.1
# The simulator's history ring: every net's samples of the whole window are kept in memory.
HISTORY = Range(DURATION, 1.0, 3600.0, why="the simulator keeps the whole window in memory")
DEFAULT_HISTORY = 60.0
LOAD_RESISTANCE = Range(RESISTANCE, 0.0, 1e9, above_low=True)
LOAD_CURRENT = Range(CURRENT, 0.0, 100.0)

# --- profiles ------------------------------------------------------------------------------
# Absolute bounds; pinned.py holds each limit against the instrument and relay it is wired to.

VOLTAGE_LIMIT = Range(VOLTAGE, 0.0, 1000.0)
CURRENT_LIMIT = Range(CURRENT, 0.0, 100.0)
MAX_CURRENT = Range(CURRENT, 0.0, 100.0, above_low=True)
MAX_SLEW = Range(SLEW_RATE, 0.0, 10_000.0, above_low=True)
MAX_STEP = Range(VOLTAGE, 0.0, 1000.0, above_low=True)
READBACK_ABSOLUTE = Range(VOLTAGE, 0.0, 1.0, above_low=True)
READBACK_RELATIVE = Range(RATIO, 0.0, 0.10)
SETTLE_TIME = Range(DURATION, 0.0, 10.0)
RESISTANCE_LIMIT = Range(RESISTANCE, 0.0, 1e9)  # a DMM's range
STRAY_VOLTAGE = Range(VOLTAGE, 0.0, 1000.0)
TOTAL_POWER = Range(POWER, 0.0, 100_000.0)
#: readback_absolute at most this share of the net's max_voltage: a tolerance as wide
#: as the range checks nothing.
READBACK_ABSOLUTE_SHARE = 0.10
# The longest legal ramp (min_voltage to max_voltage) is bounded by the limit engine's
# own bounds on a plan (interlock.limits.ramps.RAMP_MAX_STEPS and RAMP_MAX_SECONDS),
# checked in profile.py: a profile that loads can ramp across its whole range.

# --- sequences -----------------------------------------------------------------------------

STEP_VOLTAGE = Range(VOLTAGE, 0.0, 1000.0)
STEP_CURRENT = Range(CURRENT, 0.0, 100.0)
WINDOW = {"voltage": Range(VOLTAGE, -1000.0, 1000.0), "current": Range(CURRENT, -100.0, 100.0)}
WAIT = Range(DURATION, 0.0, 86_400.0)
