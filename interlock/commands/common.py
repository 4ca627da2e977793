"""Pieces shared by sub-commands: the --bench option, finding the bench, the banner."""

from __future__ import annotations

import argparse
import sys

from interlock.config import Bench, load_bench
from interlock.lookup import BENCH_FILE, ENVIRONMENT, locate_bench


def add_bench_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bench",
        default=None,
        metavar="FILE",
        help=f"bench description (default: ${ENVIRONMENT}, else {BENCH_FILE} in the current "
        "directory or the nearest one above it)",
    )


def bench_file(args: argparse.Namespace) -> str:
    """The bench file the command acts on: ``--bench``, ``$INTERLOCK_BENCH`` or found upward.

    When it was not given nor in the current directory, says which one was taken
    (on stderr, so that a command's output stays what it was).
    """
    found = getattr(args, "_bench_found", None)
    if found is None:
        found = locate_bench(args.bench)
        args._bench_found = found
        if found.implicit:
            print(f"interlock: {found.describe()}", file=sys.stderr, flush=True)
    return str(found.path)


def command_bench(args: argparse.Namespace) -> Bench:
    """The command's bench, loaded (ConfigError naming file and key)."""
    return load_bench(bench_file(args))


def banner(bench: Bench) -> str:
    """The line that heads every CLI output: nobody should wonder which bench this is."""
    marker = "  *** FLIGHT HARDWARE ***" if bench.environment == "flight" else ""
    return f"bench {bench.name} [{bench.environment}]{marker}"
