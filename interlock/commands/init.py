"""``interlock init [DIR]``: write the example simulated bench where a user wants it.

The package carries the example the checkout has at its root (``bench.toml``
describing a simulated bench with an MDB-24 board, its profiles and
sequences, in :mod:`interlock`'s ``example/`` data), so that an installed
interlock runs without a checkout. Nothing that exists is overwritten: a
file already there is a usage error (exit 2) naming it, and nothing is
written.
"""

from __future__ import annotations

import argparse
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from interlock.errors import InvalidArgument

EXAMPLE = "example"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "init",
        help="write the example simulated bench (bench.toml, profiles, sequences) to DIR",
        description="Write the example simulated bench to DIR (default: the current "
        "directory): bench.toml, profiles/ and sequences/, ready for `interlock run --yes "
        "sequences/mdb24_power_up.toml` there. Existing files are never overwritten.",
    )
    parser.add_argument(
        "directory", nargs="?", default=".", metavar="DIR", help="where (default: here)"
    )
    parser.set_defaults(handler=run_init)


def example_files() -> dict[str, Traversable]:
    """The bundled example: path relative to DIR -> the packaged file."""
    found: dict[str, Traversable] = {}

    def walk(node: Traversable, prefix: str) -> None:
        for child in node.iterdir():
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            elif child.name.endswith(".toml"):
                found[f"{prefix}{child.name}"] = child

    walk(files("interlock") / EXAMPLE, "")
    return dict(sorted(found.items()))


def run_init(args: argparse.Namespace) -> int:
    target = Path(args.directory)
    example = example_files()
    present = [name for name in example if (target / name).exists()]
    if present:
        raise InvalidArgument(
            f"{target}: {', '.join(present)} already there: nothing written (init never "
            "overwrites; choose an empty directory)"
        )
    for name, source in example.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(source.read_bytes())
    print(f"wrote the example simulated bench to {target}: {', '.join(example)}")
    where = "" if target == Path(".") else f"cd {target} && "
    print(f"run it: {where}interlock run --yes sequences/mdb24_power_up.toml")
    return 0
