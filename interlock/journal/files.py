"""The journal's files: who may read them, and whether they are still the ones opened.

Who may read them: its owner, or also one group named in bench.toml. The
database, SQLite's ``-wal`` and ``-shm`` beside it and the witness
(:mod:`interlock.journal.witness`) are created ``0600`` (``0640`` and given
to the group), and a directory made for them ``0700`` (``0750``), whatever
the process's umask. SQLite gives ``-wal`` and ``-shm`` the database's mode
itself, but the creating process's group: a writer gives them the group after
opening.

Whether they are still the ones opened: :class:`OnDisk` (what the writer does
when one went: :mod:`interlock.journal.putback`).
"""

from __future__ import annotations

import contextlib
import grp
import os
from dataclasses import dataclass
from pathlib import Path

from interlock.errors import JournalError


@dataclass(frozen=True)
class JournalAccess:
    group: str | None = None  # also readable by this group; None: the owner only

    @property
    def mode(self) -> int:
        return 0o640 if self.group else 0o600

    @property
    def directory_mode(self) -> int:
        return 0o750 if self.group else 0o700

    def gid(self) -> int:
        """The group's id, or -1 (leave the group as it is) when there is none."""
        if self.group is None:
            return -1
        try:
            return grp.getgrnam(self.group).gr_gid
        except KeyError:
            raise JournalError(f'no group "{self.group}" on this machine') from None


OWNER_ONLY = JournalAccess()


def access_of(found: os.stat_result) -> JournalAccess:
    """The access a file has: its group's, if the group may read it; else the owner's only."""
    if not found.st_mode & 0o040:
        return OWNER_ONLY
    try:
        return JournalAccess(grp.getgrgid(found.st_gid).gr_name)
    except KeyError:  # a group without a name: none to give a copy
        return OWNER_ONLY


def companions(path: Path) -> list[Path]:
    """The files SQLite keeps beside a database in WAL mode."""
    return [Path(f"{path}-wal"), Path(f"{path}-shm")]


def make_directory(path: Path, access: JournalAccess) -> None:
    """Create ``path`` (and missing parents) if it is missing; the last level gets ``access``."""
    if path.is_dir():
        return
    try:
        path.mkdir(parents=True, mode=access.directory_mode)
        # mkdir's mode is filtered by the umask: set it exactly.
        os.chmod(path, access.directory_mode)
        if access.group is not None:
            os.chown(path, -1, access.gid())
    except FileExistsError:
        pass  # made by another process meanwhile
    except OSError as exc:
        raise JournalError(f"cannot create the journal's directory {path}: {exc}") from exc


def create_file(path: Path, access: JournalAccess) -> int:
    """Create ``path`` with ``access`` and return it open for reading and writing.

    FileExistsError if it exists: the caller opens that one instead.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, access.mode)
    try:
        os.fchmod(fd, access.mode)  # the umask filtered the mode os.open gave
        if access.group is not None:
            os.fchown(fd, -1, access.gid())
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return fd


def apply(paths: list[Path], access: JournalAccess) -> None:
    """Give files that exist ``access`` (a journal made before, or by SQLite with our group)."""
    gid = access.gid()
    for path in paths:
        try:
            os.chmod(path, access.mode)
            if gid != -1:
                os.chown(path, -1, gid)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise JournalError(f"cannot restrict who reads {path}: {exc}") from exc


def sync_directory(path: Path) -> None:
    """Make a new directory entry in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- the files a writer holds open ------------------------------------------------------


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of what is at ``path`` now, or None if nothing is there (its
    directory included). Another error (a permission, an I/O error) is raised: it says
    nothing of whether the file is the same."""
    try:
        found = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return found.st_dev, found.st_ino


@dataclass(frozen=True)
class OnDisk:
    """Files as a writer holds them open (the database, ``-wal``, ``-shm``, the
    witness), each by device and inode (None: it had none).

    A file removed while a writer holds it open, or another file put in its place,
    does not stop the writer: it goes on writing where nobody else, and no later
    start, will find what it writes. A ``stat`` per file tells (about a microsecond),
    so the journal asks before every commit.
    """

    held: tuple[tuple[Path, tuple[int, int] | None], ...]

    def changed(self) -> list[tuple[Path, str]]:
        """Each file that is no longer the one held, and how (``"removed"``, ``"replaced
        by another file"``). A file it had none of, or one that cannot be looked at now,
        is not counted."""
        changed = []
        for path, held in self.held:
            if held is None:
                continue
            try:
                now = file_identity(path)
            except OSError:
                continue  # cannot tell: not a reason to stop writing
            if now != held:
                changed.append((path, "removed" if now is None else "replaced by another file"))
        return changed

    def holds(self, path: Path) -> bool:
        """Whether the file at ``path`` now is the one held there."""
        held = dict(self.held).get(path)
        try:
            return held is not None and file_identity(path) == held
        except OSError:
            return False
