"""A simulation bench's simulator as a process of its own: find it, start it, stop it.

One simulator per simulation bench, as real instruments are one per bench:
it runs detached (a session of its own, like the background service), so it
outlives whoever started it, the service included; a crash of the service
leaves the instruments as they were, for everyone to see. It lives in the
bench's run directory (that of the service's socket):

- ``sim.sock``: its control channel, owner-only (:mod:`interlock.sim.control`);
- ``sim.json``: its state file (:class:`~interlock.sim.client.SimulatorState`);
- ``sim.lock``: held by whoever binds ``sim.sock``, so that two starters
  racing end with one simulator;
- ``sim.log``: the output of a simulator started in the background.

:func:`ensure_simulator` is what ``interlock serve`` (and so ``run``,
``connect()``) calls for a simulation bench given no resources: it returns
the running simulator, or binds the control socket, starts one on free
ports with that socket and waits until it answers. A simulator started from
another version of the bench file (its sha256 differs) is not used: it
would serve other instruments or another DUT. That is an error naming both
hashes; ``interlock sim stop`` ends the old one.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from interlock.errors import SimulatorError
from interlock.sim import control
from interlock.sim.client import (
    SimulatorClient,
    control_path,
    read_state,
    run_directory,
    state_path,
)

log = logging.getLogger(__name__)

LOCK_FILE = "sim.lock"
LOG_FILE = "sim.log"
# Python, the simulator and its instruments starting on a loaded machine.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
# The fd the control socket has in a simulator started by ensure_simulator().
CONTROL_FD = 3


def log_path(bench: Any) -> Path:
    return run_directory(bench) / LOG_FILE


@contextlib.contextmanager
def run_lock(bench: Any, timeout: float = START_TIMEOUT) -> Iterator[None]:
    """Hold the bench's simulator lock (``sim.lock``) while binding its control socket."""
    path = run_directory(bench) / LOCK_FILE
    control.private_directory(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SimulatorError(
                        f"{path}: held by another process for {timeout:g} s"
                    ) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # releases the lock


def find_simulator(bench: Any) -> SimulatorClient | None:
    """The simulator serving ``bench`` now, or None if none answers.

    Raises :class:`SimulatorError` if the one that answers was started from
    another version of the bench file.
    """
    state = read_state(state_path(bench))
    path = Path(state.control) if state else control_path(bench)
    if not control.answers(path):
        return None
    client = SimulatorClient(path)
    try:
        found = client.describe()
    except SimulatorError as error:
        log.info("the simulator on %s does not describe itself: %s", path, error)
        return None
    if found.bench_sha256 != bench.sha256:
        raise SimulatorError(
            f"the simulator running for bench {bench.name} (pid {found.pid}) was started from "
            f"another version of {found.bench_file} (sha256 {found.bench_sha256[:12]}, now "
            f"{bench.sha256[:12]}): it is not used; stop it with "
            f"`interlock sim stop --bench {bench.path}` and start again"
        )
    return client


def ensure_simulator(bench: Any, *, timeout: float = START_TIMEOUT) -> SimulatorClient:
    """The running simulator of ``bench``; one is started in the background if none answers."""
    if bench.environment != "simulation":
        raise SimulatorError(f"bench {bench.name} is a {bench.environment} bench: not simulated")
    deadline = time.monotonic() + timeout
    spawned: int | None = None
    while True:
        found = find_simulator(bench)
        # Ready once it has written its state file too: tools find it through that.
        if found is not None and _state_names(bench, found.pid):
            return found
        if spawned is None:
            with run_lock(bench, timeout):
                path = control_path(bench)
                if not control.answers(path):  # neither running nor starting
                    sock = control.bind_control(path)
                    try:
                        spawned = _spawn(bench, sock)
                    finally:
                        sock.close()
                    log.info("simulator of bench %s started: pid %d", bench.name, spawned)
        elif _exited(spawned) and not control.answers(control_path(bench)):
            raise SimulatorError(
                f"the simulator of bench {bench.name} exited at start; "
                f"{log_path(bench)}: {_tail(log_path(bench))}"
            )
        if time.monotonic() > deadline:
            raise SimulatorError(
                f"the simulator of bench {bench.name} did not answer within {timeout:g} s "
                f"(see {log_path(bench)})"
            )
        time.sleep(0.05)


def stop_simulator(bench: Any, *, timeout: float = STOP_TIMEOUT) -> str:
    """SIGTERM the bench's simulator and wait until it is gone; say what was done.

    Only the process that answers on the bench's control socket, and says
    its pid there, is signalled. A service using it sees its instruments
    vanish and trips, as it would if someone switched the real ones off.
    """
    state = read_state(state_path(bench))
    path = Path(state.control) if state else control_path(bench)
    try:
        pid = SimulatorClient(path, timeout=5.0).describe().pid
    except SimulatorError:
        removed = _remove_stale(bench, path)
        return f"no simulator is running for bench {bench.name}" + (
            f" (removed the stale {', '.join(removed)})" if removed else ""
        )
    if pid == os.getpid():
        raise SimulatorError(f"the simulator on {path} runs in this process: stop it there")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return f"no simulator is running for bench {bench.name} (pid {pid} had just ended)"
    except PermissionError as exc:
        raise SimulatorError(f"may not signal the simulator (pid {pid}): {exc}") from None
    deadline = time.monotonic() + timeout
    while not _exited(pid) or control.answers(path, timeout=0.5):
        if time.monotonic() > deadline:
            raise SimulatorError(f"the simulator (pid {pid}) is still running after {timeout:g} s")
        time.sleep(0.05)
    return f"simulator stopped (pid {pid}); its instruments are gone"


def _state_names(bench: Any, pid: int) -> bool:
    state = read_state(state_path(bench))
    return state is not None and state.pid == pid


def _remove_stale(bench: Any, path: Path) -> list[str]:
    removed = []
    for stale in (state_path(bench), path):
        if (stale.exists() or stale.is_symlink()) and not control.answers(path, timeout=0.5):
            stale.unlink(missing_ok=True)
            removed.append(str(stale))
    return removed


def _spawn(bench: Any, sock: Any) -> int:
    """``interlock sim start`` detached, serving the bound ``sock`` as its control channel."""
    log = log_path(bench)
    argv = [
        sys.executable,
        "-m",
        "interlock",
        "sim",
        "start",
        "--bench",
        str(bench.path),
        "--ports",
        "free",
        "--control-fd",
        str(CONTROL_FD),
    ]
    fd = os.dup(sock.fileno())
    if fd == CONTROL_FD:  # dup2 onto itself might keep close-on-exec: move it first
        fd, spare = os.dup(fd), fd
        os.close(spare)
    try:
        # posix_spawn, not subprocess: the simulator outlives this process and must hold
        # none of its pipes; setsid: no signal to this process group reaches it.
        pid = os.posix_spawn(
            sys.executable,
            argv,
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
                (os.POSIX_SPAWN_DUP2, 1, 2),
                (os.POSIX_SPAWN_DUP2, fd, CONTROL_FD),
            ],
            setsid=True,
        )
    finally:
        os.close(fd)
    # Reap it when it ends, so that a long-lived starter (a service) keeps no zombie.
    threading.Thread(target=_reap, args=(pid,), name=f"reap-simulator-{pid}", daemon=True).start()
    return pid


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _exited(pid: int) -> bool:
    """Whether ``pid`` has ended (gone, or a zombie not yet reaped; Linux /proc)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    return state == "Z"


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return " | ".join(text.strip().splitlines()[-lines:])
