"""``interlock probe [RESOURCE ...]``: which instruments are there, and how to name them.

Without resources it looks where instruments can be found: the VISA resources
pyvisa-py lists, the serial ports pyserial lists and, for a simulation bench
whose simulator runs, the simulator's own resources (``sim.json``: its
sockets and pseudo-terminals, which neither lists). Each is asked who it is
with its dialects' identity query only: nothing is set, switched or locked.
A relay board, once identified, is released (relays open, its host watchdog
disarmed), the state it is in when no host drives it. For each instrument it
prints the matching dialect, its capabilities and the ``[instruments.x]``
stanza to paste into bench.toml. Its scratch journal is thrown away.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import tempfile
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

_SOCKET = re.compile(r"TCPIP\d*::[^:]+::\d+::SOCKET", re.IGNORECASE)
MAX_RESOURCES = 64  # bound the work: each one costs a timeout when nothing answers


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
    resources = list(dict.fromkeys(resources))[:MAX_RESOURCES]
    names = {where: name for name, where in named.items()}
    with tempfile.TemporaryDirectory(prefix="interlock-probe-") as scratch:
        journal = Journal(Path(scratch) / "probe.sqlite", bench="probe")
        try:
            found = [probe(r, journal, args.timeout, names.get(r, "")) for r in resources]
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
    return [r for r in found if not r.upper().startswith("ASRL")] + [
        r for r in found if r.upper().startswith("ASRL")
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


def probe(resource: str, journal: Journal, timeout: float, name: str = "") -> Found:
    """Ask ``resource`` who it is in each dialect that could be spoken over it."""
    serial = not _SOCKET.fullmatch(resource)
    asked: dict[tuple[str, str, str, str], str | None] = {}
    problem = "no known instrument answered"
    for dialect in dialects().values():
        if dialect.identity is None or (dialect.link.kind == "visa-socket") == serial:
            continue
        link = dialect.link
        key = (dialect.identity.query.template, link.kind, repr(link), link.write_termination)
        if key not in asked:  # one question per way of asking, matched against every dialect
            asked[key] = _ask(dialect, resource, journal, timeout)
        reply = asked[key]
        if reply is None:
            continue
        match = match_identity(dialect, reply)
        if match is not None:
            groups = match.groupdict()
            model = dialect.models.get(groups["model"])
            maker = groups.get("maker") or (model.maker if model is not None else "")
            identity = Identified(
                maker, groups["model"], groups.get("serial") or "", groups.get("firmware") or ""
            )
            return Found(resource, dialect, identity, name)
        problem = f"answered {reply!r}: no dialect knows it"
    if serial:
        board = _board(resource, journal, timeout)
        if board is not None:
            return Found(resource, board[0], board[1], name)
    return Found(resource, name=name, problem=problem)


def _spec(dialect: Dialect, resource: str, journal: Journal, timeout: float) -> DriverSpec:
    if dialect.link.kind == "visa-serial" and not resource.upper().startswith("ASRL"):
        resource = f"ASRL{resource}::INSTR"
    return DriverSpec("probe", dialect, resource, journal, timeout)


def _ask(dialect: Dialect, resource: str, journal: Journal, timeout: float) -> str | None:
    """The identity query's reply, or None if nothing (readable) came back."""
    assert dialect.identity is not None
    device = DialectDevice(
        "probe", dialect, make_link(_spec(dialect, resource, journal, timeout)), journal
    )
    try:
        device.transport.open()
        return device.ask(dialect.identity.query.template, dialect.identity.query.width)
    except InterlockError as error:
        log.debug("%s: no %s reply: %s", resource, dialect.name, error)
        return None
    finally:
        with contextlib.suppress(InterlockError):
            device.transport.close()


def _board(resource: str, journal: Journal, timeout: float) -> tuple[Dialect, Identified] | None:
    """A switch unit with a driver of its own (the RB8): its identify, then released."""
    for dialect in dialects().values():
        if dialect.kind != "switch":
            continue
        board = driver_class(dialect.driver).build(_spec(dialect, resource, journal, timeout))
        try:
            board.open()
            identity = board.identify()
            if identity.model in dialect.models:
                board.release()  # no host watchdog left running behind us
                return dialect, identity
        except InterlockError as error:
            log.debug("%s: not a %s: %s", resource, dialect.name, error)
        finally:
            with contextlib.suppress(InterlockError):
                board.close()
    return None


# -- what it prints ----------------------------------------------------------------------


def stanza(name: str, found: Found) -> str:
    """The ``[instruments.<name>]`` stanza for bench.toml."""
    assert found.dialect is not None and found.identity is not None
    ident = found.identity
    where = "resource" if _SOCKET.fullmatch(found.resource) or "::" in found.resource else "port"
    fields = [f'maker = "{ident.maker}"', f'model = "{ident.model}"']
    if ident.serial:
        fields.append(f'serial = "{ident.serial}"')
    return "\n".join(
        [
            f"[instruments.{name}]",
            f'driver = "{found.dialect.driver}"',
            f'{where} = "{found.resource}"',
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
