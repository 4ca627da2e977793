"""The witness: the chain's head, kept outside the database (``<journal>.head``).

Whoever can change the database can delete its newest entries and move its
``head`` record to match, or empty it: the chain left behind verifies. The
witness is a second record of the head, in a file of its own, that such an
edit does not touch: :mod:`interlock.journal.verify` refuses a database
that ends before the witness's entry or does not hold it.

One fixed-size record, rewritten in place by one ``pwrite`` after each
commit, with a CRC: the head (seq and hash of the newest entry committed)
and the checkpoint (how far the chain has been verified, where the service's
start-up check resumes). It is written *after* the commit, without an fsync
of its own, so after a crash it may lag the database but never lead it:
verification accepts a database that extends past the witness, as long as
the witness's entry is on its chain. Where an entry claims the witness
durable at some seq (the start-up check's, a prune's), it was fsynced first,
and a witness older than that claim has been rolled back.

Several writers (threads, processes) advance it under ``flock``, comparing
first: a writer moves it only from the head its own transaction started at
(or from an older head still on its chain), so the witness never goes back
when two race, and a witness that holds what the database no longer has
(evidence of a cut) is left as it is until an operator acknowledges it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from interlock.errors import JournalCorrupt, JournalError
from interlock.journal.entries import GENESIS_HASH
from interlock.journal.files import JournalAccess, access_of, create_file, sync_directory

log = logging.getLogger(__name__)

SUFFIX = ".head"

_MAGIC = b"ILKWIT1\n"
_POINT = struct.Struct(">Q32s")  # seq, hash
_LAYOUT = struct.Struct(">8sQ32sQ32s")  # magic, head seq and hash, checkpoint seq and hash
_CRC = struct.Struct(">I")
SIZE = _LAYOUT.size + _CRC.size
_HEAD = slice(len(_MAGIC), len(_MAGIC) + _POINT.size)
_CHECKED = slice(_HEAD.stop, _LAYOUT.size)

# A commit's witness write waits this long for another writer's (a few
# microseconds each) before it gives up: the witness then lags, which is
# accepted, and the next commit brings it up.
ADVANCE_WAIT_S = 0.05
# An explicit write (an acknowledgement, a check) waits longer, then fails.
EXPLICIT_WAIT_S = 2.0


class Point(NamedTuple):
    """A place on the chain: an entry's seq and hash (seq 0: before the first)."""

    seq: int
    hash: str


START = Point(0, GENESIS_HASH)


@dataclass(frozen=True)
class WitnessRecord:
    head: Point  # the newest entry a writer saw committed
    checked: Point  # the chain is verified up to here


@dataclass(frozen=True)
class WitnessRead:
    """What was found beside a journal: a record, no file (None), or a garbled one."""

    path: Path
    record: WitnessRecord | None
    problem: str | None = None


def witness_path(journal_path: str | Path) -> Path:
    return Path(f"{journal_path}{SUFFIX}")


def _packed(point: Point) -> bytes:
    return _POINT.pack(point.seq, bytes.fromhex(point.hash))


def _sealed(head: bytes, checked: bytes) -> bytes:
    body = _MAGIC + head + checked
    return body + _CRC.pack(zlib.crc32(body))


def encode(record: WitnessRecord) -> bytes:
    return _sealed(_packed(record.head), _packed(record.checked))


def decode(data: bytes) -> WitnessRecord:
    """The record in ``data``; JournalCorrupt naming what is wrong with it."""
    if len(data) != SIZE:
        raise JournalCorrupt(None, f"{len(data)} bytes where a record has {SIZE}")
    body, (crc,) = data[: _LAYOUT.size], _CRC.unpack(data[_LAYOUT.size :])
    if zlib.crc32(body) != crc:
        raise JournalCorrupt(None, "its checksum does not match")
    magic, head_seq, head_hash, checked_seq, checked_hash = _LAYOUT.unpack(body)
    if magic != _MAGIC:
        raise JournalCorrupt(None, "not a witness record")
    return WitnessRecord(Point(head_seq, head_hash.hex()), Point(checked_seq, checked_hash.hex()))


def _lock(fd: int, operation: int, wait: float) -> bool:
    """Take ``flock(operation)``, waiting at most ``wait``; False if not had by then."""
    deadline = None
    pause = 0.0002
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EINTR):
                raise
        # Held by another writer (for microseconds, as a rule): wait, but not long.
        now = time.monotonic()
        deadline = deadline if deadline is not None else now + wait
        if now >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.005)


@contextlib.contextmanager
def _flocked(fd: int, operation: int, wait: float) -> Iterator[bool]:
    """Hold ``flock(operation)`` for the block; yields False if not had within ``wait``."""
    if not _lock(fd, operation, wait):
        yield False
        return
    try:
        yield True
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def read_witness(journal_path: str | Path) -> WitnessRead:
    """The witness beside ``journal_path`` as it is now (JournalError if it cannot be read)."""
    path = witness_path(journal_path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return WitnessRead(path, None)
    except OSError as exc:
        raise JournalError(f"cannot read the journal's witness {path}: {exc}") from exc
    try:
        with _flocked(fd, fcntl.LOCK_SH, EXPLICIT_WAIT_S) as locked:
            if not locked:
                raise JournalError(f"{path}: witness held by a writer for {EXPLICIT_WAIT_S:g} s")
            data = os.pread(fd, SIZE + 1, 0)
    except OSError as exc:
        raise JournalError(f"cannot read the journal's witness {path}: {exc}") from exc
    finally:
        os.close(fd)
    try:
        return WitnessRead(path, decode(data))
    except JournalCorrupt as exc:
        return WitnessRead(path, None, str(exc))


class Witness:
    """A writer's handle on the witness file."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def open(cls, journal_path: str | Path) -> Witness | None:
        """The existing witness, or None if there is none."""
        path = witness_path(journal_path)
        try:
            return cls(path, os.open(path, os.O_RDWR | os.O_CLOEXEC))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise JournalError(f"cannot open the journal's witness {path}: {exc}") from exc

    @classmethod
    def create(
        cls, journal_path: str | Path, record: WitnessRecord, access: JournalAccess
    ) -> Witness:
        """Create the witness holding ``record``, durably; open it if another process did."""
        path = witness_path(journal_path)
        try:
            fd = create_file(path, access)
        except FileExistsError:
            witness = cls.open(journal_path)
            if witness is None:  # made and removed meanwhile: nothing sensible to do but fail
                raise JournalError(f"{path}: witness vanished while being created") from None
            return witness
        except OSError as exc:
            raise JournalError(f"cannot create the journal's witness {path}: {exc}") from exc
        witness = cls(path, fd)
        try:
            os.pwrite(fd, encode(record), 0)
            os.fsync(fd)
            # Without this a power cut could leave the journal and no witness beside it.
            sync_directory(path.parent)
        except OSError as exc:
            witness.close()
            raise JournalError(f"cannot write the journal's witness {path}: {exc}") from exc
        return witness

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _descriptor(self) -> int:
        if self._fd is None:
            raise JournalError(f"{self.path}: witness is closed")
        return self._fd

    def identity(self) -> tuple[int, int]:
        """(device, inode) of the file this witness holds open, wherever its path points."""
        found = os.fstat(self._descriptor())
        return found.st_dev, found.st_ino

    def access(self) -> JournalAccess:
        """Who may read the file this witness holds open (its group, if it may read it)."""
        return access_of(os.fstat(self._descriptor()))

    def read(self) -> WitnessRecord:
        fd = self._descriptor()
        with _flocked(fd, fcntl.LOCK_SH, EXPLICIT_WAIT_S) as locked:
            if not locked:
                raise JournalError(f"{self.path}: witness held by a writer")
            return decode(os.pread(fd, SIZE + 1, 0))

    def advance(
        self,
        start: Point,
        new: Point,
        on_chain: Callable[[Point], bool],
        *,
        checked: Point | None = None,
        durable: bool = False,
    ) -> bool:
        """After a commit that moved the head from ``start`` to ``new``: record ``new``.

        Only from ``start`` itself, or from an older head ``on_chain`` still
        holds (a writer that died between its commit and this write); a
        witness ahead (another writer) or off this chain (a cut, a rewrite)
        is left alone. ``checked`` moves the checkpoint too. ``durable``
        fsyncs (only for a witness an entry will then claim). True once
        written; False if left alone, or the lock was not had in time.
        """
        # On every commit: kept to a few system calls and byte compares.
        fd = self._descriptor()
        if not _lock(fd, fcntl.LOCK_EX, ADVANCE_WAIT_S):
            log.warning("%s: witness busy; left at its value for the next commit", self.path)
            return False
        try:
            data = os.pread(fd, SIZE + 1, 0)
            intact = (
                len(data) == SIZE
                and data[: len(_MAGIC)] == _MAGIC
                and zlib.crc32(data[: _LAYOUT.size]) == _CRC.unpack(data[_LAYOUT.size :])[0]
            )
            if not intact or data[_HEAD] != _packed(start):
                try:
                    current = decode(data)
                except JournalCorrupt as exc:
                    log.critical("%s: witness unreadable (%s): left as it is", self.path, exc)
                    return False
                if not (current.head.seq < start.seq and on_chain(current.head)):
                    return False
            os.pwrite(
                fd,
                _sealed(_packed(new), data[_CHECKED] if checked is None else _packed(checked)),
                0,
            )
            if durable:
                os.fsync(fd)
            return True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def write(self, record: WitnessRecord) -> None:
        """Overwrite with ``record``, durably (an acknowledged break re-anchors it)."""
        fd = self._descriptor()
        with _flocked(fd, fcntl.LOCK_EX, EXPLICIT_WAIT_S) as locked:
            if not locked:
                raise JournalError(f"{self.path}: witness held for {EXPLICIT_WAIT_S:g} s")
            os.pwrite(fd, encode(record), 0)
            os.fsync(fd)
