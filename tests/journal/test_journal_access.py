"""Who may read the journal: its files are owner-only, or also a group bench.toml names."""

from __future__ import annotations

import grp
import os
import re
import stat
from pathlib import Path

import pytest

from interlock.config import load_bench
from interlock.errors import ConfigError
from interlock.journal import Journal
from interlock.journal.files import JournalAccess

ROOT = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def journal_files(path: Path) -> list[Path]:
    return [path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}.head")]


@pytest.fixture
def open_umask():
    """The most permissive umask: modes must not depend on the caller's."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def other_group() -> grp.struct_group:
    """A group the files are not in by default."""
    own = os.getegid()
    return next(g for g in grp.getgrall() if g.gr_gid != own)


def test_a_new_journal_and_its_directory_are_owner_only(tmp_path, open_umask):
    path = tmp_path / "run" / "journal.sqlite"
    with Journal(path, bench="b") as journal:
        journal.measurement("VBUS", voltage=1.0)
        for file in journal_files(path):
            assert mode(file) == 0o600, file
    assert mode(path.parent) == 0o700


def test_a_group_named_in_bench_toml_may_read(tmp_path, open_umask):
    group = other_group()
    path = tmp_path / "run" / "journal.sqlite"
    with Journal(path, bench="b", access=JournalAccess(group.gr_name)) as journal:
        journal.measurement("VBUS", voltage=1.0)
        for file in [*journal_files(path), path.parent]:
            assert file.stat().st_gid == group.gr_gid, file
            assert mode(file) == (0o750 if file.is_dir() else 0o640), file


def test_an_existing_journal_readable_by_all_is_restricted_when_the_service_opens_it(tmp_path):
    path = tmp_path / "journal.sqlite"
    with Journal(path, bench="b") as journal:
        journal.measurement("VBUS", voltage=1.0)
    for file in journal_files(path):
        if file.exists():
            os.chmod(file, 0o644)
    # A reader or a --journal maintenance command leaves the modes as they are...
    with Journal(path, bench="b"):
        assert mode(path) == 0o644
    # ...the service states who may read.
    with Journal(path, bench="b", access=JournalAccess()):
        for file in journal_files(path):
            assert mode(file) == 0o600, file


def write_bench(tmp_path: Path, group: str) -> Path:
    text = (ROOT / "bench.toml").read_text(encoding="utf-8")
    text = text.replace('profile = "profiles/', f'profile = "{ROOT}/profiles/')
    text, count = re.subn(
        r'(?m)^journal = "run/journal.sqlite"$',
        f'journal = "run/journal.sqlite"\njournal_group = "{group}"',
        text,
    )
    assert count == 1
    path = tmp_path / "bench.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_bench_toml_names_the_journal_group(tmp_path):
    group = other_group().gr_name
    assert load_bench(write_bench(tmp_path, group)).service.journal_group == group
    assert load_bench(ROOT / "bench.toml").service.journal_group is None


def test_an_unknown_journal_group_is_a_config_error_naming_file_and_key(tmp_path):
    path = write_bench(tmp_path, "no-such-group-here")
    with pytest.raises(ConfigError) as caught:
        load_bench(path)
    assert str(caught.value) == (
        f'{path}: service.journal_group: no group "no-such-group-here" on this machine'
    )
