"""What the Numato module's dialect file cannot say: every line is echoed before its
answer, a relay is named by one character (``0``-``9``, then ``A``...: the module
reads only the first character, so ``relay on 12`` would switch relay 1), and the
module says who it is only through ``ver``, ``id get`` and the width of
``relay readall``."""

from __future__ import annotations

from typing import Any

from interlock.errors import ProtocolError

ECHO = True  # every line comes back before its answer and the prompt
MAKER = "Numato Lab"
# The width of relay readall's hex bitmap names the model.
MODELS = {2: "USBRELAY8", 4: "USBRELAY16"}
_NAMES = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def address(channel: int) -> str:
    """A 1-based channel as the module names its relay: one character, 0-9 then A-Z."""
    return _NAMES[channel - 1]  # the driver holds channels to the model's relays


def identify(device: Any) -> tuple[str, str, str, str]:
    """Maker, model, serial (the user ID) and firmware, as the module tells them."""
    # An empty line first: it ends whatever an earlier host (or a question in another
    # family's line ends) left unended, which the module would read as part of ``ver``.
    device.reply_to("")
    version = device.reply_to("ver")
    user_id = device.reply_to("id get")
    states = device.reply_to("relay readall")
    model = MODELS.get(len(states))
    if model is None or any(c not in "0123456789abcdefABCDEF" for c in states):
        raise ProtocolError(device.name, f"relay readall: not a relay module's answer: {states!r}")
    return MAKER, model, user_id, version
