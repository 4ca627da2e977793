"""The console's confirmations: arming a flight bench, acknowledging a fault.

Both are modal; the emergency stop key stays bound on top of them (an
application binding with priority), so no dialog ever stands between the
operator and the stop.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static


def typed_name_matches(typed: str, name: str) -> bool:
    """The flight confirmation: the bench's name, typed.

    The stop key is space, even while typing, so a name with spaces is typed
    without them.
    """
    return typed.strip() == name.replace(" ", "")


class ArmFlightScreen(ModalScreen[str | None]):
    """Arming a flight bench takes its name, typed. Dismissed with the name or None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, bench_name: str) -> None:
        super().__init__(classes="dialog")
        self.bench_name = bench_name

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box flight"):
            yield Static(
                f"ARM FLIGHT BENCH {self.bench_name}\n\n"
                "This is flight hardware. Type the bench name to arm it"
                + (" (without its spaces)" if " " in self.bench_name else "")
                + ".",
                classes="dialog-title",
            )
            yield Input(placeholder=self.bench_name.replace(" ", ""), id="confirm-name")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Arm", id="confirm-arm", variant="warning", disabled=True)
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        ok = typed_name_matches(event.value, self.bench_name)
        self.query_one("#confirm-arm", Button).disabled = not ok

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if typed_name_matches(event.value, self.bench_name):
            self.dismiss(self.bench_name)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "confirm-arm":
            self.dismiss(self.bench_name)
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class AcknowledgeFaultScreen(ModalScreen[bool]):
    """The latched fault's cause, to be read and acknowledged before the reset."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("y", "confirm", "Acknowledge"),
    ]

    def __init__(self, cause: str) -> None:
        super().__init__(classes="dialog")
        self.cause = cause

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Static(
                f"LATCHED FAULT\n\n{self.cause}\n\n"
                "Acknowledge it and reset? The reset verifies that the bench is safe "
                "and clears the latch; it never turns anything on.",
                classes="dialog-title",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Acknowledge and reset (y)", id="confirm-reset", variant="warning")
                yield Button("Cancel", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm-reset")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
