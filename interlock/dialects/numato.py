"""What the Numato module's dialect file cannot say: every line is echoed before its
answer, a relay is named by one character (``0``-``9``, then ``A``...: the module
reads only the first character, so ``relay on 12`` would switch relay 1), and the
module says who it is only through ``ver``, ``id get`` and the width of
``relay readall``."""

from __future__ import annotations

from typing import Any

from interlock.errors import ProtocolError
from interlock.protocols import Identified

ECHO = True  # every line comes back before its answer and the prompt
MAKER = "Numato Lab"
# The width of relay readall's hex bitmap names the model.
MODELS = {2: "USBRELAY8", 4: "USBRELAY16"}


def address(channel: int) -> str:
    """A 1-based channel as the module names its relay: one character, 0-9 then A-Z."""
    index = channel - 1
    if not 0 <= index < 36:
        raise ValueError(f"relay {channel}: the module names relays 1 to 36 by one character")
    return str(index) if index < 10 else chr(55 + index)


def identify(device: Any) -> Identified:
    version = device.reply_to("ver")
    user_id = device.reply_to("id get")
    states = device.reply_to("relay readall")
    model = MODELS.get(len(states))
    if model is None or any(c not in "0123456789abcdefABCDEF" for c in states):
        raise ProtocolError(device.name, f"relay readall: not a relay module's answer: {states!r}")
    return Identified(MAKER, model, user_id, version)
