"""Starting a service in the background and telling whether one answers.

Light on purpose (no web framework imported): :mod:`interlock.client` uses it.
The background service is a new session (it outlives whoever started it,
like any daemon), with its output in ``<socket dir>/service.log`` and its
pid in ``<socket>.pid``.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

from interlock.errors import InterlockError


def answers(socket_path: Path) -> bool:
    """Whether something accepts connections on the Unix socket ``socket_path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(str(socket_path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def log_path(socket_path: Path) -> Path:
    return Path(socket_path).parent / "service.log"


def start_background(
    bench_file: str | Path, socket_path: Path, *, tcp: str | None = None, timeout: float = 30.0
) -> int:
    """Spawn ``interlock serve`` detached; return its pid once it answers on its socket."""
    socket_path = Path(socket_path)
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path(socket_path)
    argv = [sys.executable, "-m", "interlock", "serve", "--bench", str(Path(bench_file).resolve())]
    if tcp:
        argv += ["--tcp", tcp]
    # posix_spawn, not subprocess: this process may exit long before the service does,
    # and the service must hold none of its caller's pipes (a caller waiting for EOF).
    pid = os.posix_spawn(
        sys.executable,
        argv,
        os.environ,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
            if answers(socket_path):  # lost a race with another starter: theirs is serving
                return pid
            raise InterlockError(
                f"the service exited at start (code {code}); {log}: " + " | ".join(tail)
            )
        if answers(socket_path):
            return pid
        time.sleep(0.05)
    raise InterlockError(f"the service did not answer on {socket_path} within {timeout:g} s")
