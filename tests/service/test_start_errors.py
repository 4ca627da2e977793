"""A value the drivers refuse is reported by a running service, never a traceback at start."""

from __future__ import annotations

import dataclasses

import pytest

from interlock.config import load_configuration
from interlock.errors import StateError
from interlock.service.runtime import Service
from interlock.service.server import ServiceThread
from tests.service.conftest import OFF_VOLTS, write_bench


def test_a_relay_watchdog_the_board_refuses_is_reported_and_the_service_serves(
    short_dir, sim_bench
):
    """A bench built in code, past the file's bounds: the board's driver refuses its watchdog.

    The refusal is an InterlockError (InvalidArgument), so the service serves on and says
    why the bench did not connect; a ValueError once stopped it at start with a traceback.
    """
    loaded = load_configuration(write_bench(short_dir))
    service_settings = dataclasses.replace(loaded.bench.service, relay_watchdog=7.0)
    configuration = dataclasses.replace(
        loaded, bench=dataclasses.replace(loaded.bench, service=service_settings)
    )
    with ServiceThread(Service(configuration, resources=sim_bench.resources)) as thread:
        status = thread.service.status()
        assert status["state"] == "disconnected"
        assert status["service"]["connect_error"] == (
            "InvalidArgument: set_watchdog: must be 0.05..5 s, got 7.0"
        )
        with pytest.raises(StateError):
            thread.service.require_controller().arm("operator")
    truth = sim_bench.truth()
    assert all(net["max_voltage"] < OFF_VOLTS for net in truth["nets"].values())
    assert truth["contacts"] == []
