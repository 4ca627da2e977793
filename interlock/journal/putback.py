"""Putting back the files of a journal that went while a writer held them open.

SQLite goes on writing, without an error, to a database, ``-wal`` or ``-shm``
removed under it (``rm journal.sqlite*``): every commit after that would go to
files nobody will find, and be gone with the process. The writer notices before
its next commit (:class:`~interlock.journal.files.OnDisk`) and, holding its write
lock, calls :func:`put_back` with what it holds; it is given back what to write
with from then on (:class:`Outcome`), and reaches into nothing here.

- The database's place free (removed, with its companions or alone, or its
  directory with it): what the open connection holds is written back there.
  SQLite's backup reads through the connection, so commits still in a removed
  ``-wal`` are in it; the copy is made under a name of its own and linked into
  place, so nothing is ever overwritten and no half-made copy has the journal's
  name. A removed witness is made again from the one still held open.
- Another file there that holds this journal's chain up to the writer's head:
  another writer put it back (the service, for the guardian); it is taken.
- Anything else (another file there; or the database still there but its
  ``-wal`` or ``-shm`` gone, which SQLite cannot share safely with other
  processes any more): what it holds is saved beside it
  (``NAME.saved-TIME``), and the writer writes no more.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from interlock.errors import JournalError
from interlock.journal.db import connect, holds_point
from interlock.journal.files import (
    OWNER_ONLY,
    JournalAccess,
    OnDisk,
    companions,
    create_file,
    make_directory,
    sync_directory,
)
from interlock.journal.witness import Point, Witness, witness_path

log = logging.getLogger(__name__)

PUT_BACK = "put back from what this journal held open"
TAKEN = "another writer had put it back"


@dataclass(frozen=True)
class Outcome:
    """What a writer writes with after :func:`put_back`. ``conn`` is the one it held
    when nothing had to change, a new one, or None (closed, nothing to write with);
    ``how`` says how the journal goes on, or why it cannot (``goes_on`` False)."""

    goes_on: bool
    how: str
    conn: sqlite3.Connection | None
    witness: Witness | None


def put_back(
    path: Path,
    conn: sqlite3.Connection,
    witness: Witness | None,
    on_disk: OnDisk,
    gone: set[Path],
    head: Point,
    access: JournalAccess | None,
    busy_timeout: float,
) -> Outcome:
    """The journal at ``path`` whole again where it can be (see the module's doc):
    ``conn`` and ``witness`` are what the writer holds, ``on_disk`` as it opened
    them, ``gone`` those of them no longer there (:meth:`OnDisk.changed`), ``head``
    the last entry ``conn`` holds. ``access`` as the writer was opened with it: None
    leaves the files' modes as they are, and what is made anew takes those of the
    witness held open (else the owner's only)."""
    made = access if access is not None else _access_held(witness)
    how = "the witness put back from the one this journal held open"
    if gone & {path, *companions(path)}:
        outcome = _database_back(path, conn, on_disk, head, access, made, busy_timeout)
        if not outcome.goes_on or outcome.conn is None:
            return Outcome(False, outcome.how, outcome.conn, witness)
        conn, how = outcome.conn, outcome.how
    if witness is not None and witness_path(path) in gone:
        witness = _witness_back(path, witness, made)
    return Outcome(True, how, conn, witness)


def _access_held(witness: Witness | None) -> JournalAccess:
    if witness is not None:
        with contextlib.suppress(OSError, JournalError):
            return witness.access()
    return OWNER_ONLY


def _database_back(
    path: Path,
    conn: sqlite3.Connection,
    on_disk: OnDisk,
    head: Point,
    access: JournalAccess | None,
    made: JournalAccess,
    busy_timeout: float,
) -> Outcome:
    try:
        if on_disk.holds(path):  # the database is still there, its -wal or -shm is not
            where = _saved_beside(path, _copy(conn, path, made))
            return Outcome(False, _saved_as(where, head), conn, None)
        # Its -wal and -shm, where they are still there, go first: SQLite would read them
        # into whatever file is at the path (they hold all its pages), and another
        # writer would take them for its own. Each is looked at again just before: one
        # another writer made meanwhile is not ours. The copy reads through the open
        # connection, which needs them no more than it needs the removed database.
        for companion in companions(path):
            if on_disk.holds(companion):
                with contextlib.suppress(FileNotFoundError):
                    companion.unlink()
        if path.exists():
            taken = _continuing(path, head, access, busy_timeout)
            if taken is not None:
                conn.close()
                return Outcome(True, TAKEN, taken, None)
        partial = _copy(conn, path, made)
        try:
            os.link(partial, path)  # fails if anything is there: nothing is overwritten
        except FileExistsError:
            taken = _continuing(path, head, access, busy_timeout)
            if taken is not None:  # another writer was quicker
                os.unlink(partial)
                conn.close()
                return Outcome(True, TAKEN, taken, None)
            return Outcome(False, _saved_as(_saved_beside(path, partial), head), conn, None)
    except (OSError, sqlite3.Error, JournalError) as exc:
        return Outcome(False, f"cannot put back what it holds: {exc}", conn, None)
    with contextlib.suppress(OSError):  # it is in place: the rest is tidying
        os.unlink(partial)
        sync_directory(path.parent)
    conn.close()  # of a database that went: SQLite neither checkpoints nor removes anything
    try:
        again = connect(path, create=False, busy_timeout=busy_timeout, access=access)
    except JournalError as error:
        return Outcome(False, f"put back, then {error}", None, None)
    return Outcome(True, PUT_BACK, again, None)


def _copy(conn: sqlite3.Connection, path: Path, access: JournalAccess) -> Path:
    """What ``conn`` holds, durably, in a new file beside ``path`` under a name of its own."""
    make_directory(path.parent, access)
    partial = path.with_name(f".{path.name}.copy-{os.getpid()}-{_stamp()}")
    os.close(create_file(partial, access))
    try:
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
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
    return partial


def _saved_beside(path: Path, partial: Path) -> Path:
    where = path.with_name(f"{path.name}.saved-{_stamp()}")
    os.link(partial, where)
    os.unlink(partial)
    sync_directory(path.parent)
    return where


def saved_copies(path: Path) -> list[str]:
    """The names of the copies saved beside the journal at ``path`` (oldest first): what
    a writer held when its files went and it could not put them back. Moving one away
    is for an operator, once it has been looked at."""
    stamped = re.compile(re.escape(path.name) + r"\.saved-\d{8}T\d{6}\.\d{6}Z")
    # By their stamp (_stamp): not the -wal and -shm a reader of a copy leaves beside it.
    found = path.parent.glob(f"{glob.escape(path.name)}.saved-*")
    return sorted(p.name for p in found if stamped.fullmatch(p.name))


def _stamp() -> str:
    """Now, in a file name: UTC to the microsecond, so names sort by time."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def _saved_as(where: Path, head: Point) -> str:
    return f"what this journal held (up to seq {head.seq}) is saved as {where.name}"


def _continuing(
    path: Path, head: Point, access: JournalAccess | None, busy_timeout: float
) -> sqlite3.Connection | None:
    """A connection to the journal now at ``path``, if it holds this chain to ``head``."""
    try:
        other = connect(path, create=False, busy_timeout=busy_timeout, access=access)
    except JournalError:
        return None
    try:
        if holds_point(other, *head):
            return other
    except sqlite3.Error:
        pass
    other.close()
    return None


def _witness_back(path: Path, witness: Witness, access: JournalAccess) -> Witness | None:
    """The witness made again from the one still held open, if it went; the one at its
    path taken as it is, if another took its place (verification judges it). None if
    neither can be had: the journal goes on without one, which verification and the
    next start report, rather than refuse every write for it."""
    try:
        found = Witness.open(path)
        if found is None:
            found = Witness.create(path, witness.read(), access)
    except (JournalError, OSError) as error:
        log.critical("%s: witness not put back: %s", witness.path, error)
        found = None
    witness.close()
    return found
