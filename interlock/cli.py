"""The ``interlock`` command line.

Each sub-command lives in its own module under :mod:`interlock.commands` and
exposes ``register(subparsers)``, which adds its parser and sets ``handler``
to a function ``(args) -> int``. Only the CLI configures logging and turns
errors into exit codes; the library never prints.

Exit codes (shared by every sub-command, :mod:`interlock.exits`):
0 pass, 1 a measurement failed, 2 config or usage error (argparse's own
errors included), 3 refused by the interlock, 4 fault (instrument, journal,
latched fault, no service), 130 interrupted. This module imports the
command modules; none of them imports it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from interlock.errors import InterlockError
from interlock.exits import EXIT_INTERRUPTED, MEANINGS, exit_code_for

if TYPE_CHECKING:
    import argparse

# One module per sub-command family, in the order shown by --help.
COMMAND_MODULES = [
    "interlock.commands.check",
    "interlock.commands.journal",
    "interlock.commands.run",
    "interlock.commands.sim",
    "interlock.commands.service",
    "interlock.commands.console",
    "interlock.commands.fleet",
    "interlock.commands.init",
    "interlock.commands.probe",
]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("interlock")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def _exit_codes() -> str:
    return "exit codes:\n" + "\n".join(f"  {code:<4} {text}" for code, text in MEANINGS.items())


def build_parser() -> argparse.ArgumentParser:
    # Imported here: `interlock estop` goes out before any of this (see main).
    import argparse
    import importlib

    parser = argparse.ArgumentParser(
        prog="interlock",
        description="Safety interlock controller for hardware test benches.",
        epilog=_exit_codes(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (repeatable)"
    )
    parser.add_argument(
        "--version", action="version", version=f"interlock {_version()}", help="print the version"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


NOT_DELIVERED = "EMERGENCY STOP NOT DELIVERED: use the bench's hardware E-stop"
# Interrupted while it waited for the answer, the stop may or may not have gone out.
NOT_KNOWN = "EMERGENCY STOP INTERRUPTED, not known to be done: use the bench's hardware E-stop"


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    if words[:1] != ["estop"]:
        return _command(argv)
    # The stop first, before the rest of the program is imported; it steps aside
    # (None) for anything it does not understand, and the full command runs.
    from interlock.commands.estop import main as stop

    try:
        done = stop(words[1:])
    except KeyboardInterrupt:
        print(NOT_KNOWN, file=sys.stderr)
        return EXIT_INTERRUPTED
    if done is not None:
        return done
    try:
        code = _command(argv)
    except SystemExit as exit_:  # argparse: --help (0), arguments refused (2)
        if exit_.code not in (0, None):
            print(NOT_DELIVERED, file=sys.stderr)
        raise
    except KeyboardInterrupt:  # while the full command was still being imported
        print(NOT_KNOWN, file=sys.stderr)
        return EXIT_INTERRUPTED
    except BaseException:
        print(NOT_DELIVERED, file=sys.stderr)
        raise
    if code != 0:  # said last, after why, where whoever asked sees it
        print(NOT_KNOWN if code == EXIT_INTERRUPTED else NOT_DELIVERED, file=sys.stderr)
    return code


def _command(argv: list[str] | None) -> int:
    import logging

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
        # A command that had the bench drives it safe and says so itself; the rest end here.
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
