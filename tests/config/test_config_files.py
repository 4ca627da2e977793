"""Only regular files of a bounded size are read; nothing read can hang or exhaust the loader.

A FIFO, a device, a directory or a symlink to one of them is refused before
it is opened for reading (a FIFO's open would block, ``/dev/zero`` never
ends: the tests use ``/dev/null``, a character device too, so that a loader
that did read it would fail, not exhaust the machine); a file over 1 MiB is
refused; a TOML nested thousands deep is an
error, not a RecursionError. Every loader (bench, profile, sequence) reads
through the same function.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from interlock.config import load_bench, load_configuration, load_profile
from interlock.config.reader import MAX_FILE_BYTES
from interlock.errors import ConfigError
from interlock.sequence import load_sequence

ROOT = Path(__file__).resolve().parents[2]
LOADERS = [load_bench, load_profile, load_sequence]


def refusal(loader, path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        loader(path)
    return info.value


@pytest.mark.parametrize("loader", LOADERS)
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path, loader):
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    error = refusal(loader, fifo)
    assert (error.key, error.problem) == ("", "not a regular file (a FIFO)")
    # The same through a symlink: resolved first, then checked.
    link = tmp_path / "link.toml"
    link.symlink_to(fifo)
    assert refusal(loader, link).problem == "not a regular file (a FIFO)"


@pytest.mark.parametrize("loader", LOADERS)
def test_a_device_or_a_directory_is_refused(tmp_path, loader):
    assert refusal(loader, Path("/dev/null")).problem == "not a regular file (a character device)"
    assert refusal(loader, tmp_path).problem == "not a regular file (a directory)"


def test_the_profile_named_by_the_bench_is_read_the_same_way(tmp_path):
    text = (ROOT / "bench.toml").read_text(encoding="utf-8")
    bench = tmp_path / "bench.toml"
    bench.write_text(text.replace('"profiles/mdb24.toml"', '"/dev/null"'), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_configuration(bench)
    assert str(info.value) == "/dev/null: not a regular file (a character device)"


@pytest.mark.parametrize("loader", LOADERS)
def test_a_file_over_the_bound_is_refused_unread(tmp_path, loader):
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    error = refusal(loader, big)
    assert error.problem == f"{MAX_FILE_BYTES + 1} bytes: larger than {MAX_FILE_BYTES} bytes"


def test_a_file_at_the_bound_is_read(tmp_path):
    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    text = (ROOT / "bench.toml").read_bytes()
    bench = tmp_path / "bench.toml"
    bench.write_bytes(text + b"#" * (MAX_FILE_BYTES - len(text) - 1) + b"\n")
    assert bench.stat().st_size == MAX_FILE_BYTES
    assert load_bench(bench).name == "sim-bench-01"


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(
    "nesting", ["[" * 5000 + "]" * 5000, "{a = " * 5000 + "1" + "}" * 5000], ids=["array", "table"]
)
def test_deep_nesting_is_an_error(tmp_path, loader, nesting):
    deep = tmp_path / "deep.toml"
    deep.write_text(f"x = {nesting}\n", encoding="utf-8")
    error = refusal(loader, deep)
    assert error.problem == "invalid TOML: arrays or tables nested too deeply"


@pytest.mark.parametrize("loader", LOADERS)
def test_other_unreadable_files(tmp_path, loader):
    huge_integer = tmp_path / "integer.toml"
    huge_integer.write_text("x = " + "9" * 5000 + "\n", encoding="utf-8")
    assert refusal(loader, huge_integer).problem.startswith("invalid TOML: Exceeds the limit")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"x = \xff\xfe\n")
    assert refusal(loader, binary).problem == "not UTF-8 text"
    loop = tmp_path / "loop.toml"
    loop.symlink_to(tmp_path / "loop.toml")
    assert refusal(loader, loop).problem.startswith(("cannot resolve the path", "cannot read"))
    assert refusal(loader, tmp_path / "none.toml").problem == "file not found"
