"""Waiting in tests for what another thread or process does: on an outcome, with a
deadline far beyond what it takes on a loaded machine, never on a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable


def until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Whether ``condition()`` came true within ``seconds`` (asked every 5 ms)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
