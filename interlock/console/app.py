"""The operator console: a Textual app over a :class:`~interlock.console.source.Source`.

Keys: ``space`` emergency stop (everywhere, also over a dialog), ``a`` arm,
``d`` disarm, ``r`` acknowledge and reset a latched fault, ``x`` dismiss the
alert of a stop not delivered, ``q`` quit.

The console shows and asks; the service decides. An action the console's
role may not take, or that makes no sense in the bench's state, is not
sent: its reason is shown instead. The emergency stop is always sent, in
every state, connected or not (a stale connection is not a dead service);
if it cannot be delivered the console says so, loudly, in an alert that
stays (through reconnections) until the operator dismisses it or a stop
gets through.

On a short terminal (under 36 lines) the console is compact: every net and
every relay stays in view; the reasons beside the actions give way (an
action refused is still explained when its key is pressed).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.widgets import Button, Footer, Static

from interlock.client._common import RemoteBench
from interlock.config import Bench
from interlock.errors import InterlockError

from .model import History, JournalLine, availability
from .screens import AcknowledgeFaultScreen, ArmFlightScreen
from .source import Disconnected, Event, Source, Status
from .widgets import Banner, ConnectionLine, JournalPanel, NetsPanel, RelaysPanel, Summary

log = logging.getLogger(__name__)

#: Below this many lines the console is compact (see the module's docstring).
COMPACT_BELOW = 36

#: Seconds between journal tail reads (the status itself is pushed by the service).
JOURNAL_PERIOD = 0.5
JOURNAL_LINES = 10

ACTIONS = ("arm", "disarm", "reset")
LABELS = {"arm": "Arm (a)", "disarm": "Disarm (d)", "reset": "Ack + reset fault (r)"}


class ConsoleApp(App[None]):
    CSS_PATH = "console.tcss"
    TITLE = "interlock console"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        # priority: reaches the app before any focused widget or dialog can take the key.
        Binding("space", "estop", "EMERGENCY STOP", priority=True),
        Binding("a", "arm", "Arm"),
        Binding("d", "disarm", "Disarm"),
        Binding("r", "reset", "Ack + reset fault"),
        Binding("x", "dismiss_alert", "Dismiss stop alert"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, source: Source, *, journal_period: float | None = JOURNAL_PERIOD) -> None:
        super().__init__()
        self.source = source
        self.bench = source.bench
        self.role = source.role
        self.status: dict[str, Any] | None = None
        self.problem: str | None = "not connected yet"  # None while connected
        self.history = History()
        self.journal: list[JournalLine] = []
        self.message = ""
        self.estop_alert: str | None = None  # a stop not delivered, until dismissed or delivered
        self.events: list[dict[str, Any]] = []  # the stream's events, newest last (bounded)
        self._journal_period = journal_period
        self._journal_busy = False

    # -- layout ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Banner(id="banner")
        yield ConnectionLine(id="connection")
        yield Static("", id="estop-alert")
        with Horizontal(id="top"):
            yield Summary(id="summary")
            with Vertical(id="estop-box"):
                yield Button("EMERGENCY STOP\n(space)", id="estop", variant="error")
        yield NetsPanel(id="nets")
        with Horizontal(id="middle"):
            yield RelaysPanel(id="relays")
            with VerticalScroll(id="journal-box"):
                yield JournalPanel(id="journal")
        with Horizontal(id="actions"):
            for action in ACTIONS:
                with Vertical(classes="action"):
                    yield Button(LABELS[action], id=action, disabled=True)
                    yield Static("", id=f"{action}-why", classes="why")
        yield Static("", id="message")
        yield Footer()

    def on_mount(self) -> None:
        # The screen the panels live on; self.query_one() would search a dialog while one is open.
        self.main = self.screen
        self.set_class(self.size.height < COMPACT_BELOW, "-compact")
        self.main.query_one("#relays").border_title = "relays"
        self.main.query_one("#journal-box").border_title = "journal (newest last)"
        self.main.query_one("#nets").border_title = "nets"
        self._render_all()
        self.follow()
        if self._journal_period is not None:
            self.set_interval(self._journal_period, self.refresh_journal)
        self.call_later(self.refresh_journal)

    def on_resize(self, event: events.Resize) -> None:
        compact = event.size.height < COMPACT_BELOW
        if compact != self.has_class("-compact"):
            self.set_class(compact, "-compact")
            if hasattr(self, "main"):  # a resize comes before the panels are up, too
                self._render_all()

    # -- data --------------------------------------------------------------------------

    @work(group="follow", exit_on_error=False)
    async def follow(self) -> None:
        async for update in self.source.follow():
            try:
                self.apply(update)
            except Exception:  # a status this console cannot show must not end the following
                log.exception("cannot show %r", update)

    def apply(self, update: Status | Event | Disconnected) -> None:
        if isinstance(update, Status):
            self.status = {**(self.status or {}), **update.status}
            self.problem = None
            self.history.add(update.status)
        elif isinstance(update, Event):
            event = update.event
            self.events = [*self.events[-99:], event]
            if self.status is not None:
                # Shown now; the whole status follows (the source asks for it on these events).
                if event.get("event") == "state" and event.get("dest"):
                    self.status["state"] = event["dest"]
                elif event.get("event") == "fault" and not self.status.get("fault"):
                    self.status["fault"] = f"{event.get('cause')}: {event.get('detail')}"
            if event.get("event") in ("fault", "refused"):
                self.call_later(self.refresh_journal)
        else:
            self.problem = update.reason
        self._render_all()

    async def refresh_journal(self) -> None:
        if self._journal_busy:
            return
        try:
            panel = self.main.query_one(JournalPanel)
        except NoMatches:
            return  # a timer that fired while the console closes
        self._journal_busy = True
        try:
            lines = await self.source.journal_tail(JOURNAL_LINES)
        except InterlockError as error:
            lines, problem = self.journal, f"{type(error).__name__}: {error}"
        else:
            problem = None
        finally:
            self._journal_busy = False
        if not panel.is_attached:
            return  # the console closed while the journal was read
        self.journal = lines
        panel.show(lines, problem)
        self.main.query_one("#journal-box", VerticalScroll).scroll_end(animate=False)

    # -- rendering ----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.problem is None

    @property
    def state(self) -> str | None:
        return self.status.get("state") if self.status and self.connected else None

    def _render_all(self) -> None:
        status = self.status
        connected = self.connected
        self.main.query_one(Banner).show(self.bench, self.state, connected)
        # What was last seen stays on screen while disconnected, dimmed: it may be stale.
        self.set_class(not connected and status is not None, "-stale")
        you = (status or {}).get("you") or {}
        self.main.query_one(ConnectionLine).show(
            _shown_socket(self.bench),
            you.get("role", self.role),
            you.get("who"),
            self.problem,
            seen=status is not None,
        )
        self.main.query_one(Summary).show(status, stale=not connected)
        self.main.query_one(Summary).set_class(bool(status and status.get("fault")), "-fault")
        if status is not None:
            self.main.query_one(NetsPanel).show(status, self.history)
            self.main.query_one(RelaysPanel).show(
                self.bench, status, heading=not self.has_class("-compact")
            )
        for action in ACTIONS:
            allowed = availability(action, self.role, self.state, connected)
            self.main.query_one(f"#{action}", Button).disabled = not allowed.allowed
            self.main.query_one(f"#{action}-why", Static).update(allowed.reason)

    def say(self, text: str, style: str = "") -> None:
        self.message = text
        self.main.query_one("#message", Static).update(Text(text, style=style))

    # -- actions ------------------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "estop":
            self.action_estop()
        elif event.button.id in ACTIONS:
            getattr(self, f"action_{event.button.id}")()

    def action_estop(self) -> None:
        self.say("EMERGENCY STOP sent...", "bold red")
        self.send_estop()

    @work(group="estop", exit_on_error=False)
    async def send_estop(self) -> None:
        try:
            status = await self.source.estop()
        except InterlockError as error:
            log.error("emergency stop not delivered: %s", error)
            self.show_alert(
                f"EMERGENCY STOP NOT DELIVERED ({type(error).__name__}: {error}). "
                "Use the bench's hardware E-stop. (x: dismiss this alert)"
            )
            self.say("EMERGENCY STOP NOT DELIVERED: see the alert above", "bold white on red")
            return
        self.show_alert(None)
        self.apply(Status(status))
        self.say(f"emergency stop done: state {status.get('state')}", "bold red")

    def show_alert(self, text: str | None) -> None:
        """The stop-not-delivered alert: wrapped in full, kept until dismissed or a stop lands."""
        self.estop_alert = text
        alert = self.main.query_one("#estop-alert", Static)
        alert.update(Text(text or ""))
        alert.set_class(text is not None, "-shown")

    def action_dismiss_alert(self) -> None:
        if self.estop_alert is not None:
            self.show_alert(None)
            self.say("stop alert dismissed")

    def _refused_here(self, action: str) -> bool:
        if self.screen is not self.main:
            return True  # a dialog is open: answer it first (only the stop goes over it)
        allowed = availability(action, self.role, self.state, self.connected)
        if not allowed.allowed:
            self.say(f"{action}: not sent: {allowed.reason}", "bold yellow")
        return not allowed.allowed

    def action_arm(self) -> None:
        if self._refused_here("arm"):
            return
        if self.bench.environment == "flight":
            self.push_screen(ArmFlightScreen(self.bench.name), self._arm_confirmed)
        else:
            self.send("arm", None)

    def _arm_confirmed(self, name: str | None) -> None:
        if name is None:
            self.say("arm cancelled")
        else:
            self.send("arm", name)

    def action_disarm(self) -> None:
        if not self._refused_here("disarm"):
            self.send("disarm")

    def action_reset(self) -> None:
        if self._refused_here("reset"):
            return
        cause = (self.status or {}).get("fault") or "(cause unknown)"
        self.push_screen(AcknowledgeFaultScreen(cause), self._reset_confirmed)

    def _reset_confirmed(self, acknowledged: bool | None) -> None:
        if acknowledged:
            self.send("reset")
        else:
            self.say("reset cancelled: the fault stays latched")

    @work(group="actions", exclusive=True, exit_on_error=False)
    async def send(self, action: str, *args: Any) -> None:
        self.say(f"{action}...")
        try:
            status = await getattr(self.source, action)(*args)
        except InterlockError as error:
            self.say(f"{action} refused: {type(error).__name__}: {error}", "bold yellow")
            return
        self.apply(Status(status))
        self.say(f"{action}: done, state {status.get('state')}")

    async def on_unmount(self) -> None:
        self.workers.cancel_all()
        await self.source.close()


def _shown_socket(bench: Bench | RemoteBench) -> str:
    """The socket as bench.toml names it (relative to the bench file, when it is beside it),
    or the address of a bench reached without its file."""
    if isinstance(bench, RemoteBench):
        return bench.address
    socket = Path(bench.service.socket)
    try:
        return str(socket.relative_to(Path(bench.path).parent))
    except ValueError:
        return str(socket)
