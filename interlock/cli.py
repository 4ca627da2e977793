"""The ``interlock`` command line.

Each sub-command lives in its own module under :mod:`interlock.commands` and
exposes ``register(subparsers)``, which adds its parser and sets ``handler``
to a function ``(args) -> int``. Only the CLI configures logging and turns
errors into exit codes; the library never prints.

Exit codes (shared by every sub-command, :mod:`interlock.exits`):
0 pass, 1 a measurement failed, 2 config or usage error,
3 refused by the interlock, 4 fault (instrument, journal, latched fault).
This module imports the command modules; none of them imports it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from interlock.errors import InterlockError
from interlock.exits import exit_code_for

# One module per sub-command family, in the order shown by --help.
COMMAND_MODULES = [
    "interlock.commands.check",
    "interlock.commands.journal",
    "interlock.commands.run",
    "interlock.commands.sim",
    "interlock.commands.service",
    "interlock.commands.console",
    "interlock.commands.probe",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interlock",
        description="Safety interlock controller for hardware test benches.",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (repeatable)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except InterlockError as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return exit_code_for(error)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
