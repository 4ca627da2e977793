"""The controller: the state machine and its parts (see :mod:`.controller`)."""

from interlock.controller.controller import Controller
from interlock.controller.machine import STATES, TRANSITIONS, mermaid_diagram
from interlock.controller.safe_state import SafeStateReport

__all__ = ["STATES", "TRANSITIONS", "Controller", "SafeStateReport", "mermaid_diagram"]
