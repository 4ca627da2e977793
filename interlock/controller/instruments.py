"""The bench's instruments as the controller sees them: built from bench.toml through
the driver registry, identified, and addressed by DUT net rather than by channel number."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from interlock.catalog import RELAY_BOARDS
from interlock.config import Bench
from interlock.dialects import Capabilities, dialects
from interlock.drivers.registry import DriverSpec, build
from interlock.errors import ConfigError, IdentityMismatch, InstrumentError, SetupMismatch
from interlock.journal import Journal
from interlock.limits.measurements import same_instrument
from interlock.protocols import Instrument, Meter, PowerSupply, RelayBank, SwitchUnit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NetPort:
    """Where one DUT net is reached."""

    net: str
    supply: str | None  # instrument name
    channel: int | None
    power_relay: str | None
    sense_relay: str | None


class BenchInstruments:
    """Builds one driver per instrument of bench.toml; ``resources`` overrides where they are."""

    def __init__(self, bench: Bench, journal: Journal, resources: dict[str, str] | None = None):
        resources = resources or {}
        self.bench = bench
        self.journal = journal
        timeout = bench.service.io_timeout
        # Typed by protocol: the controller relies on nothing a driver adds beyond it.
        self.supplies: dict[str, PowerSupply] = {}
        self.meter: Meter | None = None
        self.switches: dict[str, SwitchUnit] = {}
        self.board: RelayBank | None = None
        for inst in bench.instruments.values():
            spec = DriverSpec(
                inst.name,
                dialects()[inst.dialect],
                resources.get(inst.name) or inst.where,
                journal,
                timeout,
                inst.identity.model,
                inst.terminals or "",
            )
            driver = build(
                inst.driver, spec, file=bench.shown_path, key=f"instruments.{inst.name}.driver"
            )
            if inst.kind == "supply":
                self.supplies[inst.name] = driver
            elif inst.kind == "meter":
                if inst.name == bench.meter:
                    self.meter = driver
            else:
                self.switches[inst.name] = driver
                if inst.identity.model in RELAY_BOARDS:
                    if self.board is not None:
                        raise ConfigError(
                            bench.shown_path,
                            f"instruments.{inst.name}",
                            "only one relay board per bench is supported",
                        )
                    self.board = driver
        if self.board is None:
            raise ConfigError(bench.shown_path, "instruments", "a bench needs its relay board")
        self.board_model = RELAY_BOARDS[bench.instruments[self.board.name].identity.model]
        # Instruments whose identity did not match (or did not answer): never commanded.
        self.untrusted: set[str] = set()
        # Relays by unit: the board's (contact sense, its own rules) and every other
        # switch unit's (commanded state read back only).
        self.relay_channels = {
            r.name: r.channel for r in bench.relays.values() if r.board == self.board.name
        }
        self.units: dict[str, SwitchUnit] = {
            name: unit for name, unit in self.switches.items() if unit is not self.board
        }
        self.unit_relays = {
            name: {r.name: r.channel for r in bench.relays.values() if r.board == name}
            for name in self.units
        }
        self.ports = {
            net: NetPort(
                net,
                w.supply.instrument if w.supply else None,
                w.supply.channel if w.supply else None,
                w.power_relay,
                w.sense_relay,
            )
            for net, w in bench.wiring.items()
        }

    @property
    def all(self) -> list[Instrument]:
        return [
            *self.supplies.values(),
            *([self.meter] if self.meter else []),
            *self.switches.values(),
        ]

    def open(self) -> None:
        for instrument in self.all:
            instrument.open()

    def close(self) -> None:
        for instrument in self.all:
            try:
                instrument.close()
            except Exception:  # closing must go on for the others
                log.warning("closing %s failed", instrument.name, exc_info=True)

    def mask(self, relays: frozenset[str] | set[str]) -> int:
        """The board's channels of ``relays`` as a mask (relays of other units left out)."""
        mask = 0
        for relay in relays:
            if relay in self.relay_channels:
                mask |= 1 << (self.relay_channels[relay] - 1)
        return mask

    def relays_of(self, channels, unit: str | None = None) -> frozenset[str]:
        """The relay names of a unit's channels (the board's by default)."""
        named = self.relay_channels if unit is None else self.unit_relays[unit]
        by_channel = {c: r for r, c in named.items()}
        where = "channel" if unit is None else f"{unit} channel"
        return frozenset(by_channel.get(c, f"{where} {c}") for c in channels)

    def unit_of(self, relay: str) -> str:
        """The switch unit a relay is on."""
        return self.bench.relays[relay].board

    def unit_channels(self, unit: str, relays: frozenset[str] | set[str]) -> frozenset[int]:
        """The channels of ``unit`` among ``relays``."""
        named = self.unit_relays[unit]
        return frozenset(named[r] for r in relays if r in named)

    def supply_channels(self) -> dict[str, list[int]]:
        """Every wired channel of every supply (also those the profile does not use)."""
        channels: dict[str, list[int]] = {name: [] for name in self.supplies}
        for port in self.ports.values():
            if port.supply is not None:
                channels[port.supply].append(port.channel)
        return {name: sorted(chs) for name, chs in channels.items() if chs}

    def capabilities(self, net: str) -> Capabilities:
        """What the supply feeding ``net`` can do (its dialect's capabilities)."""
        return self.supplies[self.ports[net].supply].capabilities

    def trusted(self, name: str) -> bool:
        """Whether an instrument answered as the one bench.toml names when last asked."""
        return name not in self.untrusted

    def net_at(self, supply: str, channel: int) -> str | None:
        """The net a supply channel is wired to, if any."""
        for port in self.ports.values():
            if port.supply == supply and port.channel == channel:
                return port.net
        return None

    def verify_identity(self, instrument) -> None:
        """Check one instrument against bench.toml; journal the check either way."""
        expected = self.bench.instruments[instrument.name].identity
        answered = instrument.identify()
        seen, firmware = answered.identity, answered.firmware
        ok = same_instrument(expected, seen)
        self.journal.identity(
            instrument.name, expected=str(expected), seen=str(seen), ok=ok, firmware=firmware
        )
        if not ok:
            self.untrusted.add(instrument.name)
            raise IdentityMismatch(instrument.name, str(expected), str(seen))
        if isinstance(instrument, Meter):  # the one named: now asked how it is set up
            instrument.check_setup()
        self.untrusted.discard(instrument.name)

    @staticmethod
    def failure_cause(failures: list[InstrumentError]) -> str:
        """The trip's cause for instruments found wanting: "setup" when each is the one
        named, set up otherwise than bench.toml says (a meter reading the inputs nothing
        is wired to); else "identity" (a stranger, or no answer)."""
        return "setup" if all(isinstance(f, SetupMismatch) for f in failures) else "identity"

    def verify_identities(self) -> list[InstrumentError]:
        """Check every instrument; return the failures (mismatch or no answer)."""
        failures = []
        for instrument in self.all:
            try:
                self.verify_identity(instrument)
            except InstrumentError as error:
                self.untrusted.add(instrument.name)
                failures.append(error)
        return failures
