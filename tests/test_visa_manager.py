"""The drivers' VISA resource manager outlives anyone else in the process closing it."""

from __future__ import annotations

import pyvisa

from interlock.drivers.visa import resource_manager


def test_a_manager_closed_by_someone_else_is_opened_again():
    # pyvisa gives every caller in a process the same manager: a script or a test
    # closing "its own" closes the drivers' too.
    assert resource_manager("@py").session is not None
    pyvisa.ResourceManager("@py").close()
    manager = resource_manager("@py")
    assert manager.session is not None
