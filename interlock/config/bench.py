"""bench.toml: what instruments a bench has, where they are, how they are wired.

Data only, validated on load, no I/O beyond reading the file. Quantities are
SI floats (seconds, ohms) once loaded; paths are absolute, resolved against
the directory of bench.toml. Every value is bounded (:mod:`.bounds`) and held
against the catalogue's model of its instrument (relay channels, the relay
board's watchdog, supply channels), so that what loads can be served.
"""

from __future__ import annotations

import grp
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from interlock.catalog import METERS, RELAY_BOARDS, SUPPLIES, SWITCHES, RelayBoardModel
from interlock.config.bounds import (
    BENCH_NAME,
    BENCH_NAME_RULE,
    DEFAULT_HISTORY,
    DEFAULT_RELAY_WATCHDOG,
    HEARTBEAT_PERIOD,
    HISTORY,
    IO_TIMEOUT,
    LATENCY,
    LATENCY_SHARE_OF_IO_TIMEOUT,
    LEASE_HEARTBEATS,
    LEASE_TIMEOUT,
    LOAD_CURRENT,
    LOAD_RESISTANCE,
    MAX_SOCKET_PATH_BYTES,
    MAX_TITLE,
    MONITOR_PERIOD,
    WATCHDOG_HEARTBEATS,
    Range,
    show,
)
from interlock.config.reader import Table, display_path, read_toml, resolve_file, shown_text
from interlock.dialects import dialect_of, registered_drivers
from interlock.units import DURATION

ENVIRONMENTS = ("simulation", "engineering", "flight")
RESERVATIONS = ("none", "labgrid")
# What the built-in drivers drive: the kind names the catalogue a model is looked up in.
# A driver another package registers drives what its model's dialect file says.
DRIVER_KINDS = {
    "supply": "supply",
    "scpi-psu": "supply",
    "meter": "meter",
    "scpi-dmm": "meter",
    "relay-board": "switch",
    "switch": "switch",
}
_CATALOGUES: dict[str, tuple[str, dict[str, object]]] = {
    "supply": ("power supply", SUPPLIES),
    "meter": ("multimeter", METERS),
    "switch": ("switch unit", SWITCHES),
}


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
    driver: str  # a registered driver (entry point group interlock.drivers)
    identity: Identity
    resource: str | None = None  # VISA resource string
    port: str | None = None  # serial port (a dialect reached through pyserial)
    kind: str = "supply"  # supply | meter | switch
    dialect: str = ""  # the dialect file its model is in
    # A meter with a front/rear switch: the inputs the bench wires ("front" or "rear").
    terminals: str | None = None

    @property
    def where(self) -> str:
        return self.resource or self.port or ""


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
    # The relay board opens every relay after this much host silence.
    relay_watchdog: float = DEFAULT_RELAY_WATCHDOG
    journal_group: str | None = None  # may read the journal too (default: its owner only)
    # TLS for TCP beyond loopback (PEM files): both or neither.
    tls_certificate: Path | None = None
    tls_key: Path | None = None
    # Who may act: anyone with a role's token ("none"), or only the holder of the bench's
    # labgrid place ("labgrid", asked of the coordinator at HOST:PORT).
    reservations: str = "none"
    coordinator: str | None = None
    place: str | None = None


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
    history: float = 60.0  # seconds of the simulator's history ring


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

    def instruments_of(self, kind: str) -> list[Instrument]:
        """Every instrument of one kind (supply, meter, switch)."""
        return [i for i in self.instruments.values() if i.kind == kind]


def load_bench(path: str | Path = "bench.toml") -> Bench:
    """Load and validate a bench description. Raises ConfigError naming file and key."""
    path = resolve_file(path)
    data, raw = read_toml(path)
    root = Table(data, display_path(path))
    base = path.parent

    head = root.table("bench")
    name = head.string("name", max_length=MAX_TITLE)
    if not BENCH_NAME.fullmatch(name):
        raise head.error("name", f'expected {BENCH_NAME_RULE}, got "{name}"')
    environment = head.string("environment", choices=ENVIRONMENTS)
    profile_path = head.file_path("profile", base)
    description = head.string("description", required=False) or ""
    head.finish()

    instruments = _instruments(root)
    board = _relay_board(root, instruments)
    service = _service(root.table("service"), base, board)
    relays = _relays(root, instruments)
    meter = _meter(root, instruments)
    wiring = _wiring(root, instruments, relays)
    simulation = _simulation(root, environment, wiring, service)
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


def channel_path(socket_path: str | Path) -> Path:
    """The command channel's Unix socket, next to the HTTP socket: ``x.sock`` -> ``x.cmd.sock``."""
    socket_path = Path(socket_path)
    return socket_path.with_name(f"{socket_path.stem}.cmd{socket_path.suffix or '.sock'}")


def _service(table: Table, base: Path, board: RelayBoardModel) -> ServiceSettings:
    socket = table.file_path("socket", base)
    for what, where in (("socket", socket), ("its command channel", channel_path(socket))):
        size = len(os.fsencode(str(where)))
        if size > MAX_SOCKET_PATH_BYTES:
            raise table.error(
                "socket",
                f"{shown_text(str(where))} ({what}) is {size} bytes long; a Unix socket's "
                f"path has at most {MAX_SOCKET_PATH_BYTES}",
            )
    settings = ServiceSettings(
        socket=socket,
        journal=table.file_path("journal", base),
        tokens=table.file_path("tokens", base),
        monitor_period=table.bounded("monitor_period", MONITOR_PERIOD),
        heartbeat_period=table.bounded("heartbeat_period", HEARTBEAT_PERIOD),
        lease_timeout=table.bounded("lease_timeout", LEASE_TIMEOUT),
        io_timeout=table.bounded("io_timeout", IO_TIMEOUT),
        relay_watchdog=_relay_watchdog(table, board),
        journal_group=table.name("journal_group", required=False),
        tls_certificate=_readable_file(table, "tls_certificate", base),
        tls_key=_readable_file(table, "tls_key", base),
        **_reservations(table),
    )
    if (settings.tls_certificate is None) != (settings.tls_key is None):
        missing = "tls_key" if settings.tls_key is None else "tls_certificate"
        raise table.error(missing, "missing: TLS takes both tls_certificate and tls_key")
    if _below(settings.relay_watchdog, WATCHDOG_HEARTBEATS * settings.heartbeat_period):
        raise table.error(
            "relay_watchdog", "must be at least three heartbeat periods, or the board trips idle"
        )
    if settings.journal_group is not None:
        try:
            grp.getgrnam(settings.journal_group)
        except KeyError:
            group = settings.journal_group
            raise table.error("journal_group", f'no group "{group}" on this machine') from None
    longest = max(settings.monitor_period, settings.heartbeat_period)
    if _below(settings.lease_timeout, LEASE_HEARTBEATS * longest):
        raise table.error(
            "lease_timeout",
            f"must be at least {LEASE_HEARTBEATS} times the monitor and heartbeat periods "
            f"({show(LEASE_HEARTBEATS * longest, DURATION)}): a client heartbeats every "
            f"lease_timeout / {LEASE_HEARTBEATS}",
        )
    table.finish()
    return settings


def _reservations(table: Table) -> dict[str, str | None]:
    """``reservations`` ("none" or "labgrid"), and for labgrid the coordinator and the place."""
    kind = table.string("reservations", required=False, choices=RESERVATIONS) or "none"
    coordinator = table.string("coordinator", required=False)
    place = table.string("place", required=False, max_length=MAX_TITLE)
    if kind == "none":
        for key, value in (("coordinator", coordinator), ("place", place)):
            if value is not None:
                raise table.error(key, 'only with reservations = "labgrid"')
        return {}
    if coordinator is None:
        raise table.error("coordinator", 'missing: reservations = "labgrid" asks it (HOST:PORT)')
    host, sep, port = coordinator.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise table.error("coordinator", f'expected HOST:PORT, got "{shown_text(coordinator)}"')
    if place is not None and not BENCH_NAME.fullmatch(place):
        raise table.error("place", f'expected {BENCH_NAME_RULE}, got "{shown_text(place)}"')
    return {"reservations": kind, "coordinator": coordinator, "place": place}


def _below(value: float, floor: float) -> bool:
    # 3 x 100 ms is 0.30000000000000004 s: "300 ms" is not below it.
    return value < floor * (1 - 1e-9)


def _relay_watchdog(table: Table, board: RelayBoardModel) -> float:
    """The board's host watchdog: in its range, in whole steps of its resolution."""
    bound = Range(
        DURATION, board.watchdog_min, board.watchdog_max, why=f"the {board.model}'s range"
    )
    value = table.bounded("relay_watchdog", bound, required=False)
    if value is None:
        return DEFAULT_RELAY_WATCHDOG
    steps = value / board.watchdog_resolution
    if abs(steps - round(steps)) > 1e-6:
        raise table.error(
            "relay_watchdog",
            f"the {board.model} takes whole steps of "
            f"{show(board.watchdog_resolution, DURATION)}, got {show(value, DURATION)}",
        )
    return value


# An identity with these characters could never be seen: *IDN? answers in
# comma-separated fields, the relay board in space-separated key=value words.
_IDENTITY_SEPARATORS = {
    "interlock-rb8": (" \t,=", "the board reports key=value words: no spaces, commas or ="),
}
_IDN_SEPARATORS = (",", "*IDN? answers in comma-separated fields: no commas")


def _identity(table: Table, dialect: str) -> Identity:
    values = []
    separators, why = _IDENTITY_SEPARATORS.get(dialect, _IDN_SEPARATORS)
    for key in ("maker", "model", "serial"):
        value = table.string(key, required=key != "serial") or ""
        if any(c in value for c in separators):
            raise table.error(key, f'"{value}" can never be reported ({why})')
        values.append(value)
    table.finish()
    return Identity(*values)


def _readable_file(table: Table, key: str, base: Path) -> Path | None:
    path = table.file_path(key, base, required=False)
    if path is None:
        return None
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
        driver = table.string("driver", choices=tuple(sorted(registered_drivers())))
        ident = table.table("identity")
        model_name = ident.data.get("model")
        dialect = dialect_of(model_name) if isinstance(model_name, str) else None
        kind = DRIVER_KINDS.get(driver) or (dialect.kind if dialect else "supply")
        what, models = _CATALOGUES[kind]
        identity = _identity(ident, dialect.name if dialect else "")
        if identity.model not in models or dialect is None:
            raise ident.error(
                "model",
                f'unknown {what} model "{identity.model}" (known: {", ".join(sorted(models))})',
            )
        if dialect.link.kind == "serial":
            resource, port = None, table.string("port")
        else:
            resource, port = table.string("resource"), None
        terminals = table.string("terminals", required=False, choices=("front", "rear"))
        switched = "terminals?" in dialect.queries
        if terminals is not None and not switched:
            raise table.error("terminals", f"the {dialect.title} has no front/rear switch to read")
        table.finish()
        instruments[name] = Instrument(
            name,
            driver,
            identity,
            resource,
            port,
            kind=kind,
            dialect=dialect.name,
            terminals=terminals or ("front" if switched else None),
        )
    if not instruments:
        raise root.error("instruments", "a bench needs at least one instrument")
    return instruments


def _relay_board(root: Table, instruments: dict[str, Instrument]) -> RelayBoardModel:
    """The bench's one relay board (the controller drives exactly one), by its model."""
    boards = [
        i for i in instruments.values() if i.kind == "switch" and i.identity.model in RELAY_BOARDS
    ]
    if not boards:
        raise root.error("instruments", "a bench needs its relay board (driver relay-board)")
    if len(boards) > 1:
        raise root.error(
            f"instruments.{boards[1].name}",
            f"one relay board per bench ({boards[0].name} is one)",
        )
    return RELAY_BOARDS[boards[0].identity.model]


def _relays(root: Table, instruments: dict[str, Instrument]) -> dict[str, Relay]:
    relays: dict[str, Relay] = {}
    seen_channels: dict[tuple[str, int], str] = {}
    for name, table in root.tables("relays", required=False).items():
        board = table.string("board")
        if board not in instruments or instruments[board].kind != "switch":
            raise table.error("board", f'"{board}" is not a switch unit of this bench')
        model = SWITCHES[instruments[board].identity.model]
        channel = table.integer("channel", minimum=1)
        if channel > model.relays:
            raise table.error(
                "channel",
                f"board {board} ({model.model}) has channels 1 to {model.relays}, got {channel}",
            )
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
    if name not in instruments or instruments[name].kind != "meter":
        raise table.error("instrument", f'"{name}" is not a meter of this bench')
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
            supply = _supply(supply_table, instruments)
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


def _supply(table: Table, instruments: dict[str, Instrument]) -> SupplyRef:
    instrument = table.string("instrument")
    if instrument not in instruments or instruments[instrument].kind != "supply":
        raise table.error("instrument", f'"{instrument}" is not a power supply of this bench')
    model = SUPPLIES[instruments[instrument].identity.model]
    channel = table.integer("channel", minimum=1)
    if channel not in model.channels:
        raise table.error(
            "channel",
            f"the {model.model} has no channel {channel} "
            f"(it has {', '.join(str(c) for c in sorted(model.channels))})",
        )
    return SupplyRef(instrument, channel)


def _simulation(
    root: Table, environment: str, wiring: dict[str, NetWiring], service: ServiceSettings
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
    latency = table.bounded("latency", LATENCY)
    if latency > LATENCY_SHARE_OF_IO_TIMEOUT * service.io_timeout:
        raise table.error(
            "latency",
            f"must be at most a tenth of service.io_timeout "
            f"({show(service.io_timeout, DURATION)}), or every exchange risks timing out",
        )
    # Bounded: the simulator keeps every net's samples of the whole window in memory.
    history = table.bounded("history", HISTORY, required=False)
    if history is None:
        history = DEFAULT_HISTORY
    loads = {}
    for net, load_table in table.tables("loads", required=False).items():
        if net not in wiring:
            raise load_table.error("", f'unknown net "{net}" (not in [wiring])')
        load = Load(
            resistance=load_table.bounded("resistance", LOAD_RESISTANCE, required=False),
            min_current=load_table.bounded("min_current", LOAD_CURRENT, required=False),
            max_current=load_table.bounded("max_current", LOAD_CURRENT, required=False),
        )
        if load.resistance is None and load.max_current is None:
            raise load_table.error("", "expected a resistance or a min_current/max_current window")
        if (
            load.min_current is not None
            and load.max_current is not None
            and load.min_current > load.max_current
        ):
            raise load_table.error("min_current", "is greater than max_current")
        load_table.finish()
        loads[net] = load
    table.finish()
    return SimulationSettings(latency=latency, loads=loads, history=history)
