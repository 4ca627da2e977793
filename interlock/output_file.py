"""A background process's output file, put back where it was should it go.

A service or simulator started in the background writes its output (fd 1 and
2) to a log in its run directory. Removed under it (``rm -rf`` of the run
directory) or moved aside (a log rotation), the process would go on writing to
a file nobody finds: what it says after an incident would be lost. Its keeper
calls :meth:`OutputFile.keep` every round, which opens the log again at its
place and points the output there.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

OUTPUTS = (1, 2)  # stdout, stderr


def _identity(where: int | Path) -> tuple[int, int] | None:
    """(device, inode) of the file a descriptor holds or a path names; None if none."""
    try:
        found = os.stat(where)
    except OSError:
        return None
    return found.st_dev, found.st_ino


class OutputFile:
    """This process's output, if it goes to the file at ``path`` (as its starter
    opened it); otherwise (a terminal, a pipe, a file of the user's) nothing is
    ever done to it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        here = _identity(self.path)
        self._fds = tuple(fd for fd in OUTPUTS if here is not None and _identity(fd) == here)

    @property
    def kept(self) -> bool:
        """Whether the output goes to ``path`` and is kept there."""
        return bool(self._fds)

    def keep(self) -> bool:
        """Open the log again at ``path`` if what the output goes to is no longer the file
        there; True if it was. Made owner-only where nothing is; a regular file put there
        (a log rotation's new one) is appended to as it is; anything else (a link, a
        pipe) is left alone: OSError, as when it cannot be opened."""
        if not self._fds or _identity(self._fds[0]) == _identity(self.path):
            return False
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Not through a link, and never waiting on a pipe for a reader.
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK
        fd = os.open(self.path, flags | os.O_CLOEXEC, 0o600)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(f"{self.path} is not a regular file: left alone")
            os.set_blocking(fd, True)
            for out in self._fds:
                os.dup2(fd, out)  # what is buffered and written from now on goes there
        finally:
            os.close(fd)
        return True
