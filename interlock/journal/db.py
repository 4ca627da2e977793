"""The SQLite file under the journal: schema, connection settings, row mapping.

Tables:

``entries``  one row per entry, ``seq`` the primary key (assigned by the
             writer as last + 1 inside a ``BEGIN IMMEDIATE`` transaction, so
             several processes can append to one file and still form a chain).
``head``     one row: the seq and hash of the newest entry, updated in the
             same transaction as each append. Without it, deleting the last
             entries would leave a chain that still verifies.
``pruned``   one row per gap left by retention: the retained entries on
             either side and the hash of the last removed entry. A gap in
             ``seq`` without such a row is a removed entry.
``meta``     schema version.

The head is also kept outside the database, in the witness file beside it
(:mod:`interlock.journal.witness`); who may read the files is
:mod:`interlock.journal.files`'s concern.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from interlock.errors import JournalError
from interlock.journal.entries import GENESIS_HASH, Entry
from interlock.journal.files import (
    OWNER_ONLY,
    JournalAccess,
    apply,
    companions,
    create_file,
    make_directory,
)

SCHEMA_VERSION = "1"

# A writer waits this long for another writer's transaction (another process
# appending, or a prune) before giving up with JournalError. The controller
# may ask for less (Journal(busy_timeout=...)): a journal that cannot be
# written is a fault, and a fault should not wait half a minute.
BUSY_TIMEOUT_S = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq       INTEGER PRIMARY KEY,
    wall_time TEXT    NOT NULL,
    mono_time REAL    NOT NULL,
    bench     TEXT    NOT NULL,
    run_id    TEXT    NOT NULL,
    kind      TEXT    NOT NULL,
    actor     TEXT    NOT NULL,
    payload   TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_run ON entries (run_id, seq);
CREATE INDEX IF NOT EXISTS entries_wall ON entries (wall_time);
CREATE TABLE IF NOT EXISTS head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS pruned (
    after_seq   INTEGER NOT NULL,
    before_seq  INTEGER PRIMARY KEY,
    last_hash   TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

ENTRY_COLUMNS = "seq, wall_time, mono_time, bench, run_id, kind, actor, payload, prev_hash, hash"


def connect(
    path: str | Path,
    *,
    create: bool,
    busy_timeout: float = BUSY_TIMEOUT_S,
    access: JournalAccess | None = None,
) -> sqlite3.Connection:
    """Open the journal file with the settings every user of it needs.

    ``create=False`` refuses a missing file instead of silently making an
    empty journal (a typo in ``--journal`` must not "verify" fine). A file
    created here (and its directory) is owner-only, or as ``access`` says;
    ``access`` also sets the existing files' mode and group.
    """
    path = Path(path)
    if not create and not path.exists():
        raise JournalError(f"no journal at {path}")
    if create and not path.exists():
        _create_empty(path, access or OWNER_ONLY)
    # Only on a new (empty) file: on an existing one the pragma would contend
    # for the write lock with the writers already running, for nothing.
    new_file = create and path.stat().st_size == 0
    try:
        # isolation_level=None: transactions are begun explicitly, so a
        # writer can take the write lock (BEGIN IMMEDIATE) before it reads
        # the head it chains to.
        conn = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise JournalError(f"{path}: cannot open journal: {exc}") from exc
    try:
        # Checked before anything is changed: a mistyped path must not turn
        # someone else's database into WAL mode or add tables to it.
        if create:
            _refuse_foreign_database(conn, path)
        else:
            _check_schema(conn, path)
        if new_file:
            # Must precede the first table: lets retention give space back.
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise JournalError(f"{path}: cannot use WAL mode (got {mode})")
        # FULL: a commit is on disk (WAL fsynced) before append() returns;
        # NORMAL would survive a process kill but not a power cut.
        conn.execute("PRAGMA synchronous = FULL")
        if create:
            # One transaction, so a second process creating the same file at
            # the same moment sees either nothing or the whole schema.
            conn.executescript(
                "BEGIN IMMEDIATE;"
                + _SCHEMA
                + f"INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', '{SCHEMA_VERSION}');"
                + "COMMIT;"
            )
            _check_schema(conn, path)
        if access is not None:
            # After the first read: SQLite has made -wal and -shm (with our group) by now.
            apply([path, *companions(path)], access)
        return conn
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.Error):
            raise JournalError(f"{path}: cannot open journal: {exc}") from exc
        raise


def _create_empty(path: Path, access: JournalAccess) -> None:
    """An empty file with ``access``: SQLite takes it as a new database, and gives
    ``-wal`` and ``-shm`` its mode."""
    make_directory(path.parent, access)
    try:
        os.close(create_file(path, access))
    except FileExistsError:
        pass  # another process is creating the journal: its schema step is idempotent
    except OSError as exc:
        raise JournalError(f"{path}: cannot create journal: {exc}") from exc


def holds_point(conn: sqlite3.Connection, seq: int, hash_: str) -> bool:
    """Is (seq, hash) on this journal's chain: an entry, or the last of a pruned range?"""
    if seq == 0:
        return hash_ == GENESIS_HASH
    row = conn.execute("SELECT hash FROM entries WHERE seq = ?", (seq,)).fetchone()
    if row is not None:
        return row[0] == hash_
    # Removed by retention: the entry after the range chains to the last one's hash.
    row = conn.execute("SELECT last_hash FROM pruned WHERE before_seq = ?", (seq + 1,)).fetchone()
    return row is not None and row[0] == hash_


def _refuse_foreign_database(conn: sqlite3.Connection, path: Path) -> None:
    try:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"{path}: not a journal: {exc}") from exc
    names = {row[0] for row in rows}
    if names and "meta" not in names:
        raise JournalError(f"{path}: not a journal (a database with other tables)")


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"{path}: not a journal: {exc}") from exc
    if row is None or row[0] != SCHEMA_VERSION:
        raise JournalError(f"{path}: unknown journal schema {row[0] if row else None!r}")


def row_to_entry(row: tuple) -> Entry:
    seq, wall_time, mono_time, bench, run_id, kind, actor, payload, prev_hash, hash_ = row
    return Entry(
        seq=seq,
        wall_time=wall_time,
        mono_time=mono_time,
        bench=bench,
        run_id=run_id,
        kind=kind,
        actor=actor,
        payload_json=payload,
        prev_hash=prev_hash,
        hash=hash_,
    )
