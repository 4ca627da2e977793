"""``interlock console``: the operator console, attached to the bench's running service.

The console never starts a service (the service owns the bench, and starting
it is someone's decision); it waits for one and shows that it is waiting.
``--place NAME`` opens a bench of a lab instead, found as a labgrid place
(``interlock[labgrid]``), over TLS with the role's token of that bench.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from interlock.commands.common import add_bench_argument, command_bench
from interlock.commands.fleet import add_lab_arguments, labgrid_fleet
from interlock.exits import EXIT_USAGE


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "console",
        help="operator console: watch the bench, stop it, arm, disarm, reset",
        description="The operator console (a terminal UI) of a bench's controller service. "
        "Space is the emergency stop; a arms, d disarms, r acknowledges and resets a fault. "
        "It keeps trying to reach the service, and says so while it cannot.",
    )
    add_bench_argument(parser)
    parser.add_argument(
        "--role",
        choices=("operator", "script", "viewer"),
        default="operator",
        help="whose token to use (default: operator); arming, disarming and resetting "
        "need operator, anyone may stop",
    )
    parser.add_argument(
        "--place",
        metavar="NAME",
        help="open the bench of this labgrid place instead of --bench (see --coordinator)",
    )
    add_lab_arguments(parser)
    parser.set_defaults(handler=run_console)


def run_console(args: argparse.Namespace) -> int:
    source = console_source(args)  # a bench that is not there is said first
    if not all(stream is not None and stream.isatty() for stream in (sys.stdin, sys.stdout)):
        # Drawn into a file or a pipe, a full-screen UI is bytes no one reads, and it
        # would wait for keys no one can press.
        print(
            "interlock console needs a terminal (its input and output are not one); "
            "from a script: interlock status, interlock estop",
            file=sys.stderr,
        )
        return EXIT_USAGE
    # Imported here: the other commands need no terminal UI.
    from interlock.console import ConsoleApp

    ConsoleApp(source).run()
    return 0


def console_source(args: argparse.Namespace) -> Any:
    """The console's source: the local bench, or the bench of a labgrid place."""
    from interlock.console import ServiceSource

    if args.place is None:
        return ServiceSource(command_bench(args), args.role)
    from interlock.client._common import Remote, remote_bench
    from interlock.labgrid.drivers import token_directory
    from interlock.service.tokens import read_token

    found = labgrid_fleet().find_place(args.coordinator, args.place)
    token = read_token(token_directory(args.tokens, found.bench), args.role)
    remote = Remote.of(found.address, args.ca)
    return ServiceSource(remote_bench(remote, token, None), args.role, token=token, remote=remote)
