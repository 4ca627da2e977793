"""Fixtures for the journal tests: real SQLite files in tmp dirs, a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

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
