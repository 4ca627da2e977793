"""The host driver against the real firmware on a pty: behaviour and timing.

Every board here is the unchanged firmware running in the simulator; the
host side is pyserial on the pty slave. Times are measured from the board's
ground truth (the contact listener), not from what the host believes.
"""

from __future__ import annotations

import threading
import time

import pytest

from interlock.drivers.relay_board import (
    BoardIdentity,
    BoardTripped,
    EstopActive,
    ForbiddenCombination,
    RelayBoard,
)
from interlock.errors import ConnectionLost, InstrumentTimeout, ProtocolError
from interlock.sim.relay_board import SimulatedRelayBoard

# Generous bounds: the simulated board is a CPython thread, and a loaded CI
# machine can starve it for tens of ms. benchmarks/firmware_watchdog.py
# reports the real figures (typically well under 1 ms and 3 ms).
ESTOP_BOUND_S = 0.1
WATCHDOG_SLACK_S = 0.15
# Exchanges the tests expect to fail (dropped replies) wait this long.
SHORT_TIMEOUT_S = 0.25


def events_of(driver: RelayBoard, kind: str, timeout: float = 1.0) -> list:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        event = driver.next_event(timeout=max(0.0, deadline - time.monotonic()))
        seen.append(event)
        if event.kind == kind:
            return seen
    raise AssertionError(f"no {kind} event; saw {[e.kind for e in seen]}")


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
def watch(sim: SimulatedRelayBoard) -> AllOpenWatch:
    return AllOpenWatch(sim)


def test_identify_and_power_up_state(sim: SimulatedRelayBoard, board: RelayBoard) -> None:
    assert board.identify() == BoardIdentity("interlock", "RB8", "RB8-000117", "1.1.0")
    assert board.relay_count == 8
    state = board.get_state()
    assert state.all_open and state.trip_cause is None and not state.estop_active
    assert state.watchdog == 0.5
    assert sim.contacts() == [False] * 8
    # The power-up BOOT was said before the host opened the port: flushed, not news.
    with pytest.raises(InstrumentTimeout):
        board.next_event(timeout=0.05)


def test_custom_serial_and_relay_count() -> None:
    with SimulatedRelayBoard(serial="RB4-000001", relays=4, watchdog=0.2) as sim:
        assert sim.port is not None
        with RelayBoard(sim.port) as driver:
            assert driver.identify() == BoardIdentity("interlock", "RB4", "RB4-000001", "1.1.0")
            assert driver.get_state().watchdog == 0.2
            with pytest.raises(ValueError, match=r"outside 1\.\.4"):
                driver.set_relays({5})


def test_set_relays_reaches_the_contacts(sim: SimulatedRelayBoard, board: RelayBoard) -> None:
    state = board.set_relays({1, 3})
    assert state.commanded == {1, 3}
    assert sim.commanded() == [True, False, True] + [False] * 5
    assert sim.contacts() == sim.commanded()
    assert board.set_relays(0b10).commanded == {2}
    assert board.get_state().contacts == {2}
    assert board.open_all().commanded == frozenset()


@pytest.mark.parametrize("bad", [{0}, {9}, {True}, -1, 256, True])
def test_bad_channels_are_rejected_before_sending(board: RelayBoard, bad: object) -> None:
    with pytest.raises(ValueError):
        board.set_relays(bad)  # type: ignore[arg-type]


def silence_until_open(board: RelayBoard, watch: AllOpenWatch, period: float) -> float:
    """Send one last heartbeat, fall silent, check when the relays opened."""
    sent = time.monotonic()
    board.heartbeat()
    received = time.monotonic()  # the board handled the frame between these two
    opened = watch.wait(timeout=period * 4 + 1)
    # The board counts whole ms: it may trip up to 1 ms early in real time.
    assert opened - sent >= period - 0.002, opened - sent
    assert opened - received <= period + WATCHDOG_SLACK_S, opened - received
    return opened


def test_watchdog_opens_all_relays_after_host_silence(
    sim: SimulatedRelayBoard, board: RelayBoard, watch: AllOpenWatch
) -> None:
    board.set_watchdog(0.1)
    board.set_relays({1, 2, 3})
    silence_until_open(board, watch, 0.1)
    assert sim.contacts() == [False] * 8
    events_of(board, "TRIP")
    state = board.get_state()
    assert state.trip_cause == "WDT" and state.all_open
    with pytest.raises(BoardTripped) as refused:
        board.set_relays({1})
    assert refused.value.cause == "WDT"
    assert board.reset_trip().all_open  # a reset never closes anything
    assert board.set_relays({1}).commanded == {1}


def test_a_host_that_says_goodbye_leaves_nothing_latched(
    sim: SimulatedRelayBoard, board: RelayBoard, watch: AllOpenWatch
) -> None:
    board.set_watchdog(0.1)
    board.set_relays({1, 2})
    assert not board.release().commanded  # its contacts follow within the settle time
    watch.wait(ESTOP_BOUND_S)
    time.sleep(0.1 * 5)  # five watchdog periods of silence
    state = board.get_state()  # a frame again: the watchdog is armed from here on
    assert state.trip_cause is None and state.all_open
    board.set_relays({1})
    silence_until_open(board, watch, 0.1)
    assert board.get_state().trip_cause == "WDT"


def test_default_watchdog_is_500_ms(board: RelayBoard, watch: AllOpenWatch) -> None:
    board.set_relays({4})
    silence_until_open(board, watch, 0.5)


def test_heartbeats_keep_the_relays_closed(sim: SimulatedRelayBoard, board: RelayBoard) -> None:
    board.set_watchdog(0.3)
    board.set_relays({1})
    deadline = time.monotonic() + 0.6
    while time.monotonic() < deadline:
        assert board.heartbeat().commanded == {1}
        time.sleep(0.03)
    assert sim.contacts()[0]


def test_estop_opens_all_relays_at_once(
    sim: SimulatedRelayBoard, board: RelayBoard, watch: AllOpenWatch
) -> None:
    board.set_relays(0xFF)
    pressed = time.monotonic()
    sim.press_estop()
    latency = watch.wait(timeout=1.0) - pressed
    assert latency <= ESTOP_BOUND_S, latency
    # All eight opened in one step: no intermediate state was ever seen.
    assert [sum(c) for c, _ in watch.changes] == [8, 0]
    trip = events_of(board, "TRIP")[-1]
    assert trip.detail == "ESTOP" and trip.state.estop_active


def test_estop_refuses_reset_and_close_until_released(
    sim: SimulatedRelayBoard, board: RelayBoard
) -> None:
    board.set_relays({2})
    sim.press_estop()
    events_of(board, "TRIP")
    with pytest.raises(EstopActive):
        board.reset_trip()
    with pytest.raises(EstopActive):
        board.set_relays({2})
    assert board.open_all().estop_active
    sim.release_estop()
    events_of(board, "ESTOP_CLEAR")
    with pytest.raises(BoardTripped):
        board.set_relays({2})
    state = board.reset_trip()
    assert state.trip_cause is None and state.all_open
    assert sim.contacts() == [False] * 8


def test_forbidden_combination_is_refused_and_nothing_moves(
    sim: SimulatedRelayBoard, board: RelayBoard
) -> None:
    assert board.load_forbidden([{1, 2}, 0b1000_0000]).forbidden_count == 2
    board.set_relays({1})
    with pytest.raises(ForbiddenCombination) as refused:
        board.set_relays({1, 2})
    assert refused.value.mask == 0b11
    with pytest.raises(ForbiddenCombination):
        board.set_relays({8})
    assert sim.commanded() == [True] + [False] * 7


def test_welded_contact_is_reported_and_counted(
    sim: SimulatedRelayBoard, board: RelayBoard
) -> None:
    board.load_forbidden([{2, 3}])
    sim.weld(2)
    mismatch = events_of(board, "MISMATCH")[-1]
    assert mismatch.state.mismatches == {2}
    state = board.get_state()
    assert state.mismatches == {2} and state.contacts == {2} and state.commanded == frozenset()
    with pytest.raises(ForbiddenCombination):
        board.set_relays({3})
    sim.unweld(2)
    assert events_of(board, "MISMATCH")[-1].state.mismatches == frozenset()


def test_lost_reply_to_set_is_resolved_by_reading_state(
    sim: SimulatedRelayBoard,
) -> None:
    assert sim.port is not None
    with RelayBoard(sim.port, timeout=SHORT_TIMEOUT_S) as driver:
        changes: list[list[bool]] = []
        sim.add_listener(lambda contacts, at: changes.append(contacts))
        sim.drop_replies(1)
        assert driver.set_relays({5}).commanded == {5}
        # Executed exactly once: one change, not a second SET.
        assert changes == [[False] * 4 + [True] + [False] * 3]
        sim.garble_replies(1)
        assert driver.set_relays({6}).commanded == {6}


def test_lost_reply_to_a_refused_set_is_an_error_not_a_resend(
    sim: SimulatedRelayBoard,
) -> None:
    assert sim.port is not None
    with RelayBoard(sim.port, timeout=SHORT_TIMEOUT_S) as driver:
        driver.load_forbidden([{1}])
        sim.drop_replies(1)
        with pytest.raises(InstrumentTimeout, match="not applied"):
            driver.set_relays({1})
        sim.garble_replies(1)
        with pytest.raises(ProtocolError, match="not applied"):
            driver.set_relays({1})
        assert sim.commanded() == [False] * 8


def test_damaged_set_is_not_resent(sim: SimulatedRelayBoard) -> None:
    assert sim.port is not None
    with RelayBoard(sim.port, timeout=SHORT_TIMEOUT_S) as driver:
        changes: list[list[bool]] = []
        sim.add_listener(lambda contacts, at: changes.append(contacts))
        sim.garble_requests(1)
        with pytest.raises(ProtocolError, match=r"NAK CRC.*not applied"):
            driver.set_relays({7})
        assert changes == [] and sim.commanded() == [False] * 8
        sim.garble_requests(1)
        assert driver.get_state().all_open  # read-only: asked again, answered


def test_lost_reply_to_reset_is_resolved_by_reading_state(sim: SimulatedRelayBoard) -> None:
    assert sim.port is not None
    with RelayBoard(sim.port, timeout=SHORT_TIMEOUT_S) as driver:
        sim.press_estop()
        sim.release_estop()
        events_of(driver, "ESTOP_CLEAR")
        sim.drop_replies(1)
        assert driver.reset_trip().trip_cause is None


def test_read_only_commands_are_retried(sim: SimulatedRelayBoard) -> None:
    assert sim.port is not None
    with RelayBoard(sim.port, timeout=SHORT_TIMEOUT_S, retries=2) as driver:
        sim.drop_replies(1)
        sim.garble_replies(1)
        assert driver.get_state().all_open
        sim.drop_replies(3)
        with pytest.raises(InstrumentTimeout):
            driver.heartbeat()


def test_events_are_never_taken_for_replies(sim: SimulatedRelayBoard, board: RelayBoard) -> None:
    errors: list[BaseException] = []
    stop = threading.Event()

    def poll() -> None:
        try:
            while not stop.is_set():
                board.get_state()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=poll) for _ in range(3)]
    for thread in threads:
        thread.start()
    kinds = []
    try:
        for _ in range(5):
            sim.weld(1)
            kinds += [e.kind for e in events_of(board, "MISMATCH")]
            sim.unweld(1)
            kinds += [e.kind for e in events_of(board, "MISMATCH")]
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors, errors
    assert kinds.count("MISMATCH") == 10, kinds


def test_not_open_and_missing_port_are_connection_lost(tmp_path) -> None:
    driver = RelayBoard(str(tmp_path / "no-such-tty"))
    with pytest.raises(ConnectionLost, match="not open"):
        driver.get_state()
    with pytest.raises(ConnectionLost, match="cannot open"):
        driver.open()


def test_board_powered_off_under_the_host(sim: SimulatedRelayBoard, board: RelayBoard) -> None:
    sim.stop()
    with pytest.raises((ConnectionLost, InstrumentTimeout)):
        board.get_state()


def test_a_second_host_cannot_open_the_port(sim: SimulatedRelayBoard, board: RelayBoard) -> None:
    assert sim.port is not None
    with pytest.raises(ConnectionLost):
        RelayBoard(sim.port).open()


def test_power_cycle_comes_back_safe(sim: SimulatedRelayBoard, board: RelayBoard) -> None:
    board.load_forbidden([{1, 2}])
    board.set_watchdog(0.2)
    board.set_relays({1, 3})
    sim.power_cycle()
    boot = events_of(board, "BOOT")[-1]
    assert boot.number == 0 and boot.state.all_open
    state = board.get_state()
    assert state.all_open and state.trip_cause is None
    assert state.forbidden_count == 0 and state.watchdog == 0.5
    assert sim.contacts() == [False] * 8 and sim.boots == 2


def test_firmware_crash_opens_relays_and_reboots() -> None:
    with SimulatedRelayBoard(hardware_watchdog=0.5) as sim:
        assert sim.port is not None
        watch = AllOpenWatch(sim)
        with RelayBoard(sim.port, timeout=0.1, retries=0) as driver:
            driver.set_relays({2, 4})
            crashed = time.monotonic()
            sim.crash_firmware()
            # main.py's finally opens the relays before the exception goes on.
            assert watch.wait(timeout=1.0) - crashed < ESTOP_BOUND_S
            with pytest.raises(InstrumentTimeout):
                driver.get_state()  # the board is down until the MCU watchdog fires
            events_of(driver, "BOOT", timeout=2.0)
            driver.timeout, driver.retries = 0.5, 2
            assert driver.get_state().all_open
            assert sim.boots == 2
