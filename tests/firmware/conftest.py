"""Fixtures for the relay board: the simulated board on a pty, the host driver."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from interlock.drivers.relay_board import RelayBoard
from interlock.sim.relay_board import SimulatedRelayBoard


class AllOpenWatch:
    """Records, from the board's ground truth, when all contacts were last seen open."""

    def __init__(self, sim: SimulatedRelayBoard) -> None:
        self._opened = threading.Event()
        self.opened_at: float | None = None
        self.changes: list[tuple[list[bool], float]] = []
        sim.add_listener(self._on_change)

    def _on_change(self, contacts: list[bool], at: float) -> None:
        self.changes.append((contacts, at))
        if not any(contacts):
            self.opened_at = at
            self._opened.set()
        else:
            self.opened_at = None
            self._opened.clear()

    def wait(self, timeout: float) -> float:
        """Wait until all contacts are open; return the time it happened."""
        assert self._opened.wait(timeout), f"relays still closed after {timeout} s"
        assert self.opened_at is not None
        return self.opened_at


@pytest.fixture
def sim() -> Iterator[SimulatedRelayBoard]:
    board = SimulatedRelayBoard()
    board.start()
    yield board
    board.stop()


@pytest.fixture
def board(sim: SimulatedRelayBoard) -> Iterator[RelayBoard]:
    assert sim.port is not None
    driver = RelayBoard(sim.port, timeout=0.5)
    driver.open()
    driver.identify()
    yield driver
    driver.close()


@pytest.fixture
def watch(sim: SimulatedRelayBoard) -> AllOpenWatch:
    return AllOpenWatch(sim)
