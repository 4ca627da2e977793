"""The operator console (``interlock console``): what the operator watches and stops the bench from.

A Textual app attached to the bench's controller service. Pieces, one module each:

- :mod:`.model`: what is shown and offered, from a status (pure).
- :mod:`.source`: the service's event stream (reconnecting), its actions, the journal tail.
- :mod:`.widgets`: the panels of the main screen.
- :mod:`.screens`: the confirmations (arming a flight bench, acknowledging a fault).
- :mod:`.app`: the app, its keys and actions.

The console is never needed for safety: the service keeps the bench safe
without it, and a console that goes away takes nothing with it.
"""

from __future__ import annotations

from interlock.console.app import ConsoleApp
from interlock.console.source import ServiceSource

__all__ = ["ConsoleApp", "ServiceSource"]
