"""``interlock fleet status``: every bench of a lab that is a labgrid place, at a glance.

The places come from the labgrid coordinator (``--coordinator``, else
``LG_COORDINATOR``, as labgrid's own client takes it); each bench's status
from its service, over TLS with a viewer token (``--tokens``, a directory per
bench, ``{bench}`` replaced by its name) and the lab's CA (``--ca``). A bench
that does not answer within 2 s is shown ``unreachable``. Needs the
``interlock[labgrid]`` extra.

Exit codes (:mod:`interlock.exits`): 0 shown (unreachable benches included),
2 usage (no labgrid), 4 the coordinator cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import os
from types import ModuleType

from interlock.errors import ConfigError

DEFAULT_COORDINATOR = "127.0.0.1:20408"
DEFAULT_TOKENS = "~/.config/interlock/benches/{bench}"  # the labgrid drivers' default too
COLUMNS = ("PLACE", "BENCH", "CLASS", "STATE", "LEASE", "FAULT", "PLACE HELD BY")


def add_lab_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the lab's coordinator is, and how its benches are reached."""
    parser.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        default=os.environ.get("LG_COORDINATOR", DEFAULT_COORDINATOR),
        help=f"the labgrid coordinator (default: $LG_COORDINATOR, else {DEFAULT_COORDINATOR})",
    )
    parser.add_argument(
        "--ca",
        metavar="FILE",
        help="the lab's CA (PEM) the services' "
        "certificates are signed by (default: the system's CAs)",
    )
    parser.add_argument(
        "--tokens",
        metavar="DIR",
        default=DEFAULT_TOKENS,
        help=f"each bench's token directory, {{bench}} replaced (default: {DEFAULT_TOKENS})",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    fleet = subparsers.add_parser(
        "fleet",
        help="the lab's benches that are labgrid places",
        description="The benches of a lab, each a labgrid place (interlock[labgrid]).",
    )
    commands = fleet.add_subparsers(dest="fleet_command", metavar="COMMAND", required=True)
    status = commands.add_parser(
        "status",
        help="every interlock place: bench, class, state, lease, fault, who holds it",
        description="Every interlock place of the coordinator, with its bench's state as its "
        "service says it; a bench that does not answer is shown unreachable.",
    )
    add_lab_arguments(status)
    status.add_argument("--json", action="store_true", help="print the rows as JSON")
    status.set_defaults(handler=run_status)


def labgrid_fleet() -> ModuleType:
    """interlock.labgrid.fleet, imported only when asked for (it needs labgrid)."""
    try:
        from interlock.labgrid import fleet
    except ImportError as error:
        raise ConfigError(
            "interlock",
            "fleet",
            f'needs the labgrid extra (pip install "interlock[labgrid]"): {error}',
        ) from None
    return fleet


def run_status(args: argparse.Namespace) -> int:
    fleet = labgrid_fleet()
    rows = fleet.fleet_status(args.coordinator, ca=args.ca, tokens=args.tokens)
    if args.json:
        print(json.dumps([row.public() for row in rows], indent=2))
        return 0
    print(f"lab {args.coordinator}: {len(rows)} interlock place(s)")
    lines = [COLUMNS] + [
        (
            row.place,
            row.bench,
            row.environment,
            row.state,
            row.lease_holder or "-",
            (row.fault or "-")[:60],
            row.place_holder or "-",
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    for line in lines:
        print(
            "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        )
    return 0
