"""What the relay boards tell the ground truth: coils, contacts and their firmware's word.

The contacts drive the electrical model (:class:`~interlock.sim.bench.SimulatedBench`
ties them to it); this module records, for the history and the snapshot,
what the firmware drives each coil to, what the firmware announces on its
line (BOOT, TRIP WDT / ESTOP, MISMATCH, ESTOP_CLEAR) and what it last
reported of itself (its latched cause, its watchdog period), with when the
host was last heard. All of it is read from the outside of the firmware, as
a logic analyser on the board would.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from interlock.sim.relay_board import Listener, SimulatedRelayBoard
from interlock.sim.truth import GroundTruth, Stamp


def stamp_of(monotonic: float) -> Stamp:
    """A stamp for a moment on this process's monotonic clock, with its wall-clock time."""
    return Stamp(monotonic, time.time() - (time.monotonic() - monotonic))


def board_channels(relays: Mapping[str, Any], board: str) -> dict[int, str]:
    """Channel -> relay name, for the relays of ``bench.toml`` on ``board``."""
    return {relay.channel: name for name, relay in relays.items() if relay.board == board}


def watch_board(
    truth: GroundTruth, name: str, board: SimulatedRelayBoard, relays: Mapping[str, Any]
) -> None:
    """Record ``board``'s coil changes and firmware events in ``truth`` from now on."""
    board.add_coil_listener(_coil_listener(truth, board_channels(relays, name)))

    def on_event(kind: str, detail: str, monotonic: float) -> None:
        truth.change(
            "board",
            f"{name} {kind} {detail}".rstrip(),
            at=stamp_of(monotonic),
            board=name,
            event=kind,
            cause=detail or None,
        )

    board.add_event_listener(on_event)


def _coil_listener(truth: GroundTruth, channels: dict[int, str]) -> Listener:
    coils: dict[int, bool] = {}

    def listener(states: list[bool], monotonic: float) -> None:
        stamp = stamp_of(monotonic)
        for channel, relay in sorted(channels.items()):
            if channel <= len(states) and coils.get(channel, False) != states[channel - 1]:
                coils[channel] = states[channel - 1]
                word = "energised" if states[channel - 1] else "released"
                truth.change(
                    "relay-coil",
                    f"{relay} coil {word}",
                    at=stamp,
                    relay=relay,
                    channel=channel,
                    closed=states[channel - 1],
                )

    return listener


def relay_states(
    relays: Mapping[str, Any], boards: Mapping[str, SimulatedRelayBoard]
) -> dict[str, dict[str, Any]]:
    """Each relay's coil (as the firmware drives it) and contact (as it is) now."""
    states = {}
    for name, relay in relays.items():
        board = boards.get(relay.board)
        if board is None or not 1 <= relay.channel <= board.relays:
            continue
        states[name] = {
            "board": relay.board,
            "channel": relay.channel,
            "coil": board.commanded()[relay.channel - 1],
            "contact": board.contacts()[relay.channel - 1],
        }
    return states


def board_state(board: SimulatedRelayBoard) -> dict[str, Any]:
    """What a board's firmware last reported of itself, and when it last heard its host."""
    reported = board.reported
    cause = reported.get("T")
    heard = board.host_last_heard
    try:
        watchdog_ms = int(reported.get("W", board.watchdog_ms))
    except ValueError:
        watchdog_ms = board.watchdog_ms
    return {
        "serial": board.serial,
        "trip": None if cause in (None, "-") else cause,
        "estop": board.estop_pressed,
        "watchdog_ms": watchdog_ms,
        "host_last_heard": stamp_of(heard).as_dict() if heard is not None else None,
        "boots": board.boots,
        "coils": board.commanded(),
        "contacts": board.contacts(),
    }
