"""What the DAQ970A's dialect file cannot say: how a relay is addressed (slot and
channel, ``101``) and which actuator modules the interlock drives."""

from __future__ import annotations

SLOT = 1  # the actuator module's slot (channels 101..120)
# The general-purpose actuators: the 34903A, and its successor in the DAQ970A.
ACTUATORS = ("34903A", "DAQM903A")


def address(channel: int) -> str:
    """A relay's 1-based channel as the mainframe names it: slot, then two digits."""
    return f"{SLOT}{channel:02d}"


def module_problem(model: str) -> str | None:
    """Why the module in the slot is not one the interlock drives; None if it is."""
    if model == "0":
        return f"slot {SLOT} is empty"
    if model not in ACTUATORS:
        return f"slot {SLOT} holds a {model}, not an actuator ({', '.join(ACTUATORS)})"
    return None
