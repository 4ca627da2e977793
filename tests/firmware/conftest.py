"""Fixtures for the relay board: the simulated board on a pty, the host driver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from interlock.drivers.relay_board import RelayBoard
from interlock.sim.relay_board import SimulatedRelayBoard


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
