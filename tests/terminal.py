"""A command run in a terminal of its own, whose other side the test holds: closing it
hangs the command up (SIGHUP), as the end of a remote session does."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Run argv[2:] with the terminal argv[1] as its controlling terminal, as a shell in a
# remote session runs a command: closing the terminal's other side hangs it up (SIGHUP).
IN_A_TERMINAL = """
import os, sys
os.setsid()
terminal = os.open(sys.argv[1], os.O_RDWR)  # a session leader's first: its controlling one
for fd in (0, 1, 2):
    os.dup2(terminal, fd)
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""


def in_a_terminal(*argv: str) -> tuple[subprocess.Popen, int, int]:
    """``python argv`` in a terminal of its own; the terminal's two sides (the slave kept
    open here until the child has it: reading the master fails once no one has it)."""
    master, slave = os.openpty()
    child = subprocess.Popen(
        [sys.executable, "-c", IN_A_TERMINAL, os.ttyname(slave), *argv],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return child, master, slave


def read_until(master: int, text: bytes, timeout: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while text not in seen:
        assert time.monotonic() < deadline, seen
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            seen += os.read(master, 4096)
    return seen
