"""A command run in a terminal of its own, whose other side the test holds: closing it
hangs the command up (SIGHUP), as the end of a remote session does."""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
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


class Terminal:
    """The command's process, and the terminal's side the test holds."""

    def __init__(self, process: subprocess.Popen, master: int) -> None:
        self.process = process
        self._master: int | None = master

    def hang_up(self, timeout: float = 30) -> int:
        """Close the terminal (the session ends); the command's exit status."""
        if self._master is not None:
            os.close(self._master)
            self._master = None
        return self.process.wait(timeout=timeout)


@contextlib.contextmanager
def in_a_terminal(
    *argv: str, ready: bytes, timeout: float = 30, environment: dict[str, str] | None = None
) -> Iterator[Terminal]:
    """``python argv`` in a terminal of its own (``environment`` added to ours), once it
    has written ``ready`` there. The slave side is kept open here until the end: reading
    the master fails once no one has it. A command still running at the end is killed."""
    master, slave = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-c", IN_A_TERMINAL, os.ttyname(slave), *argv],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(environment or {})},
    )
    terminal = Terminal(process, master)
    try:
        seen = b""
        deadline = time.monotonic() + timeout
        while ready not in seen:
            assert time.monotonic() < deadline, seen
            readable, _, _ = select.select([master], [], [], 0.1)
            if readable:
                seen += os.read(master, 4096)
        yield terminal
    finally:
        if process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                terminal.hang_up(timeout)  # asked to stop first: killed, it leaves its files
        if process.poll() is None:
            process.kill()
            process.wait()
        if terminal._master is not None:
            os.close(terminal._master)
        os.close(slave)
