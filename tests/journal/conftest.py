"""Fixtures for the journal tests: real SQLite files in tmp dirs, a fake clock."""

from __future__ import annotations

import contextlib
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from journal_synthetic import write_config_files, write_synthetic_run

from interlock.journal import Journal


class FakeClock:
    """Deterministic wall and monotonic time; ``advance`` moves both."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 3, 14, 9, 30, 0, tzinfo=UTC)
        self.mono = 1000.0

    def wall(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite"


@pytest.fixture
def journal(journal_path: Path, clock: FakeClock):
    with Journal(journal_path, bench="sim-bench", clock=clock) as j:
        yield j


@pytest.fixture(scope="session")
def synthetic_template(tmp_path_factory) -> Path:
    """A directory with config files and a journal holding the synthetic run.

    Written once: every entry is an fsync, and tests that only read it can
    share one copy of the result.
    """
    directory = tmp_path_factory.mktemp("synthetic")
    clock = FakeClock()
    # Relative config paths keep the golden text free of the tmp dir.
    with contextlib.chdir(directory):
        files = write_config_files(directory)
        with Journal("journal.sqlite", bench="sim-bench", clock=clock) as journal:
            write_synthetic_run(journal, clock, files)
    return directory


@pytest.fixture
def run_journal(synthetic_template, tmp_path, monkeypatch) -> Path:
    """A private copy of the synthetic run's journal; the cwd is its directory."""
    directory = tmp_path / "bench"
    shutil.copytree(synthetic_template, directory)
    monkeypatch.chdir(directory)
    return directory / "journal.sqlite"
