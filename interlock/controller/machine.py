"""The controller's state machine: a table, built with transitions.

::

    disconnected -> safe -> armed -> live -> fault (latched)

``trip`` (a fault or an emergency stop) leads to ``fault`` from every state;
only ``reset`` (an operator, after the safe state is verified) leaves it, and
it leads to ``safe``: a reset never energises anything. Callbacks do no
actuation: the controller acts first, then records the transition (an
exception in an ``after`` callback would leave the state already changed).
"""

from __future__ import annotations

from transitions import MachineError
from transitions.extensions import LockedMachine

from interlock.errors import StateError

STATES = ["disconnected", "safe", "armed", "live", "fault"]

TRANSITIONS = [
    # trigger, source, dest
    ["connect", "disconnected", "safe"],
    ["arm", "safe", "armed"],
    ["energise", "armed", "live"],
    ["deenergise", "live", "armed"],
    ["disarm", "armed", "safe"],
    ["trip", "*", "fault"],
    ["reset", "fault", "safe"],
    ["disconnect", ["safe", "armed", "live", "fault"], "disconnected"],
]

#: States in which nothing may be energised.
SAFE_STATES = frozenset({"disconnected", "safe", "fault"})


class ControllerState:
    """The model the machine drives; ``state`` holds the current state name."""

    state: str

    def __init__(self) -> None:
        self.machine = LockedMachine(
            model=self,
            states=STATES,
            transitions=TRANSITIONS,
            initial="disconnected",
            auto_transitions=False,
            ignore_invalid_triggers=False,
        )

    def destination(self, trigger: str) -> str:
        """Where ``trigger`` leads from the current state; StateError if it is not allowed."""
        for transition in self.machine.get_transitions(trigger=trigger, source=self.state):
            return transition.dest
        raise StateError(f"cannot {trigger} while {self.state}")

    def fire(self, trigger: str) -> None:
        try:
            self.trigger(trigger)
        except MachineError as exc:
            raise StateError(f"cannot {trigger} while {self.state}") from exc


def mermaid_diagram() -> str:
    """The state diagram (mermaid), generated from the table above."""
    from transitions.extensions.diagrams import GraphMachine

    class _Model:
        pass

    model = _Model()
    GraphMachine(
        model=model,
        states=STATES,
        transitions=TRANSITIONS,
        initial="disconnected",
        auto_transitions=False,
        graph_engine="mermaid",
        show_state_attributes=False,
        title="interlock controller",
    )
    lines = model.get_graph().draw(None).splitlines()
    # Drop styling of the "current" state: the diagram documents the table, not a moment.
    return "\n".join(line for line in lines if "Class " not in line and "classDef" not in line)
