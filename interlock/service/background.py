"""Starting a service in the background and telling whether one answers.

Light on purpose (no web framework imported): :mod:`interlock.client` uses it.
The background service is a new session (it outlives whoever started it,
like any daemon), with its output in ``<socket dir>/service.log`` and its
pid in ``<socket>.pid``, both owner-only, as is the socket's directory when
the service or its starter makes it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from pathlib import Path

from interlock.errors import InterlockError


def private_directory(directory: Path) -> None:
    """Make ``directory`` owner-only (0700) if it does not exist yet; leave one that does."""
    directory = Path(directory)
    if directory.is_dir():
        return
    directory.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # made meanwhile by another starter
        directory.mkdir(mode=0o700)


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


def pid_path(socket_path: Path) -> Path:
    """Where a service writes its pid: next to its socket (``x.sock`` -> ``x.pid``)."""
    return Path(socket_path).with_suffix(".pid")


def stop_service(socket_path: Path, *, timeout: float = 60.0) -> str:
    """SIGTERM the service serving on ``socket_path``, wait until it is gone; say what was done.

    The service drives its bench safe before it exits. Only the process that
    holds ``socket_path`` (an ``interlock serve``) is signalled: a pid file left
    by a service that died, whose number another process now has, is
    recognised and removed.
    """
    pid_file = pid_path(socket_path)
    try:
        pid = int(pid_file.read_text(encoding="ascii").strip())
    except (FileNotFoundError, ValueError):
        if answers(socket_path):
            raise InterlockError(
                f"a service answers on {socket_path} but left no pid in {pid_file}: "
                "stop it where it was started (SIGINT or SIGTERM)"
            ) from None
        return f"no service is running on {socket_path}"
    if not (_is_service(pid) and _holds_socket(pid, socket_path)):
        pid_file.unlink(missing_ok=True)
        return f"no service is running (removed the stale {pid_file})"
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return f"no service is running (pid {pid} had just ended)"
    except PermissionError as exc:
        raise InterlockError(f"may not signal the service (pid {pid}): {exc}") from None
    deadline = time.monotonic() + timeout
    while _is_service(pid):
        if time.monotonic() > deadline:
            raise InterlockError(
                f"the service (pid {pid}) is still stopping after {timeout:g} s (driving the "
                f"bench safe, or waiting for its journal): see {log_path(socket_path)}"
            )
        time.sleep(0.05)
    return f"service stopped (pid {pid}); the bench was driven to the safe state"


def _holds_socket(pid: int, socket_path: Path) -> bool:
    """Whether ``pid`` has the Unix socket bound at ``socket_path`` open (Linux /proc)."""
    path = os.fsencode(os.path.abspath(socket_path))
    try:
        with open("/proc/net/unix", "rb") as table:
            inodes = {
                fields[6]
                for fields in (line.split() for line in list(table)[1:])
                if len(fields) >= 8 and fields[7] == path
            }
        links = {os.readlink(entry) for entry in Path(f"/proc/{pid}/fd").iterdir()}
    except OSError:
        return False
    return any(f"socket:[{inode.decode()}]" in links for inode in inodes)


def _is_service(pid: int) -> bool:
    """Whether ``pid`` is a live ``interlock serve`` (Linux /proc)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    if state == "Z":  # exited, not yet reaped by its parent
        return False
    words = [Path(os.fsdecode(a)).name for a in argv]
    return "serve" in words and any(w.startswith("interlock") for w in words)


def start_background(
    bench_file: str | Path, socket_path: Path, *, tcp: str | None = None, timeout: float = 30.0
) -> int:
    """Spawn ``interlock serve`` detached; return its pid once it answers on its socket."""
    socket_path = Path(socket_path)
    private_directory(socket_path.parent)
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
