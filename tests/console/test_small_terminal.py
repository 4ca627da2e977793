"""The console on a small terminal, and its alert of a stop not delivered (fixed sources).

What is asserted is what a terminal shows: the text of the rendered screen.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator

from interlock.console import ConsoleApp
from interlock.console.source import Disconnected, Status, Update
from interlock.errors import ServiceUnavailable
from tests.console import fixed_source

ADVICE = "Use the bench's hardware E-stop."


def screen_text(app: ConsoleApp) -> str:
    """Every character on the screen, as rows of text joined by spaces (words unwrapped)."""
    svg = app.export_screenshot()
    text = html.unescape(re.sub(r"<[^>]+>", " ", svg[svg.index("<g") :]))
    return re.sub(r"\s+", " ", text)


async def settle(pilot, condition, what: str) -> None:
    for _ in range(200):
        if condition():
            return
        await pilot.pause(0.01)
    raise AssertionError(f"not seen: {what}")


def test_every_net_and_relay_is_in_view_at_100_by_30():
    app = ConsoleApp(
        fixed_source.FixedSource(fixed_source.live(), fixed_source.JOURNAL), journal_period=None
    )

    async def scenario() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot, lambda: app.state == "live", "live")
            await pilot.pause()
            shown = screen_text(app)
            for relay in (f"K{i}" for i in range(1, 9)):
                assert f" {relay} " in shown, relay
            for net in ("VLOGIC", "VBUS", "MOTOR", "ID"):
                assert re.search(rf" {net} +(psu|sense)", shown), net
            assert "EMERGENCY STOP" in shown and "BENCH sim-bench-01" in shown

    asyncio.run(scenario())


class StopNotDelivered(fixed_source.FixedSource):
    """Loses the service, stops go nowhere until ``deliver``; comes back on ``reconnect``."""

    def __init__(self) -> None:
        super().__init__(fixed_source.safe(), fixed_source.JOURNAL[:1])
        self.deliver = False
        self.back = asyncio.Event()

    async def follow(self) -> AsyncIterator[Update]:
        yield Status(self.statuses[0])
        yield Disconnected("no service answers on the socket")
        await self.back.wait()
        yield Status(self.statuses[0])
        await asyncio.Event().wait()

    async def estop(self):
        if not self.deliver:
            raise ServiceUnavailable("no service answers on the socket")
        return await super().estop()


def test_a_stop_not_delivered_is_said_in_full_until_dismissed_or_delivered():
    source = StopNotDelivered()
    app = ConsoleApp(source, journal_period=None)

    async def scenario() -> None:
        async with app.run_test(size=(80, 30)) as pilot:
            await settle(pilot, lambda: not app.connected and app.status, "disconnected")
            await pilot.press("space")
            await settle(pilot, lambda: app.estop_alert, "the alert")
            await pilot.pause()
            shown = screen_text(app)
            # Wrapped at 80 columns, not cut: the advice is there in full.
            assert "EMERGENCY STOP NOT DELIVERED" in shown and ADVICE in shown
            # The service comes back: the alert stays, since the stop never got through.
            source.back.set()
            await settle(pilot, lambda: app.connected, "reconnected")
            await pilot.pause()
            assert ADVICE in screen_text(app)
            await pilot.press("x")  # the operator has read it
            await pilot.pause()
            assert app.estop_alert is None and ADVICE not in screen_text(app)
            # Not delivered again, then delivered: the alert goes with the stop that landed.
            source.deliver = False
            await pilot.press("space")
            await settle(pilot, lambda: app.estop_alert, "the alert again")
            source.deliver = True
            await pilot.press("space")
            await settle(pilot, lambda: "emergency stop done" in app.message, "the stop")
            await pilot.pause()
            assert app.estop_alert is None and ADVICE not in screen_text(app)
            assert source.sent == ["estop"]

    asyncio.run(scenario())
