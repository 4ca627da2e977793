"""Argument checking and parsing of the simulator and the driver (no board needed)."""

from __future__ import annotations

import pytest

from interlock.drivers.relay_board import BoardState, RelayBoard, crc16, frame, unframe
from interlock.sim.relay_board import FirmwareImage, SimulatedRelayBoard


@pytest.mark.parametrize(
    ("watchdog", "ms"), [("500 ms", 500), ("0.25 s", 250), (0.1, 100), (2, 2000), ("5 s", 5000)]
)
def test_watchdog_with_unit_or_seconds(watchdog: object, ms: int) -> None:
    assert SimulatedRelayBoard(watchdog=watchdog).watchdog_ms == ms  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "watchdog", ["500", "500 V", "40 ms", "6 s", 0.0005, 0.1005, float("nan"), True, None, "-1 s"]
)
def test_bad_watchdog_is_rejected_not_clamped(watchdog: object) -> None:
    with pytest.raises(ValueError, match="watchdog"):
        SimulatedRelayBoard(watchdog=watchdog)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"serial": ""}, "serial"),
        ({"serial": "RB8 0001"}, "serial"),
        ({"serial": "x" * 33}, "serial"),
        ({"relays": 0}, "relays"),
        ({"relays": 17}, "relays"),
        ({"relays": True}, "relays"),
        ({"hardware_watchdog": 0}, "hardware_watchdog"),
    ],
)
def test_bad_board_arguments(kwargs: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        SimulatedRelayBoard(**kwargs)


def test_channels_are_one_based_and_checked() -> None:
    sim = SimulatedRelayBoard(relays=4)
    for channel in (0, 5, True, "1"):
        with pytest.raises(ValueError, match="channel"):
            sim.weld(channel)  # type: ignore[arg-type]
    assert sim.contacts() == [False] * 4


@pytest.mark.parametrize("kwargs", [{"timeout": 0}, {"timeout": float("inf")}, {"retries": -1}])
def test_bad_driver_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        RelayBoard("/dev/null", **kwargs)


def test_host_and_firmware_crc_agree() -> None:
    firmware = FirmwareImage()["rb_protocol"]
    for data in (b"", b"123456789", b"0001|SET FF", bytes(range(32, 127))):
        assert crc16(data) == firmware.crc16(data)
    assert frame(0x1A2B, "GET") == firmware.seal("1A2B|GET")
    assert unframe(frame(1, "GET").rstrip(b"\n")) == "0001|GET"
    assert unframe(b"0001|GET*0000") is None
    assert unframe(frame(1, "GET").rstrip(b"\n").lower()) is None


def test_state_parsing() -> None:
    state = BoardState.parse("R=5 C=4 T=WDT E=1 M=1 W=500 F=2")
    assert state.commanded == {1, 3} and state.contacts == {3} and state.mismatches == {1}
    assert state.trip_cause == "WDT" and state.estop_active
    assert state.watchdog == 0.5 and state.forbidden_count == 2
    assert not state.all_open
    for bad in ("", "R=5", "R=5 C=4 T=- E=2 M=0 W=500 F=0", "R=x C=0 T=- E=0 M=0 W=1 F=0",
                "R=5 R=5 C=4 T=- E=0 M=0 W=500 F=0", "R=10000 C=0 T=- E=0 M=0 W=1 F=0"):
        with pytest.raises(ValueError):
            BoardState.parse(bad)
