"""``interlock console``: the operator console, attached to the bench's running service.

The console never starts a service (the service owns the bench, and starting
it is someone's decision); it waits for one and shows that it is waiting.
"""

from __future__ import annotations

import argparse

from interlock.commands.common import add_bench_argument, command_bench


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
    parser.set_defaults(handler=run_console)


def run_console(args: argparse.Namespace) -> int:
    # Imported here: the other commands need no terminal UI.
    from interlock.console import ConsoleApp, ServiceSource

    bench = command_bench(args)
    ConsoleApp(ServiceSource(bench, args.role)).run()
    return 0
