"""Helpers for the sequence tests: bench copies, sequence files written on the fly."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROOT_BENCH = ROOT / "bench.toml"
EXAMPLE = ROOT / "sequences" / "mdb24_power_up.toml"
WRONG_PROFILE = ROOT / "sequences" / "snb5_power_up.toml"

HEADER = '[sequence]\nname = "test"\nprofile = "MDB-24"\n'


def bench_copy(
    directory: Path, resources: dict[str, str] | None = None, profile: Path | None = None
) -> Path:
    """The root bench.toml, with its run files in ``directory`` and, if given, the
    instruments at ``resources`` (a running simulator's), so that anything that
    followed this bench file would reach that simulator."""
    text = ROOT_BENCH.read_text()
    text = re.sub(
        r'^profile = ".*"$',
        f'profile = "{profile or ROOT / "profiles" / "mdb24.toml"}"',
        text,
        count=1,
        flags=re.M,
    )
    for key, name in (
        ("socket", "interlock.sock"),
        ("journal", "journal.sqlite"),
        ("tokens", "tokens"),
    ):
        text = re.sub(rf'^{key} = ".*?"', f'{key} = "{directory / name}"', text, flags=re.M)
    for name, where in (resources or {}).items():
        key = "port" if where.startswith("/") else "resource"
        text = re.sub(
            rf'(\[instruments\.{name}\][^\[]*?){key} = ".*?"',
            lambda m, key=key, where=where: f'{m.group(1)}{key} = "{where}"',
            text,
            flags=re.S,
        )
    path = directory / "bench.toml"
    path.write_text(text)
    return path


@pytest.fixture
def write_sequence(tmp_path: Path) -> Callable[..., Path]:
    """Write a sequence file from its steps' TOML (the [sequence] header is added)."""
    count = 0

    def write(steps: str, header: str = HEADER) -> Path:
        nonlocal count
        count += 1
        path = tmp_path / f"sequence{count}.toml"
        path.write_text(header + "\n" + steps)
        return path

    return write
