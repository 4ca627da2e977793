"""A bench whose motor net is fed by a supply of any dialect, through its twin."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from interlock.dialects import SupplyModel, dialects
from interlock.errors import InstrumentError
from tests.controller.support import edited_bench

# The default bench's own supply: its dialect is what bench.toml already holds.
DEFAULT = "keysight-e36300"
SUPPLY_DIALECTS = sorted(n for n, d in dialects().items() if d.kind == "supply")


def motor_output(dialect: str) -> tuple[SupplyModel, int]:
    """The dialect's first model and output that can feed the motor net (12 V, 600 mA)."""
    for model in dialects()[dialect].models.values():
        assert isinstance(model, SupplyModel)
        for number, out in sorted(model.channels.items()):
            if out.max_voltage >= 12 and out.max_current >= 0.6:
                return model, number
    raise AssertionError(f"no {dialect} model can feed the motor net")


def where_line(dialect: str) -> str:
    """bench.toml's line saying where an instrument of ``dialect`` is (the simulator
    serves it elsewhere): a socket resource, an ASRL resource or a serial port."""
    link = dialects()[dialect].link
    if link.kind == "visa-socket":
        return f'resource = "TCPIP::127.0.0.1::{link.port}::SOCKET"'
    if link.kind == "visa-serial":
        return 'resource = "ASRL/dev/ttyS0::INSTR"'
    return 'port = "/dev/ttyUSB0"'


def motor_edits(dialect: str) -> list[tuple[str, str]]:
    """bench.toml edits: an instrument ``motor_psu`` of ``dialect`` feeds MOTOR (from the
    first output that can)."""
    model, channel = motor_output(dialect)
    where = where_line(dialect)
    marker = "# --- relays: name -> board channel"
    stanza = (
        f'[instruments.motor_psu]\ndriver = "supply"\n{where}\n'
        f'identity = {{ maker = "{model.maker}", model = "{model.model}", serial = "00012345" }}'
    )
    return [
        (marker, f"{stanza}\n\n{marker}"),
        (
            'supply = { instrument = "psu", channel = 3 }',
            f'supply = {{ instrument = "motor_psu", channel = {channel} }}',
        ),
        # a dialect without channel lists takes more exchanges per pass
        ('monitor_period = "50 ms"', 'monitor_period = "400 ms"'),
    ]


def motor_bench(directory: Path, dialect: str) -> Path:
    if dialect == DEFAULT:
        return edited_bench(directory, {})
    return edited_bench(directory, {"bench.toml": motor_edits(dialect)})


def assert_coupled_never_armed(
    rig: Any, supply: str, channel: int, couple: Callable[[Any], None]
) -> None:
    """``couple(twin)`` sets ``supply``'s channels tracking at its front panel, on a bench
    connected without a fault: the arm is refused, naming ``channel``, and nothing is
    live."""
    assert rig.controller.fault_cause is None
    twin = rig.sim.instruments[supply]
    couple(twin)
    with pytest.raises(InstrumentError, match=f"{supply} CH{channel} tracks another channel"):
        rig.controller.arm("operator")
    assert rig.controller.state != "armed"
    assert not twin.live_outputs()
