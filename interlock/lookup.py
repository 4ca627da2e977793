"""Which bench file is meant: found in the order labgrid's users expect.

1. the one given (``--bench FILE``, ``interlock.connect("x.toml")``,
   ``--interlock-bench``);
2. the ``INTERLOCK_BENCH`` environment variable (as labgrid's ``LG_ENV``);
3. ``bench.toml`` in the current directory, or in the nearest directory
   above it (as git finds its checkout).

:func:`locate_bench` says which one was taken (:attr:`BenchFile.source`),
so that a command run from the wrong directory tells which bench it acts
on. Nothing here reads the file: :func:`interlock.config.load_bench` does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from interlock.errors import ConfigError

ENVIRONMENT = "INTERLOCK_BENCH"
BENCH_FILE = "bench.toml"

GIVEN = "given"
FROM_ENVIRONMENT = ENVIRONMENT
HERE = "the current directory"
ABOVE = "found above the current directory"


@dataclass(frozen=True)
class BenchFile:
    """A bench file and how it was found (:data:`GIVEN`, :data:`FROM_ENVIRONMENT`...)."""

    path: Path
    source: str

    @property
    def implicit(self) -> bool:
        """Found rather than given or in the current directory: worth saying which."""
        return self.source in (FROM_ENVIRONMENT, ABOVE)

    def describe(self) -> str:
        how = f"from ${ENVIRONMENT}" if self.source == FROM_ENVIRONMENT else self.source
        return f"bench file {self.path} ({how})"


def locate_bench(
    given: str | Path | None = None,
    *,
    start: str | Path | None = None,
    option: str = "--bench FILE",
) -> BenchFile:
    """The bench file meant by ``given`` (None: look for it); ConfigError if none is found.

    ``start`` is where the upward search begins (default: the current directory).
    """
    if given is not None and str(given) != "":
        return BenchFile(Path(given), GIVEN)
    variable = os.environ.get(ENVIRONMENT, "")
    if variable:
        return BenchFile(Path(variable), FROM_ENVIRONMENT)
    here = Path(start) if start is not None else Path.cwd()
    if (here / BENCH_FILE).is_file():
        return BenchFile(Path(BENCH_FILE) if start is None else here / BENCH_FILE, HERE)
    for directory in here.resolve().parents:
        candidate = directory / BENCH_FILE
        if candidate.is_file():
            return BenchFile(candidate, ABOVE)
    raise ConfigError(
        BENCH_FILE,
        "",
        f"no bench file: none given ({option}), ${ENVIRONMENT} is not set, and there is "
        f"no {BENCH_FILE} in {here} or any directory above it; `interlock init DIR` writes "
        "an example simulated bench",
    )


__all__ = ["BENCH_FILE", "ENVIRONMENT", "BenchFile", "locate_bench"]
