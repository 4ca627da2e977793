"""bench.toml: what instruments a bench has, where they are, how they are wired.

Data only, validated on load, no I/O beyond reading the file. Quantities are
SI floats (seconds, ohms) once loaded; paths are absolute, resolved against
the directory of bench.toml.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from interlock.config.reader import Table, display_path, read_toml
from interlock.units import CURRENT, DURATION, RESISTANCE

ENVIRONMENTS = ("simulation", "engineering", "flight")
DRIVERS = ("scpi-psu", "scpi-dmm", "relay-board")


@dataclass(frozen=True)
class Identity:
    """What an instrument must answer to ``*IDN?`` (or the board to identify)."""

    maker: str
    model: str
    serial: str

    def __str__(self) -> str:
        return f"{self.maker}, {self.model}, serial {self.serial}"


@dataclass(frozen=True)
class Instrument:
    name: str
    driver: str
    identity: Identity
    resource: str | None = None  # VISA resource string (scpi-* drivers)
    port: str | None = None  # serial port (relay-board)


@dataclass(frozen=True)
class Relay:
    name: str
    board: str  # instrument name of the relay board
    channel: int  # 1-based channel on that board
    description: str = ""


@dataclass(frozen=True)
class SupplyRef:
    instrument: str
    channel: int

    def __str__(self) -> str:
        return f"{self.instrument} CH{self.channel}"


@dataclass(frozen=True)
class NetWiring:
    """How one DUT net is reached: a supply through a power relay, the DMM through a sense relay."""

    net: str
    supply: SupplyRef | None
    power_relay: str | None
    sense_relay: str | None


@dataclass(frozen=True)
class ServiceSettings:
    socket: Path
    journal: Path
    tokens: Path
    monitor_period: float
    heartbeat_period: float
    lease_timeout: float
    io_timeout: float
    relay_watchdog: float = 0.5  # the relay board opens every relay after this much host silence
    # TLS for TCP beyond loopback (PEM files): both or neither.
    tls_certificate: Path | None = None
    tls_key: Path | None = None


@dataclass(frozen=True)
class Load:
    """The simulated DUT's load on one net: a resistance, or an active load's current window."""

    resistance: float | None = None
    min_current: float | None = None
    max_current: float | None = None


@dataclass(frozen=True)
class SimulationSettings:
    latency: float
    loads: dict[str, Load] = field(default_factory=dict)


@dataclass(frozen=True)
class Bench:
    name: str
    environment: str
    description: str
    path: Path
    sha256: str
    profile_path: Path
    instruments: dict[str, Instrument]
    relays: dict[str, Relay]
    meter: str | None
    wiring: dict[str, NetWiring]
    service: ServiceSettings
    simulation: SimulationSettings | None

    @property
    def shown_path(self) -> str:
        return display_path(self.path)

    def instruments_by_driver(self, driver: str) -> list[Instrument]:
        return [i for i in self.instruments.values() if i.driver == driver]


def load_bench(path: str | Path = "bench.toml") -> Bench:
    """Load and validate a bench description. Raises ConfigError naming file and key."""
    path = Path(path).resolve()
    data, raw = read_toml(path)
    root = Table(data, display_path(path))
    base = path.parent

    head = root.table("bench")
    name = head.string("name")
    environment = head.string("environment", choices=ENVIRONMENTS)
    profile_path = (base / head.string("profile")).resolve()
    description = head.string("description", required=False) or ""
    head.finish()

    service = _service(root.table("service"), base)
    instruments = _instruments(root)
    relays = _relays(root, instruments)
    meter = _meter(root, instruments)
    wiring = _wiring(root, instruments, relays)
    simulation = _simulation(root, environment, wiring)
    root.finish()

    return Bench(
        name=name,
        environment=environment,
        description=description,
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        profile_path=profile_path,
        instruments=instruments,
        relays=relays,
        meter=meter,
        wiring=wiring,
        service=service,
        simulation=simulation,
    )


def _service(table: Table, base: Path) -> ServiceSettings:
    def positive(key: str) -> float:
        value = table.quantity(key, DURATION)
        if value <= 0:
            raise table.error(key, "expected a duration greater than zero")
        return value

    settings = ServiceSettings(
        socket=(base / table.string("socket")).resolve(),
        journal=(base / table.string("journal")).resolve(),
        tokens=(base / table.string("tokens")).resolve(),
        monitor_period=positive("monitor_period"),
        heartbeat_period=positive("heartbeat_period"),
        lease_timeout=positive("lease_timeout"),
        io_timeout=positive("io_timeout"),
        relay_watchdog=table.quantity("relay_watchdog", DURATION, required=False) or 0.5,
        tls_certificate=_readable_file(table, "tls_certificate", base),
        tls_key=_readable_file(table, "tls_key", base),
    )
    if (settings.tls_certificate is None) != (settings.tls_key is None):
        missing = "tls_key" if settings.tls_key is None else "tls_certificate"
        raise table.error(missing, "missing: TLS takes both tls_certificate and tls_key")
    if not 0.05 <= settings.relay_watchdog <= 5.0:
        raise table.error("relay_watchdog", "the relay board takes 50 ms .. 5 s")
    if settings.relay_watchdog < 3 * settings.heartbeat_period:
        raise table.error(
            "relay_watchdog", "must be at least three heartbeat periods, or the board trips idle"
        )
    table.finish()
    return settings


def _readable_file(table: Table, key: str, base: Path) -> Path | None:
    name = table.string(key, required=False)
    if name is None:
        return None
    path = (base / name).resolve()
    if not path.is_file():
        raise table.error(key, f"{path}: not a file")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise table.error(key, f"{path}: cannot read: {exc.strerror}") from None
    return path


def _instruments(root: Table) -> dict[str, Instrument]:
    instruments = {}
    for name, table in root.tables("instruments").items():
        driver = table.string("driver", choices=DRIVERS)
        ident = table.table("identity")
        identity = Identity(ident.string("maker"), ident.string("model"), ident.string("serial"))
        ident.finish()
        if driver == "relay-board":
            resource, port = None, table.string("port")
        else:
            resource, port = table.string("resource"), None
        table.finish()
        instruments[name] = Instrument(name, driver, identity, resource, port)
    if not instruments:
        raise root.error("instruments", "a bench needs at least one instrument")
    return instruments


def _relays(root: Table, instruments: dict[str, Instrument]) -> dict[str, Relay]:
    relays: dict[str, Relay] = {}
    seen_channels: dict[tuple[str, int], str] = {}
    for name, table in root.tables("relays", required=False).items():
        board = table.string("board")
        if board not in instruments or instruments[board].driver != "relay-board":
            raise table.error("board", f'"{board}" is not a relay-board instrument of this bench')
        channel = table.integer("channel", minimum=1)
        if (board, channel) in seen_channels:
            other = seen_channels[board, channel]
            raise table.error("channel", f"channel {channel} of {board} is already relay {other}")
        seen_channels[board, channel] = name
        description = table.string("description", required=False) or ""
        table.finish()
        relays[name] = Relay(name, board, channel, description)
    return relays


def _meter(root: Table, instruments: dict[str, Instrument]) -> str | None:
    table = root.table("meter", required=False)
    if table is None:
        return None
    name = table.string("instrument")
    if name not in instruments or instruments[name].driver != "scpi-dmm":
        raise table.error("instrument", f'"{name}" is not a scpi-dmm instrument of this bench')
    table.finish()
    return name


def _wiring(
    root: Table, instruments: dict[str, Instrument], relays: dict[str, Relay]
) -> dict[str, NetWiring]:
    wiring = {}
    used_relays: dict[str, str] = {}
    used_supplies: dict[SupplyRef, str] = {}
    for net, table in root.tables("wiring").items():
        supply = None
        supply_table = table.table("supply", required=False)
        if supply_table is not None:
            instrument = supply_table.string("instrument")
            if instrument not in instruments or instruments[instrument].driver != "scpi-psu":
                raise supply_table.error(
                    "instrument", f'"{instrument}" is not a scpi-psu instrument of this bench'
                )
            supply = SupplyRef(instrument, supply_table.integer("channel", minimum=1))
            supply_table.finish()
            if supply in used_supplies:
                raise table.error("supply", f"{supply} already feeds net {used_supplies[supply]}")
            used_supplies[supply] = net
        power_relay = table.string("power_relay", required=supply is not None)
        if supply is None and power_relay is not None:
            raise table.error("power_relay", "a net without a supply has no power relay")
        sense_relay = table.string("sense_relay", required=False)
        for key, relay in (("power_relay", power_relay), ("sense_relay", sense_relay)):
            if relay is None:
                continue
            if relay not in relays:
                raise table.error(key, f'unknown relay "{relay}" (not in [relays])')
            if relay in used_relays:
                raise table.error(key, f"relay {relay} is already used by {used_relays[relay]}")
            used_relays[relay] = f"wiring.{net}.{key}"
        table.finish()
        wiring[net] = NetWiring(net, supply, power_relay, sense_relay)
    return wiring


def _simulation(
    root: Table, environment: str, wiring: dict[str, NetWiring]
) -> SimulationSettings | None:
    table = root.table("simulation", required=False)
    if table is None:
        if environment == "simulation":
            raise root.error("simulation", "missing (a simulation bench describes its DUT model)")
        return None
    if environment != "simulation":
        # A real bench must never be mistaken for, or mixed with, a simulated one.
        raise table.error(
            "", f'only a "simulation" bench may have one (this one is "{environment}")'
        )
    latency = table.quantity("latency", DURATION)
    loads = {}
    for net, load_table in table.tables("loads", required=False).items():
        if net not in wiring:
            raise load_table.error("", f'unknown net "{net}" (not in [wiring])')
        load = Load(
            resistance=load_table.quantity("resistance", RESISTANCE, required=False),
            min_current=load_table.quantity("min_current", CURRENT, required=False),
            max_current=load_table.quantity("max_current", CURRENT, required=False),
        )
        if load.resistance is None and load.max_current is None:
            raise load_table.error("", "expected a resistance or a min_current/max_current window")
        load_table.finish()
        loads[net] = load
    table.finish()
    return SimulationSettings(latency=latency, loads=loads)
