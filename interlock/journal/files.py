"""The journal's files: who may read them, and whether they are still the ones opened.

Who may read them: its owner, or also one group named in bench.toml. The
database, SQLite's ``-wal`` and ``-shm`` beside it and the witness
(:mod:`interlock.journal.witness`) are created ``0600`` (``0640`` and given
to the group), and a directory made for them ``0700`` (``0750``), whatever
the process's umask. SQLite gives ``-wal`` and ``-shm`` the database's mode
itself, but the creating process's group: a writer gives them the group after
opening.

Whether they are still the ones opened: :class:`OnDisk`; and what the writer
does when one went, :func:`save_open_copy`.
"""

from __future__ import annotations

import contextlib
import grp
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
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


# -- the files a connection holds open ---------------------------------------------------


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of what is at ``path`` now, or None if nothing is (or it cannot
    be reached: a directory removed or replaced)."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


@dataclass(frozen=True)
class OnDisk:
    """Files as a writer opened them (the database, ``-wal``, ``-shm``, the witness),
    each by device and inode.

    A file removed while a writer holds it open, or another file put in its place,
    does not stop the writer: it goes on writing where nobody else, and no later
    start, will find what it writes. A ``stat`` a file tells (a microsecond or so),
    so the journal asks before every commit.
    """

    paths: tuple[Path, ...]
    held: tuple[tuple[int, int] | None, ...]

    @classmethod
    def now(cls, paths: tuple[Path, ...]) -> OnDisk:
        return cls(paths, tuple(file_identity(path) for path in paths))

    def changed(self) -> list[tuple[Path, str]]:
        """Each file that is no longer the one opened, and how (``"removed"``, ``"replaced
        by another file"``). A file that was not there when opened is not asked about."""
        changed = []
        for path, held in zip(self.paths, self.held, strict=True):
            if held is None:
                continue
            now = file_identity(path)
            if now != held:
                changed.append((path, "removed" if now is None else "replaced by another file"))
        return changed


def save_open_copy(
    conn: sqlite3.Connection, path: Path, access: JournalAccess
) -> tuple[Path, bool]:
    """Write the database ``conn`` holds to disk again, durably: at ``path`` if nothing
    is there now (put back), else beside it as ``NAME.saved-TIME``. Returns where it
    went and whether that is ``path``.

    SQLite's backup reads through ``conn``, so the copy holds every commit the
    connection made, those still in a ``-wal`` that was removed included. Made under
    a name of its own first and linked into place, so no file is ever overwritten
    and no half-written copy ever has the journal's name.
    """
    make_directory(path.parent, access)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    partial = path.with_name(f".{path.name}.saving-{os.getpid()}-{stamp}")
    try:
        os.close(create_file(partial, access))
        copy = sqlite3.connect(partial)
        try:
            conn.backup(copy)
        finally:
            copy.close()
        fd = os.open(partial, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(partial, path)  # fails if anything is there: nothing is overwritten
            where, put_back = path, True
        except FileExistsError:
            where, put_back = path.with_name(f"{path.name}.saved-{stamp}"), False
            os.link(partial, where)
        os.unlink(partial)
        sync_directory(path.parent)
    except (OSError, sqlite3.Error) as exc:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise JournalError(f"cannot save the open copy of {path}: {exc}") from exc
    return where, put_back
