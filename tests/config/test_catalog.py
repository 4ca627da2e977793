"""The catalogue's relay board models agree with the firmware they run.

The configuration and the host driver take the board's limits from the
catalogue (neither imports the firmware, which is MicroPython); the firmware
has its own constants. They must be the same numbers.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from interlock.catalog import RELAY_BOARDS
from interlock.drivers import relay_board

ROOT = Path(__file__).resolve().parents[2]


def test_the_relay_boards_watchdog_range_is_the_firmwares():
    # The configuration and the driver take it from the catalogue; the firmware has its own.
    spec = importlib.util.spec_from_file_location(
        "rb_core", ROOT / "interlock" / "firmware" / "rb_core.py"
    )
    firmware = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(firmware)
    for model in RELAY_BOARDS.values():
        assert round(model.watchdog_min * 1000) == firmware.WATCHDOG_MIN_MS
        assert round(model.watchdog_max * 1000) == firmware.WATCHDOG_MAX_MS
        assert model.watchdog_resolution == 0.001  # the firmware counts whole milliseconds
        assert 1 <= model.relays <= firmware.MAX_RELAYS
        assert model.forbidden_pairs == firmware.MAX_FORBIDDEN
    assert (relay_board.WATCHDOG_MIN_S, relay_board.WATCHDOG_MAX_S) == (
        firmware.WATCHDOG_MIN_MS / 1000,
        firmware.WATCHDOG_MAX_MS / 1000,
    )


def test_the_simulated_board_takes_its_watchdog_range_from_the_catalogue(monkeypatch):
    """One definition on the host side: the simulator checks against the catalogue too."""
    from interlock import catalog
    from interlock.sim.relay_board import SimulatedRelayBoard

    edges = (catalog.RELAY_WATCHDOG_MIN, catalog.RELAY_WATCHDOG_MAX)
    for seconds in edges:
        assert SimulatedRelayBoard(watchdog=seconds).watchdog_ms == round(seconds * 1000)
    for seconds in (edges[0] - 0.001, edges[1] + 0.001):
        with pytest.raises(ValueError, match="watchdog"):
            SimulatedRelayBoard(watchdog=seconds)
    monkeypatch.setattr(catalog, "RELAY_WATCHDOG_MAX", 1.0)
    with pytest.raises(ValueError, match=r"50 ms\.\.1 s"):
        SimulatedRelayBoard(watchdog=2.0)
