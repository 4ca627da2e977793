"""``interlock probe [RESOURCE ...]``: which instruments are there, and how to name them.

Without resources it looks where instruments can be found: the VISA resources
pyvisa-py lists, the serial ports pyserial lists and, for a simulation bench
whose simulator runs, the simulator's own resources (``sim.json``: its
sockets and pseudo-terminals, which neither lists). Each is asked who it is,
one way of asking at a time (:func:`questions`), until one is answered: nothing
is set, switched or locked. An RS-232 family that listens only in remote gets
its front panel back after (``SYST:LOC``), and a relay board, once identified,
is released (relays open, its host watchdog disarmed): the states they are in
when no host drives them. For each instrument it
prints the matching dialect, its capabilities and the ``[instruments.x]``
stanza to paste into bench.toml. Its scratch journal is thrown away.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from interlock.commands.common import add_bench_argument, bench_file
from interlock.dialects import Dialect, dialects, match_identity
from interlock.drivers.device import DialectDevice, make_link
from interlock.drivers.registry import DriverSpec, driver_class
from interlock.drivers.visa import resource_manager
from interlock.errors import InterlockError
from interlock.exits import EXIT_MEASUREMENT_FAILED, EXIT_PASS
from interlock.journal import Journal
from interlock.protocols import Identified

log = logging.getLogger(__name__)

MAX_RESOURCES = 64  # bound the work: each one costs a timeout when nothing answers
# Resources asked at once: each waits on its own line, so a port that answers nothing
# (a few timeouts) holds up only itself.
AT_ONCE = 8


@dataclass(frozen=True)
class Found:
    """One resource probed: who answered in which dialect, or why nobody did."""

    resource: str
    dialect: Dialect | None = None
    identity: Identified | None = None
    name: str = ""  # the name a simulator gives it, if any
    problem: str = ""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "probe",
        help="find the instruments this machine reaches; print their dialect and stanza",
        description="Ask each VISA resource and serial port (or the RESOURCEs given) who it "
        "is, changing nothing, and print its dialect, capabilities and the bench.toml "
        "stanza. A running simulator of the bench is found too.",
    )
    add_bench_argument(parser)
    parser.add_argument(
        "resources",
        nargs="*",
        metavar="RESOURCE",
        help="VISA resource strings or serial ports (default: all found)",
    )
    parser.add_argument(
        "--timeout", type=float, default=0.5, metavar="SECONDS", help="per exchange (default 0.5)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        where = bench_file(args)
    except InterlockError:
        where = None  # no bench here: probe what pyvisa and pyserial list
    named = simulator_resources(where) if where is not None else {}
    resources = list(args.resources) or listed_resources() + list(named.values())
    # One port listed twice (/dev/ttyS0 by pyserial, ASRL/dev/ttyS0::INSTR by pyvisa) is
    # asked once, by the name last given (the simulator's, which says its instrument).
    unique = {serial_port(r) or r: r for r in resources}
    resources = list(unique.values())[:MAX_RESOURCES]
    names = {where: name for name, where in named.items()}
    with tempfile.TemporaryDirectory(prefix="interlock-probe-") as scratch:
        journal = Journal(Path(scratch) / "probe.sqlite", bench="probe")
        try:
            found = probe_all(resources, journal, args.timeout, names)
        finally:
            journal.close()
    print(render(found))
    if args.resources and any(f.dialect is None for f in found):
        return EXIT_MEASUREMENT_FAILED
    return EXIT_PASS


# -- where to look -------------------------------------------------------------------------


def listed_resources() -> list[str]:
    """What pyvisa-py and pyserial list (neither sees a raw TCP socket)."""
    found: list[str] = []
    with contextlib.suppress(Exception):  # no backend, no permission: nothing listed
        # The process's one manager: closing another would close the session they share.
        found += resource_manager("@py").list_resources("?*")
    with contextlib.suppress(Exception):
        from serial.tools import list_ports

        found += [port.device for port in list_ports.comports()]
    # An interface (a GPIB board, a Prologix adapter: ::INTFC) is not an instrument.
    found = [r for r in found if not r.upper().endswith("::INTFC")]
    return [r for r in found if serial_port(r) is None] + [
        r for r in found if serial_port(r) is not None
    ]


def simulator_resources(bench_file: str) -> dict[str, str]:
    """The resources of the bench's running simulator, by instrument name; none if there
    is no simulation bench there or no simulator runs for it."""
    from interlock.config import load_bench
    from interlock.sim.client import read_state, state_path

    try:
        bench = load_bench(bench_file)
    except InterlockError:
        return {}
    if bench.simulation is None:
        return {}
    state = read_state(state_path(bench))
    return dict(state.resources) if state is not None else {}


# -- asking ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    """One way of asking who is there: ``asked`` says how (its link, paced at the largest
    gap of the family), ``family`` the dialects whose identity its reply may be."""

    asked: Dialect
    family: tuple[Dialect, ...]


def serial_port(resource: str) -> str | None:
    """The port a serial resource names (``ASRL/dev/ttyUSB0::INSTR`` or a path); None for
    any other VISA resource (a socket, USB-TMC, GPIB, VXI-11)."""
    if resource.upper().startswith("ASRL") and resource.upper().endswith("::INSTR"):
        return resource[4 : -len("::INSTR")]
    return None if "::" in resource else resource


def _line_end(ends: set[str]) -> str:
    # A reply read to its newline reads one ending CR LF too (the CR is stripped).
    return "\n" if all(end.endswith("\n") for end in ends) else "|".join(sorted(ends))


def _way(dialect: Dialect, serial: bool) -> tuple[object, ...]:
    """What tells two ways of asking apart on the wire: the line and how it is framed,
    and on a serial port the frame, the handshake and the line that must come first."""
    link, identity = dialect.link, dialect.identity
    assert identity is not None
    way: tuple[object, ...] = (identity.query.template, link.write_termination, link.framing)
    way += (_line_end({link.read_termination}),)
    if serial:
        remote = dialect.command("remote")
        way += (link.baud, link.data_bits, link.parity, link.stop_bits, link.flow)
        way += (remote.template if remote else "",)
    return way


def questions(serial: bool) -> list[Question]:
    """Every way of asking over a serial port (or over any other VISA resource), each
    once, in the order they are asked: lines ended by a newline first, then those ended
    otherwise, those framed by silence last (their bytes wait, unended, in the input of
    an instrument that reads to a line end, and would spoil the next question to it)."""
    groups: dict[tuple[object, ...], list[Dialect]] = {}
    for dialect in dialects().values():
        if dialect.identity is None or (dialect.link.kind != "visa-socket") != serial:
            continue
        groups.setdefault(_way(dialect, serial), []).append(dialect)
    found = []
    for family in groups.values():
        first = family[0]
        link = dataclasses.replace(
            first.link,
            kind="serial" if serial else "visa-socket",
            read_termination=_line_end({d.link.read_termination for d in family}),
            min_gap=max(d.link.min_gap for d in family),
        )
        found.append(Question(dataclasses.replace(first, link=link), tuple(family)))
    return sorted(found, key=lambda q: _rank(q.asked.link.write_termination))


def _rank(end: str) -> int:
    return 0 if end.endswith("\n") else 1 if end else 3


def _steps(serial: bool) -> list[Question | Dialect]:
    """The questions in order; on a serial port the switch units that say who they are
    only to their own driver (each ends what an earlier question left unended) go
    after the line-ended questions and before the unended ones."""
    steps: list[Question | Dialect] = [*questions(serial)]
    if serial:
        steps += [d for d in dialects().values() if d.kind == "switch" and d.identity is None]
    return sorted(
        steps, key=lambda s: _rank(s.asked.link.write_termination) if isinstance(s, Question) else 2
    )


def probe_all(
    resources: list[str], journal: Journal, timeout: float, names: dict[str, str]
) -> list[Found]:
    """Each resource probed, :data:`AT_ONCE` at a time; the results in the order given."""
    if not resources:
        return []
    with ThreadPoolExecutor(min(AT_ONCE, len(resources)), "probe") as pool:
        return list(pool.map(lambda r: probe(r, journal, timeout, names.get(r, "")), resources))


def probe(resource: str, journal: Journal, timeout: float, name: str = "") -> Found:
    """Ask ``resource`` who it is, each way it could be asked, until one answers."""
    port = serial_port(resource)
    where = port if port is not None else resource
    problem = "no known instrument answered"
    for step in _steps(serial=port is not None):
        if isinstance(step, Dialect):
            board = _board(step, where, journal, timeout)
            if board is not None:
                return Found(resource, step, board, name)
            continue
        reply = _ask(step.asked, where, journal, timeout)
        if reply is None:
            continue
        for dialect in step.family:
            identity = _identified(dialect, reply)
            if identity is not None:
                return Found(resource, dialect, identity, name)
        problem = f"answered {reply!r}: no dialect knows it"
    return Found(resource, name=name, problem=problem)


def _identified(dialect: Dialect, reply: str) -> Identified | None:
    match = match_identity(dialect, reply)
    if match is None:
        return None
    groups = match.groupdict()
    model = dialect.models.get(groups["model"])
    maker = groups.get("maker") or (model.maker if model is not None else "")
    return Identified(
        maker, groups["model"], groups.get("serial") or "", groups.get("firmware") or ""
    )


def _ask(dialect: Dialect, where: str, journal: Journal, timeout: float) -> str | None:
    """The identity query's reply, or None if nothing (readable) came back. A family that
    listens on RS-232 only in remote (SYST:REM first) is given back to its front panel
    (its ``local`` line) whether it answered or not."""
    assert dialect.identity is not None
    spec = DriverSpec("probe", dialect, where, journal, timeout)
    device = DialectDevice("probe", dialect, make_link(spec), journal)
    local = dialect.command("local")
    remote_sent = False
    try:
        device.transport.open()
        remote = dialect.command("remote")
        if remote is not None:
            device.command(remote.line(), purpose="probe")
            remote_sent = True
        return device.ask(dialect.identity.query.template, dialect.identity.query.width)
    except InterlockError as error:
        log.debug("%s: no reply to %s: %s", where, dialect.identity.query.template, error)
        return None
    finally:
        with contextlib.suppress(InterlockError):
            if remote_sent and local is not None:
                if not device.transport.is_open:  # a timeout poisons the link: a fresh one
                    device.transport.open()
                device.command(local.line(), purpose="probe")
        with contextlib.suppress(InterlockError):
            device.transport.close()


def _board(dialect: Dialect, port: str, journal: Journal, timeout: float) -> Identified | None:
    """A switch unit identified by its own driver (the RB8's frames, the Numato's ver);
    one with a host watchdog is released after (relays open, the watchdog disarmed), as
    no host drives it."""
    board = driver_class(dialect.driver).build(DriverSpec("probe", dialect, port, journal, timeout))
    try:
        board.open()
        identity = board.identify()
        if identity.model not in dialect.models:
            return None
        if dialect.capabilities.watchdog:
            board.release()  # no host watchdog left running behind us
        return identity
    except InterlockError as error:
        log.debug("%s: not a %s: %s", port, dialect.name, error)
        return None
    finally:
        with contextlib.suppress(InterlockError):
            board.close()


# -- what it prints ----------------------------------------------------------------------


def stanza(name: str, found: Found) -> str:
    """The ``[instruments.<name>]`` stanza for bench.toml."""
    assert found.dialect is not None and found.identity is not None
    ident = found.identity
    # Where bench.toml looks for it is its dialect's: a port for pyserial, else a resource.
    port = serial_port(found.resource)
    kind = found.dialect.link.kind
    where = f'resource = "{found.resource}"'
    if port is not None and kind == "serial":
        where = f'port = "{port}"'
    elif port is not None:
        where = f'resource = "ASRL{port}::INSTR"'
    fields = [f'maker = "{ident.maker}"', f'model = "{ident.model}"']
    if ident.serial:
        fields.append(f'serial = "{ident.serial}"')
    return "\n".join(
        [
            f"[instruments.{name}]",
            f'driver = "{found.dialect.driver}"',
            where,
            f"identity = {{ {', '.join(fields)} }}",
        ]
    )


def render(found: list[Found]) -> str:
    if not found:
        return "no VISA resource or serial port found (name one: interlock probe RESOURCE)"
    out: list[str] = []
    counts: dict[str, int] = {}
    for item in found:
        if item.dialect is None or item.identity is None:
            out += [f"{item.resource}", f"  {item.problem}", ""]
            continue
        dialect, ident = item.dialect, item.identity
        counts[dialect.kind] = counts.get(dialect.kind, 0) + 1
        name = item.name or f"{dialect.kind}{counts[dialect.kind]}"
        model = dialect.models.get(ident.model)
        unconfirmed = len(dialect.unconfirmed) + len(model.unconfirmed if model else ())
        caps = ", ".join(dialect.capabilities.names()) or "none"
        out += [
            item.resource,
            f"  {ident.maker} {ident.model}  serial {ident.serial or '-'}  "
            f"firmware {ident.firmware or '-'}",
            f"  dialect {dialect.name} ({dialect.title}, {dialect.path}), driver {dialect.driver}",
            f"  capabilities: {caps}",
        ]
        if unconfirmed:
            out.append(
                f"  {unconfirmed} unconfirmed facts: verify on hardware before use "
                "(README, supported instruments)"
            )
        out += ["", *("  " + line for line in stanza(name, item).splitlines()), ""]
    return "\n".join(out).rstrip()
