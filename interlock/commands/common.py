"""Pieces shared by sub-commands: the --bench option and the banner that heads every output."""

from __future__ import annotations

import argparse

from interlock.config import Bench

DEFAULT_BENCH = "bench.toml"


def add_bench_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bench",
        default=DEFAULT_BENCH,
        metavar="FILE",
        help=f"bench description (default: {DEFAULT_BENCH})",
    )


def banner(bench: Bench) -> str:
    """The line that heads every CLI output: nobody should wonder which bench this is."""
    marker = "  *** FLIGHT HARDWARE ***" if bench.environment == "flight" else ""
    return f"bench {bench.name} [{bench.environment}]{marker}"
