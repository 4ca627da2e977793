"""The console against a real service on the simulated bench (Textual pilot)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from interlock.config import load_bench
from interlock.console import ConsoleApp, ServiceSource
from interlock.console.app import JOURNAL_PERIOD
from interlock.console.screens import AcknowledgeFaultScreen, ArmFlightScreen
from interlock.console.source import STATUS_PERIOD
from tests.service.conftest import Served, assert_bench_safe, bring_up

SIZE = (120, 40)
# Slack over one status period: a pilot pause, the screen's redraw, a busy test machine.
MARGIN = 0.5


def console(served: Served, role: str) -> ConsoleApp:
    return ConsoleApp(ServiceSource(load_bench(served.bench_path), role))


async def until(pilot, condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``condition()`` held, pausing the pilot; fails after ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            app = pilot.app
            pytest.fail(
                f"not within {timeout:g} s: {what} "
                f"(console: state {app.state}, fault {(app.status or {}).get('fault')!r}, "
                f"problem {app.problem!r}, message {app.message!r})"
            )
        await pilot.pause(0.02)
    return time.monotonic() - start


def text_of(app: ConsoleApp, selector: str) -> str:
    return str(app.query_one(selector).render())


def test_estop_from_the_console_makes_the_bench_safe(served):
    operator = served.client("operator")
    script = served.client("script")
    operator.arm()
    lease = script.lease().acquire()
    bring_up(script, "VLOGIC", 5.0, 0.3)
    assert served.truth()["nets"]["VLOGIC"]["voltage"] > 4.5

    async def scenario() -> None:
        app = console(served, "viewer")  # anyone may stop
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.state == "live", 5, "the console sees live")
            await until(pilot, lambda: app.history.voltage("VLOGIC"), 2, "a VLOGIC sample")
            await pilot.press("space")
            await until(pilot, lambda: app.state == "fault", 5, "the console sees the stop")
            assert "emergency stop done" in app.message
            assert "estop" in app.status["fault"]

    asyncio.run(scenario())
    lease.release()
    assert served.controller.state == "fault"
    assert_bench_safe(served.truth())


def test_estop_key_works_over_a_dialog(served):
    async def scenario() -> None:
        app = console(served, "operator")
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.state == "safe", 5, "connected")
            served.service.simulator.inject("estop")  # the hardware E-stop
            await until(pilot, lambda: app.state == "fault", 3, "the fault")
            served.service.simulator.clear("estop")
            await pilot.press("r")  # the acknowledgement dialog is open
            assert isinstance(app.screen, AcknowledgeFaultScreen)
            await pilot.press("r", "a", "d")  # no second dialog, nothing sent
            assert len(app.screen_stack) == 2
            await pilot.press("space")
            await until(pilot, lambda: "emergency stop done" in app.message, 3, "stopped")
            # Statuses and journal reads go on arriving behind the open dialog.
            await pilot.pause(2 * JOURNAL_PERIOD)
            assert isinstance(app.screen, AcknowledgeFaultScreen)
            assert app.is_running

    asyncio.run(scenario())
    assert_bench_safe(served.truth())


def test_a_fault_injected_in_the_simulator_shows_within_one_refresh(served):
    operator = served.client("operator")
    script = served.client("script")
    operator.arm()
    lease = script.lease().acquire()
    bring_up(script, "VLOGIC", 5.0, 0.3)

    async def scenario() -> None:
        app = console(served, "operator")
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.state == "live", 5, "the console sees live")
            served.service.simulator.inject("short:VLOGIC")
            # The controller's own reaction (monitor, safe state) is not the console's to time.
            start = time.monotonic()
            while served.controller.state != "fault":
                assert time.monotonic() - start < 5, "the controller did not trip"
                await asyncio.sleep(0.005)
            took = await until(
                pilot,
                lambda: app.state == "fault" and app.status["fault"],
                STATUS_PERIOD + MARGIN,
                "the fault and its cause shown",
            )
            assert took <= STATUS_PERIOD + MARGIN
            assert "VLOGIC" in app.status["fault"]
            assert "FAULT LATCHED" in text_of(app, "#summary")
            assert "VLOGIC" in text_of(app, "#summary")
            # Only the operator may reset, and the reason of the others is the state's.
            assert not app.query_one("#reset").disabled
            assert app.query_one("#arm").disabled
            await until(
                pilot,
                lambda: any(line.alarm == "fault" for line in app.journal),
                2,
                "the fault in the journal tail",
            )

    asyncio.run(scenario())
    lease.release()
    assert_bench_safe(served.truth())


def test_a_viewer_cannot_arm_and_is_told_why(served):
    async def scenario() -> None:
        app = console(served, "viewer")
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.state == "safe", 5, "connected")
            assert app.query_one("#arm").disabled
            assert "needs the operator role" in text_of(app, "#arm-why")
            await pilot.press("a")
            await pilot.pause(0.3)
            assert "arm: not sent: needs the operator role (this console is viewer)" in app.message
            assert app.state == "safe"

    asyncio.run(scenario())
    assert served.controller.state == "safe"


def test_an_operator_arms_disarms_and_resets(served):
    async def scenario() -> None:
        app = console(served, "operator")
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.state == "safe", 5, "connected")
            await pilot.press("a")
            await until(pilot, lambda: app.state == "armed", 10, "armed")
            assert served.controller.state == "armed"
            await pilot.press("d")
            await until(pilot, lambda: app.state == "safe", 5, "disarmed")
            await pilot.press("space")
            await until(pilot, lambda: app.state == "fault", 5, "stopped")
            await pilot.press("r", "y")
            await until(pilot, lambda: app.state == "safe", 10, "reset")

    asyncio.run(scenario())
    assert served.controller.state == "safe"
    assert_bench_safe(served.truth())


def test_the_console_shows_a_lost_service_and_reconnects(serve_bench):
    first = serve_bench()

    async def scenario() -> None:
        app = console(first, "viewer")
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.state == "safe", 5, "connected")
            await asyncio.to_thread(first.stop)
            await until(pilot, lambda: not app.connected, 3, "shown as disconnected")
            assert "DISCONNECTED" in text_of(app, "#connection")
            assert app.state is None
            # Anyone may still try to stop, and is told it did not get through.
            await pilot.press("space")
            await until(pilot, lambda: "NOT DELIVERED" in app.message, 3, "stop not delivered")
            again = await asyncio.to_thread(serve_bench)  # same socket, same tokens
            await until(pilot, lambda: app.connected, 5, "reconnected")
            assert app.state == "safe"
            assert again.controller.state == "safe"

    asyncio.run(scenario())


def test_arming_a_flight_bench_takes_its_name_typed(flight):
    async def scenario() -> None:
        app = console(flight, "operator")
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.state == "safe", 5, "connected")
            assert "FLIGHT HARDWARE" in text_of(app, "#banner")
            await pilot.press("a")
            assert isinstance(app.screen, ArmFlightScreen)
            await pilot.press(*"fm-bench-2")  # a typo: the arm button stays off
            assert app.screen.query_one("#confirm-arm").disabled
            await pilot.press("enter")
            assert isinstance(app.screen, ArmFlightScreen)
            assert flight.controller.state == "safe", flight.controller.fault_cause
            await pilot.press("backspace", "0", "2", "enter")
            await until(pilot, lambda: app.state == "armed", 10, "armed")

    asyncio.run(scenario())
    assert flight.controller.state == "armed"
    assert_bench_safe(flight.truth())
