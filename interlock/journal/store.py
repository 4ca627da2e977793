"""The journal writer: durable, hash-chained, append-only.

:class:`Journal` is what the controller holds. Every ``append`` (and every
kind-specific helper built on it) returns only once the entry is committed
to disk, so "journal, then act" is simply "call, then act". Commands go
through :meth:`Journal.command_intent`, which hands back the only thing a
driver may send (:mod:`interlock.journal.intent`).

Not every entry needs a commit of its own. :meth:`Journal.stage` records an
entry that is written with the *next* commit, whichever it is: a request and
its verdict go to disk in the same transaction as the command intent they
lead to, and a readback is on disk before the next command is sent (that is,
before anything acts on it). :meth:`Journal.flush` writes what is staged on
its own; the controller's monitor flushes every pass while a net is live,
and otherwise what has waited a whole period, so a staged entry is never
older than two monitor periods. Command intents are never staged.

Appends are serialised twice: a lock for the threads of this process (the
monitor loop and the API threads share one connection) and ``BEGIN
IMMEDIATE`` for other processes on the same file. The newest hash is read
inside that transaction, so the chain stays linear however many writers
there are.

After each commit the witness beside the database (:mod:`interlock.journal.witness`)
is moved to the new head: the head kept where a cut of the database does not
reach it.

Before each commit the journal asks whether its files are still the ones it
opened (:class:`~interlock.journal.files.OnDisk`): SQLite writes on, without
an error, to files removed under it. When one went, the write that found it
is refused and a thread of the journal puts back what it holds open
(:meth:`Journal._begin_putting_back`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from interlock.errors import JournalError
from interlock.journal.db import BUSY_TIMEOUT_S, ENTRY_COLUMNS, connect, holds_point, row_to_entry
from interlock.journal.entries import (
    GENESIS_HASH,
    KINDS,
    Entry,
    Kind,
    canonical_payload,
    data_fields,
    entry_hash,
    file_digest,
    writable_text,
)
from interlock.journal.files import (
    OWNER_ONLY,
    JournalAccess,
    OnDisk,
    apply,
    companions,
    file_identity,
)
from interlock.journal.intent import (
    _JOURNAL_TOKEN,
    DurableIntent,
    QueryIntent,
    is_off_only,
    is_pure_query,
)
from interlock.journal.putback import put_back
from interlock.journal.witness import START, Point, Witness, WitnessRecord

log = logging.getLogger(__name__)

WALL_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

# How long an off command on its way to the safe state waits for the journal's write
# lock (another thread's or process's write) before it goes out unjournaled.
SAFE_OFF_WAIT_S = 0.05

# How long the writing of a staged backlog waits for a busy journal; and, when it could
# not be written, how long before a stager tries again (the monitor flushes meanwhile).
BACKLOG_WAIT_S = 0.01
BACKLOG_RETRY_S = 0.1

# A BEGIN that took longer waited for another writer (SQLite's busy handler sleeps
# 1 ms first): the files are looked at again once it has the lock.
WAITED_S = 0.0005

# Staged entries beyond this many are written at once, whoever staged them.
MAX_STAGED = 1000

# No more routine entries (ROUTINE_KINDS: requests, verdicts, readings, queries) are
# kept waiting than this (about 1 KiB each) while the journal cannot take them (its disk
# full, say, or held by another process for good): beyond, each is counted (not_kept)
# and let go, so that a flood meeting such a journal cannot grow the service's memory
# without end. A journal that writes no more at all keeps MAX_STAGED of them. The others
# (faults, state changes, off commands sent unjournaled, an operator's notes) have
# RESERVE more places, so that a later stop's record is not let go for a flood's.
MAX_HELD = 20 * MAX_STAGED
RESERVE = MAX_STAGED
ROUTINE_KINDS = frozenset({"request", "verdict", "measurement", "readback"})

# After a write failed (not busy: a full disk, an I/O error), none is tried for this
# long: each is refused at once with the same error. Trying costs as much as writing
# the whole backlog, and nothing that waits for the journal (an off command of the
# safe state above all) should wait for a try that will fail.
FAILED_WAIT_S = 0.5

_INSERT = f"INSERT INTO entries ({ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_UPSERT_HEAD = (
    "INSERT INTO head (id, seq, hash) VALUES (1, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash"
)

# Stands in for a Pending in a staged payload's JSON until its seq is known
# (see _encode_staged). Random, so no payload holds it by chance; and one
# that holds it on purpose is caught by counting.
_REF_TOKEN = secrets.token_hex(16)


class Pending:
    """An entry staged for the next commit. ``seq`` is set once it is written.

    A staged entry may refer to another by putting its :class:`Pending` in its
    payload (a verdict naming its request): it is replaced by that entry's seq.
    """

    __slots__ = (
        "_payload_json",
        "_refs",
        "_wall_time",
        "actor",
        "kind",
        "mono",
        "payload",
        "run_id",
        "seq",
        "wall",
    )

    def __init__(  # type: ignore[no-untyped-def]
        self, kind, payload, actor, run_id, wall, mono, wall_time="", payload_json="", refs=()
    ) -> None:
        self.kind = kind
        self.payload = payload
        self.actor = actor
        self.run_id = run_id
        self.wall = wall
        self.mono = mono
        self.seq: int | None = None
        # What Journal._stage made of it, once, at staging: the text written.
        self._wall_time: str = wall_time
        self._payload_json: str = payload_json
        self._refs: tuple[tuple[str, Pending], ...] = refs


class Clock(Protocol):
    def wall(self) -> datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    def wall(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


# The last second format_wall wrote, and its text up to the seconds: entries come many
# a second, and the text of the second is most of the cost of formatting one.
_second: tuple[tuple[int, int, int, int, int, int], str] = ((0, 0, 0, 0, 0, 0), "")


def format_wall(moment: datetime) -> str:
    """UTC, fixed width, so wall times sort and compare as text."""
    global _second
    if moment.tzinfo is UTC and type(moment) is datetime and moment.year >= 1000:
        key = (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)
        last = _second  # one read: another thread may replace it meanwhile
        if last[0] != key:
            last = _second = (key, moment.strftime("%Y-%m-%dT%H:%M:%S"))
        return f"{last[1]}.{moment.microsecond:06d}Z"
    if moment.tzinfo is None:
        raise JournalError(f"wall time must be timezone-aware, got {moment!r}")
    utc = moment.astimezone(UTC)
    if type(utc) is datetime and utc.year >= 1000:
        # The same text as strftime(WALL_FORMAT), which costs twice as much:
        # "2026-03-14T09:30:00.000000+00:00" less the offset. (strftime does
        # not pad a year below 1000; those take the slow path.)
        return utc.isoformat(timespec="microseconds")[:-6] + "Z"
    return utc.strftime(WALL_FORMAT)


def _found(changed: list[tuple[Path, str]]) -> str:
    """What became of a journal's files (``"journal.sqlite was removed; ..."``)."""
    return "; ".join(f"{path.name} was {how}" for path, how in changed)


def new_run_id(moment: datetime) -> str:
    # Time first so run ids sort by start; random tail so two benches (or two
    # arms in one second) never collide.
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def _encode_staged(
    payload: Mapping[str, Any] | None,
) -> tuple[str, tuple[tuple[str, Pending], ...]]:
    """A staged payload's canonical JSON, encoded now, and where its Pendings go.

    Encoding at staging refuses an unwritable payload before it can fail every
    later commit, and records the payload as it is now, whatever the caller
    does with it afterwards. A :class:`Pending` value (a verdict's request)
    has no seq yet: it is encoded as a marker string, and each marker (quoted,
    as it appears in the JSON) is listed with its Pending to be replaced by the
    seq when written (:func:`_resolve`). The marker appears nowhere else, so
    the result is byte for byte the JSON of the payload with the seqs in it.
    """
    if payload is None:
        return canonical_payload(payload), ()
    refs = [key for key, value in payload.items() if isinstance(value, Pending)]
    if not refs:
        return canonical_payload(payload), ()
    token = _REF_TOKEN
    while True:
        marked = dict(payload)
        swaps = []
        for i, key in enumerate(refs):
            marker = f"{token}:{i}"
            swaps.append((f'"{marker}"', payload[key]))
            marked[key] = marker
        encoded = canonical_payload(marked)
        # A quoted marker can only be a whole JSON string (hex digits never
        # follow a closing quote), so one occurrence is the Pending's own.
        if all(encoded.count(quoted) == 1 for quoted, _ in swaps):
            return encoded, tuple(swaps)
        token = secrets.token_hex(16)  # the payload holds a marker itself: take another


def _command_payload(
    instrument: str, raw: bytes, context: Mapping[str, Any], **flags: Any
) -> dict[str, Any]:
    """A ``command`` entry's payload: the context, the instrument, the exact bytes."""
    return {**context, "instrument": instrument, **flags, **data_fields(raw)}


def _routine(kind: str, payload: Mapping[str, Any] | None) -> bool:
    """Whether an entry is of what a flood is made of (see MAX_HELD): not a fault, a
    state change, an off command sent unjournaled or an operator's note."""
    return kind in ROUTINE_KINDS or (kind == "command" and bool((payload or {}).get("query")))


def _resolve(encoded: str, refs: tuple[tuple[str, Pending], ...]) -> str:
    """Put each referred entry's seq (JSON null if it has none) where its marker is."""
    for quoted, pending in refs:
        seq = pending.seq
        encoded = encoded.replace(quoted, "null" if seq is None else str(int(seq)), 1)
    return encoded


class Journal:
    """The bench's durable, hash-chained journal.

    ``bench`` is written into every entry. ``actor`` is the default actor
    (the controller itself); helpers that record what a person or client did
    take theirs explicitly. ``run_id`` is set by :meth:`begin_run` (at arming)
    and cleared by :meth:`end_run`; entries outside a run carry ``""``.
    ``busy_timeout`` bounds how long an append waits for another process's
    write (a prune, another writer) before it fails with JournalError.
    ``access`` says who may read the files (default: a new journal is
    owner-only, an existing one keeps its modes); see :mod:`interlock.journal.files`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        bench: str,
        actor: str = "controller",
        clock: Clock | None = None,
        busy_timeout: float = BUSY_TIMEOUT_S,
        access: JournalAccess | None = None,
    ) -> None:
        self.path = Path(path)
        self.bench = bench
        self.actor = actor
        self.clock: Clock = clock or SystemClock()
        self.run_id = ""
        self._lock = threading.Lock()
        self._staged: list[Pending] = []
        self._busy_timeout = busy_timeout
        self._bound = threading.local()  # see waiting_at_most()
        # The connection's busy timeout as last set, ms (None: not set by us yet).
        # Changed only when a write needs another, not twice per write: every write
        # of a setpoint change has the same bound, and the two PRAGMAs cost 35 us
        # a change there (3 us in a tight loop; caches are cold after an exchange).
        self._busy_ms: int | None = None
        # Off commands sent without their record on disk (see safe_off_intent).
        self.unjournaled = 0
        # Entries staged once it could no longer write, and not kept (see _stage).
        self.not_kept = 0
        # A backlog's write failed: no stager tries again before this (monotonic clock);
        # and the thousands of entries it had when that was last logged.
        self._backlog_retry_at = 0.0
        self._backlog_said = 0
        # The last write that failed (not busy), and until when none is tried again.
        self._failed: tuple[float, str] = (0.0, "")
        # Why the last write failed (not busy), until one succeeds: what a status says,
        # however long ago the back-off above ended.
        self._failing: str | None = None
        self._tx_head: Point | None = None  # the chain's head inside a write transaction
        self._tx_start: Point | None = None
        # Set inside a write transaction: the witness's checkpoint moves here with
        # the commit (a check verified the chain so far); or the witness is
        # overwritten with the new head (an operator acknowledged what it held).
        self._tx_checked: Point | None = None
        self._tx_reanchor = False
        self._tx_last_row: tuple[Any, ...] = ()  # the last row a transaction wrote in one go
        self._staged_lock = threading.Lock()
        # How many of the first staged entries a write transaction has taken (they may
        # no longer be replaced: see answer()).
        self._writing = 0
        self._access = access
        self._conn: sqlite3.Connection | None = connect(
            self.path, create=True, busy_timeout=busy_timeout, access=access
        )
        try:
            self._witness: Witness | None = self._open_witness(self._conn)
        except BaseException:
            self._conn.close()
            raise
        # The files as opened, asked again before every commit (see _write_transaction);
        # and why nothing can be written any more, once a file went and could not be
        # put back.
        self._on_disk = self._files_now()
        self._lost: str | None = None
        self._putting_back: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    def _open_witness(self, conn: sqlite3.Connection) -> Witness | None:
        """The witness; a journal with nothing in it yet gets a new one. A journal
        that holds entries and no witness stays without: verification says so,
        and adopting it is an explicit, journaled act (see startup)."""
        witness = Witness.open(self.path)
        if witness is not None:
            if self._access is not None:
                apply([witness.path], self._access)
            return witness
        try:
            empty = conn.execute(
                "SELECT NOT EXISTS (SELECT 1 FROM entries) AND NOT EXISTS (SELECT 1 FROM head)"
            ).fetchone()[0]
        except sqlite3.Error as exc:
            raise JournalError(f"{self.path}: cannot read journal: {exc}") from exc
        if not empty:
            log.warning("%s: no witness beside this journal: its head is not anchored", self.path)
            return None
        return Witness.create(self.path, WitnessRecord(START, START), self._access or OWNER_ONLY)

    def close(self) -> None:
        self.try_again_now()  # the last chance: tried, whenever the last one failed
        try:
            while True:
                self._await_put_back()
                with contextlib.suppress(JournalError):
                    self.flush()
                self._await_put_back()  # one the flush began
                with self._lock:
                    if self._putting_back is not None:  # begun meanwhile by another write
                        continue
                    # Nothing written since found it (nothing was staged): put back now,
                    # closing may wait; or what the connection holds goes with it.
                    if self._conn is not None and self._lost is None:
                        went = self._on_disk.changed()
                        if went:
                            self._put_back_safely(self._said(went))
                break
            with contextlib.suppress(JournalError):
                self.flush()  # what waited for a put-back, and the record of it
        finally:
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                if self._witness is not None:
                    self._witness.close()
                    self._witness = None

    def _await_put_back(self) -> None:
        putting_back = self._putting_back
        if putting_back is not None:  # what it puts back is the record: let it finish
            putting_back.join()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def begin_run(self, run_id: str | None = None) -> str:
        self.run_id = run_id or new_run_id(self.clock.wall())
        return self.run_id

    def end_run(self) -> None:
        self.run_id = ""

    # -- writing -----------------------------------------------------------

    @contextlib.contextmanager
    def _write_transaction(
        self, last: Callable[[], Pending] | None = None
    ) -> Iterator[sqlite3.Connection]:
        """Hold the write lock (threads and processes) for one transaction.

        Waits for it (another thread's write, another process's) as long as the
        busy timeout, or as :meth:`waiting_at_most` allows: JournalError after that.
        ``last`` makes one more entry, written after what was staged and in the same
        statement: made once the lock is held, so its times come after theirs.
        """
        until, why = self._failed
        if until and time.monotonic() < until:
            raise JournalError(why)  # the same error, not tried again yet
        wait = getattr(self._bound, "seconds", None)
        if not self._lock.acquire(timeout=-1 if wait is None else wait):
            raise JournalError(f"{self.path}: journal busy for {wait:g} s (a write in progress)")
        try:
            if self._lost is not None:
                raise JournalError(self._lost)
            conn = self._conn
            if conn is None:
                raise JournalError(f"{self.path}: journal is closed")
            if self._putting_back is not None:
                raise JournalError(f"{self.path}: being put back (a file of it went while in use)")
            self._refuse_if_changed(conn, began=False)
            try:
                # Left as set after the write: the next write sets its own, and a
                # read (WAL: it waits for no writer) seldom waits at all.
                if wait is None:
                    busy_ms = round(self._busy_timeout * 1000)
                else:
                    busy_ms = max(1, round(wait * 1000))
                if busy_ms != self._busy_ms:
                    self._busy_ms = None  # unknown, should the PRAGMA fail
                    conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
                    self._busy_ms = busy_ms
                asked = time.monotonic()
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._failure(f"{self.path}: cannot start a write: {exc}", exc) from exc
            if time.monotonic() - asked > WAITED_S:
                # A BEGIN that waited for another writer may have waited while the files
                # went and that writer put them back: asked again, once the lock is had.
                self._refuse_if_changed(conn, began=True)
            with self._staged_lock:
                staged = self._staged[:]
                self._writing = len(staged)  # these are this transaction's now
            rows = staged
            try:
                if last is not None:
                    rows = [*staged, last()]
                # The chain's head is read once per transaction and written once at its end.
                self._tx_start = self._head(conn)
                # What was staged goes first: it happened before what is written now.
                self._tx_head = (
                    self._insert_staged(conn, rows, self._tx_start) if rows else self._tx_start
                )
                yield conn
                if self._tx_head != self._tx_start:
                    conn.execute(_UPSERT_HEAD, self._tx_head)
                conn.execute("COMMIT")
                self._failing = None
                with self._staged_lock:
                    del self._staged[: len(staged)]
                    self._writing = 0
                committed = (self._tx_start, self._tx_head, self._tx_checked, self._tx_reanchor)
            except BaseException as exc:
                with self._staged_lock:
                    self._writing = 0  # still staged, for the next commit
                for pending in rows:
                    pending.seq = None
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._failure(f"{self.path}: write failed: {exc}", exc) from exc
                raise
            finally:
                self._tx_head = None
                self._tx_checked = None
                self._tx_reanchor = False
            # After the commit, never before: the witness may lag the database, never lead it.
            self._witness_after_commit(conn, *committed)
        finally:
            self._lock.release()

    def try_again_now(self) -> None:
        """The next write is tried, however recently one failed: for an operator's action,
        which must get the journal's answer now (space freed meanwhile, say), not the
        error of a failure that may be gone."""
        self._failed = (0.0, "")

    def _failure(self, why: str, error: sqlite3.Error) -> JournalError:
        """The JournalError of a write SQLite refused; unless it only found the journal
        busy, no write is tried again for FAILED_WAIT_S."""
        # The primary code: SQLite's busy handler ends on any SQLITE_BUSY_* as on SQLITE_BUSY.
        primary = getattr(error, "sqlite_errorcode", 0) & 0xFF
        if primary not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            self._failed = (time.monotonic() + FAILED_WAIT_S, why)
            self._failing = why
        return JournalError(why)

    def _refuse_if_changed(self, conn: sqlite3.Connection, *, began: bool) -> None:
        """JournalError, and the put-back begun, if a file is no longer the one held."""
        changed = self._on_disk.changed()
        if changed:
            if began:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise JournalError(self._begin_putting_back(changed))

    def _files_now(self) -> OnDisk:
        """The files as held now: the database's by their paths, the witness by the file
        this journal holds open (so one that goes at any time is seen at the next commit).
        One that cannot be looked at is not watched."""
        held: list[tuple[Path, tuple[int, int] | None]] = []
        for path in (self.path, *companions(self.path)):
            try:
                held.append((path, file_identity(path)))
            except OSError:
                held.append((path, None))
        witness = self._witness
        if witness is not None:
            with contextlib.suppress(OSError, JournalError):
                held.append((witness.path, witness.identity()))
        return OnDisk(tuple(held))

    @property
    def putting_back(self) -> bool:
        """Whether files that went are being put back (see :meth:`_begin_putting_back`)."""
        return self._putting_back is not None

    def _said(self, changed: list[tuple[Path, str]]) -> str:
        return f"{self.path}: {_found(changed)} while in use"

    def _begin_putting_back(self, changed: list[tuple[Path, str]]) -> str:
        """Files of the journal went (or others took their places) while it held them open.
        Returns why the write that found it is refused: not a commit anyone asked for,
        and whoever asked (the controller trips on it) must hear of it at once. What the
        journal holds is put back (:mod:`interlock.journal.putback`) by a thread of its
        own: the copy takes time that neither that write nor the trip it starts may wait
        for. The thread holds the write lock meanwhile; the safe state's off commands do
        not wait for it (:meth:`_off_intent`). Called holding the write lock."""
        said = self._said(changed)
        thread = threading.Thread(
            target=self._put_back, args=(said,), name="interlock-journal-put-back"
        )
        self._putting_back = thread
        try:
            thread.start()  # it waits for the write lock this write holds
        except RuntimeError:  # no thread to be had: put back here, this write waits
            self._putting_back = None
            self._put_back_safely(said)
        message = (
            f"{said}: being put back from what this journal holds open; the write that "
            "found it was refused"
        )
        log.critical("%s", message)
        return message

    def _put_back(self, said: str) -> None:
        with self._lock:
            try:
                self._put_back_safely(said)
            finally:
                self._putting_back = None

    def _put_back_safely(self, said: str) -> None:
        """:meth:`_put_back_now`, whatever it meets: an error no part is meant to raise
        stops the journal writing, saying so, rather than reach a writer (or a close)."""
        try:
            self._put_back_now(said)
        except Exception as error:
            self._lost = (
                f"{said}: not put back ({type(error).__name__}: {error}); nothing more is "
                "written to it"
            )
            log.critical("%s", self._lost)

    def _put_back_now(self, said: str) -> None:
        """Called holding the write lock: the files as they are now (more may have gone
        since the write that found it) put back, or ``_lost`` says why not."""
        conn = self._conn
        if conn is None:
            self._lost = f"{said}: closed before it could be put back"
            log.critical("%s", self._lost)
            return
        changed = self._on_disk.changed()
        if not changed:  # put back meanwhile (by a close, or an earlier round)
            return
        try:
            head = self._head(conn)
        except sqlite3.Error as error:
            self._lost = f"{said}: cannot read what it holds ({error}); nothing more is written"
            log.critical("%s", self._lost)
            return
        gone = {path for path, _ in changed}
        outcome = put_back(
            self.path,
            conn,
            self._witness,
            self._on_disk,
            gone,
            head,
            self._access,
            self._busy_timeout,
        )
        self._conn, self._witness, self._busy_ms = outcome.conn, outcome.witness, None
        if not outcome.goes_on:
            self._lost = f"{said}: {outcome.how}; nothing more is written to it"
            log.critical("%s", self._lost)
            return
        self._on_disk = self._files_now()
        with self._staged_lock:  # on disk with the next commit, to the files put back
            self._staged.append(
                self._pending(
                    Kind.JOURNAL,
                    {
                        "action": "put back",
                        "found": _found(changed),
                        "how": outcome.how,
                        "last": head.seq,
                    },
                    None,
                    "",
                )
            )
        log.critical("%s: %s (entries up to seq %d: nothing lost)", said, outcome.how, head.seq)

    def _witness_after_commit(
        self,
        conn: sqlite3.Connection,
        start: Point,
        head: Point,
        checked: Point | None,
        reanchor: bool,
    ) -> None:
        if reanchor:
            record = WitnessRecord(head, checked or head)
            if self._witness is None:
                self._witness = Witness.create(self.path, record, self._access or OWNER_ONLY)
                self._on_disk = self._files_now()  # watched from now on, as the others
            try:
                self._witness.write(record)
            except OSError as exc:
                raise JournalError(f"{self._witness.path}: cannot write witness: {exc}") from exc
            return
        if self._witness is None or (head == start and checked is None):
            return
        try:
            self._witness.advance(
                start, head, lambda point: holds_point(conn, *point), checked=checked
            )
        except (OSError, sqlite3.Error, JournalError) as exc:
            # The entries are committed: the write stands, and the witness lags
            # (which verification accepts) until a later commit moves it.
            log.error("%s: witness not moved to seq %d: %s", self._witness.path, head.seq, exc)

    def _claim_witness(
        self, conn: sqlite3.Connection, *, checked: Point | None = None
    ) -> Point | None:
        """Inside a write transaction: make the witness hold the committed head,
        durably, so that an entry of this transaction may say so ("witnessed"):
        a witness found older than such a claim was rolled back. ``checked``:
        the chain is verified up to there, the checkpoint moves there too.
        None if the witness is missing or holds something else (then nothing
        is claimed)."""
        start = self._tx_start
        if self._witness is None or start is None:
            return None
        try:
            written = self._witness.advance(
                start,
                start,
                lambda point: holds_point(conn, *point),
                checked=checked,
                durable=True,
            )
        except (OSError, sqlite3.Error, JournalError) as exc:
            log.error("%s: witness not made durable: %s", self._witness.path, exc)
            return None
        return start if written else None

    def _head(self, conn: sqlite3.Connection) -> Point:
        row = conn.execute("SELECT seq, hash FROM head WHERE id = 1").fetchone()
        return Point(0, GENESIS_HASH) if row is None else Point(row[0], row[1])

    def _insert_staged(self, conn: sqlite3.Connection, staged: list[Pending], head: Point) -> Point:
        """Write staged entries, in order, after ``head``; returns the new head.

        Each pending gets its seq as its row is made, so a later one naming it
        (a verdict its request) finds it.
        """
        seq, prev_hash = head
        bench = self.bench
        default_actor = self.actor
        rows = []
        for pending in staged:
            seq += 1
            actor = default_actor if pending.actor is None else pending.actor
            payload_json = pending._payload_json
            if pending._refs:
                payload_json = _resolve(payload_json, pending._refs)
            fields = (
                seq,
                pending._wall_time,
                pending.mono,
                bench,
                pending.run_id,
                pending.kind,
                actor,
                payload_json,
                prev_hash,
            )
            prev_hash = entry_hash(*fields)
            rows.append((*fields, prev_hash))
            pending.seq = seq
        conn.executemany(_INSERT, rows)
        self._tx_last_row = rows[-1]
        return Point(seq, prev_hash)

    def _insert(
        self,
        conn: sqlite3.Connection,
        kind: str,
        payload: Mapping[str, Any] | None,
        actor: str | None,
        run_id: str | None,
        *,
        wall: datetime | None = None,
        mono: float | None = None,
    ) -> Entry:
        if kind not in KINDS:
            raise JournalError(f"unknown entry kind {kind!r} (known: {', '.join(sorted(KINDS))})")
        if payload is not None and any(isinstance(v, Pending) for v in payload.values()):
            payload = {k: v.seq if isinstance(v, Pending) else v for k, v in payload.items()}
        # Only ever called inside _write_transaction, which holds the head.
        seq, prev_hash = self._tx_head
        seq += 1
        wall_time = format_wall(wall if wall is not None else self.clock.wall())
        mono_time = float(mono if mono is not None else self.clock.monotonic())
        bench = self.bench
        run_id = self.run_id if run_id is None else run_id
        kind = str(kind)
        actor = writable_text(self.actor if actor is None else actor, "actor")
        payload_json = canonical_payload(payload)
        fields = (seq, wall_time, mono_time, bench, run_id, kind, actor, payload_json, prev_hash)
        hash_ = entry_hash(*fields)
        conn.execute(_INSERT, (*fields, hash_))
        self._tx_head = Point(seq, hash_)
        return Entry(*fields, hash_)

    def append(
        self,
        kind: str,
        payload: Mapping[str, Any] | None = None,
        *,
        actor: str | None = None,
        run_id: str | None = None,
    ) -> Entry:
        """Append one entry; returns once it is durable on disk."""
        if kind not in KINDS:
            raise JournalError(f"unknown entry kind {kind!r} (known: {', '.join(sorted(KINDS))})")
        # Made under the write lock, after the staged entries it follows, and written with
        # them in one statement.
        with self._write_transaction(lambda: self._pending(kind, payload, actor, run_id)):
            return Entry(*self._tx_last_row)

    def upkeep(
        self,
        payload: Mapping[str, Any],
        *,
        actor: str | None = None,
        checked: Point | None = None,
        claim_witness: bool = False,
        reanchor_witness: bool = False,
    ) -> Entry:
        """Append a ``journal`` entry about the journal itself (outside any run).

        ``checked``: the chain is verified up to there; the witness's checkpoint
        moves there with this commit. ``claim_witness``: make the witness hold
        the head durably first, and say so in the entry (``"witnessed"``).
        ``reanchor_witness``: overwrite the witness with this entry (creating
        it if missing), whatever it held: only for what an operator acknowledged.
        """
        with self._write_transaction() as conn:
            if claim_witness:
                claim = self._claim_witness(conn, checked=checked)
                if claim is not None:
                    payload = {**payload, "witnessed": [claim.seq, claim.hash]}
            entry = self._insert(conn, Kind.JOURNAL, payload, actor, "")
            self._tx_checked = checked
            self._tx_reanchor = reanchor_witness
        return entry

    def stage(
        self, kind: str, payload: Mapping[str, Any] | None = None, *, actor: str | None = None
    ) -> Pending:
        """Record an entry to be written with the next commit (see the module doc).

        Its times are those of now, when the event happened, not of the write,
        and so is its payload: it is encoded now, and what the caller does with
        the mapping afterwards changes nothing. What cannot be written (a
        payload that is not plain JSON, a clock's bad time) is refused now.
        """
        if kind not in KINDS:
            raise JournalError(f"unknown entry kind {kind!r} (known: {', '.join(sorted(KINDS))})")
        if kind == Kind.COMMAND:
            raise JournalError("a command intent is never staged: use command_intent()")
        return self._stage(kind, payload, actor)

    def _stage(self, kind: str, payload: Mapping[str, Any] | None, actor: str | None) -> Pending:
        # The row is made now, as far as it can be before the write: whatever
        # cannot be written is refused here (staged, it would fail every later
        # commit), and the payload is recorded as it is now.
        pending = self._pending(kind, payload, actor, None)
        with self._staged_lock:
            lost = self._lost
            # Nothing staged is written again once it is lost (until the journal is
            # opened again): a flood of requests must not grow this list, nor the log,
            # without end; nor while it cannot take them for long (see MAX_HELD).
            held = MAX_STAGED if lost is not None else MAX_HELD
            if not _routine(kind, payload):
                held += RESERVE
            if len(self._staged) >= held:
                self.not_kept += 1
                if self.not_kept % MAX_HELD == 1:  # a line, then one each MAX_HELD let go
                    log.critical(
                        "%s; %d entries wait unwritten, no more are kept (%d let go)",
                        lost or f"{self.path}: the journal cannot take them",
                        held,
                        self.not_kept,
                    )
                return pending
            self._staged.append(pending)
            backlog = len(self._staged)
        if backlog < MAX_STAGED or self._lost is not None:
            return pending
        if time.monotonic() < self._backlog_retry_at:
            return pending  # it failed just now: the stagers of a flood do not each try
        # Whoever stages this much writes it, so nothing piles up in memory while the
        # journal works; without waiting for a busy one (a trip may be staging): then it
        # stays staged, for the next commit that succeeds.
        try:
            with self.waiting_at_most(BACKLOG_WAIT_S):
                self.flush()
        except JournalError as error:
            # Each try writes the whole backlog (a full disk refuses it at the end) or
            # waits: not again before BACKLOG_RETRY_S, by anyone.
            self._backlog_retry_at = time.monotonic() + BACKLOG_RETRY_S
            level = backlog // MAX_STAGED
            if level > self._backlog_said:  # a line a thousand entries, not one each try
                self._backlog_said = level
                log.warning("%d entries staged, not written yet: %s", backlog, error)
        else:
            self._backlog_said = 0
        return pending

    def _pending(
        self,
        kind: str,
        payload: Mapping[str, Any] | None,
        actor: str | None,
        run_id: str | None,
    ) -> Pending:
        """An entry's row as far as it can be made before the write (seq and hashes
        come with the write): its times are now's, its payload encoded now."""
        payload_json, refs = _encode_staged(payload)
        if actor is not None:
            writable_text(actor, "actor")
        clock = self.clock
        wall = clock.wall()
        mono = float(clock.monotonic())
        if not math.isfinite(mono):
            raise JournalError(f"monotonic time must be finite, got {mono!r}")
        return Pending(
            str(kind),
            payload,
            actor,
            self.run_id if run_id is None else run_id,
            wall,
            mono,
            format_wall(wall),
            payload_json,
            refs,
        )

    @property
    def staged(self) -> int:
        """How many entries wait for the next commit."""
        return len(self._staged)

    def condition(self) -> dict[str, Any]:
        """What a status shows of the journal: why it writes nothing (None: it writes),
        how many entries wait for a commit, how many were not kept since it could no
        longer write (see _stage), and how many off commands went out without their
        record on disk (see safe_off_intent). A write SQLite refused (a full disk, say)
        says why it writes nothing until a write succeeds."""
        lost, putting_back = self._lost, self._putting_back
        if lost is None and putting_back is not None:
            lost = f"{self.path}: being put back (a file of it went while in use)"
        if lost is None:
            lost = self._failing
        return {
            "not_writing": lost,
            "staged": self.staged,
            "not_kept": self.not_kept,
            "unjournaled": self.unjournaled,
        }

    def staged_since(self) -> float | None:
        """When (monotonic clock) the oldest entry waiting for a commit was staged, or None."""
        with self._staged_lock:
            return self._staged[0].mono if self._staged else None

    @contextlib.contextmanager
    def waiting_at_most(self, seconds: float) -> Iterator[None]:
        """Within the block, this thread's writes wait at most ``seconds`` for the journal
        (then JournalError), not the busy timeout: for a caller holding something that a
        trip needs, which must not be held for half a minute behind a stuck writer."""
        previous = getattr(self._bound, "seconds", None)
        self._bound.seconds = seconds if previous is None else min(previous, seconds)
        try:
            yield
        finally:
            self._bound.seconds = previous

    def flush(self) -> None:
        """Write what is staged, durably, now."""
        if self._staged:
            with self._write_transaction():
                pass

    def query_intent(
        self, instrument: str, data: bytes | str, *, actor: str | None = None, **context: Any
    ) -> QueryIntent:
        """Journal a pure query to ``instrument``, staged for the next commit.

        Refuses (JournalError) anything that is not a pure query: a line that
        sets something goes through :meth:`command_intent`, durably, first.
        """
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        if not is_pure_query(raw):
            raise JournalError(f"not a pure query, journal it durably first: {raw!r}")
        payload = _command_payload(instrument, raw, context, query=True)
        pending = self._stage(Kind.COMMAND, payload, actor)
        intent = QueryIntent(_JOURNAL_TOKEN, seq=0, instrument=instrument, data=raw, entry_hash="")
        object.__setattr__(intent, "staged_as", pending)
        return intent

    def answer(
        self, intent: DurableIntent, query: str, reply: str, **details: Any
    ) -> Entry | Pending:
        """What ``intent``'s instrument answered, as a ``readback`` (staged).

        The answer to a pure query whose entry is still staged takes that entry's
        place and time (when the query went out), with its exact bytes (``data``):
        the two would carry the same facts and the answer one more, and they would
        go to disk in the same commit. Once a commit has taken the query's entry,
        or for a line that set something, the answer is a readback of its own.
        """
        payload = {**details, "instrument": intent.instrument, "query": query, "reply": reply}
        asked = getattr(intent, "staged_as", None)
        if isinstance(asked, Pending):
            # With the exact bytes sent, as the query's own entry had them.
            merged = {**payload, **data_fields(intent.data)}
            payload_json, refs = _encode_staged(merged)
            answered = Pending(
                Kind.READBACK.value,
                merged,
                asked.actor,
                asked.run_id,
                asked.wall,
                asked.mono,
                asked._wall_time,
                payload_json,
                refs,
            )
            with self._staged_lock:
                staged = self._staged
                for i in range(len(staged) - 1, self._writing - 1, -1):
                    if staged[i] is asked:
                        staged[i] = answered
                        return answered
        return self._stage(Kind.READBACK, payload, None)

    def command_intent(
        self, instrument: str, data: bytes | str, *, actor: str | None = None, **context: Any
    ) -> DurableIntent:
        """Journal the bytes about to go to ``instrument``; the result may be sent.

        ``context`` adds the setpoint (``net``, ``quantity``, ``value``) or
        anything else worth keeping next to the bytes.
        """
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        entry = self.append(Kind.COMMAND, _command_payload(instrument, raw, context), actor=actor)
        return DurableIntent(
            _JOURNAL_TOKEN, seq=entry.seq, instrument=instrument, data=raw, entry_hash=entry.hash
        )

    def safe_off_intent(self, instrument: str, data: bytes | str, **context: Any) -> DurableIntent:
        """An intent for a line that only turns outputs off, even if it cannot be journaled.

        Journaled first, as any command, when the journal takes it within
        SAFE_OFF_WAIT_S. When it does not, the line may still go out (failing safe
        comes before journaling): the failure is logged at once, the record is
        staged flagged ``unjournaled`` (with its time: now, when the command went
        out) for the first commit that succeeds, and the intent has seq 0.
        Anything but an off-only line (:func:`~interlock.journal.intent.is_off_only`)
        is refused.
        """
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        if not is_off_only(raw):
            raise JournalError(f"not a line that only turns outputs off: {raw!r}")
        return self._off_intent(instrument, raw, context)

    def safe_off_record(self, instrument: str, data: bytes | str, **context: Any) -> bool:
        """Journal, as :meth:`safe_off_intent` does, an off command that a driver sends
        in its own framing (the relay board's open-all); True once it is on disk."""
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        return self._off_intent(instrument, raw, context).seq != 0

    def _off_intent(self, instrument: str, raw: bytes, context: dict[str, Any]) -> DurableIntent:
        try:
            if self._putting_back is not None:  # it holds the write lock while it copies
                raise JournalError(f"{self.path}: being put back")
            backlog = len(self._staged)
            if backlog > MAX_STAGED and time.monotonic() < self._backlog_retry_at:
                # Behind, and its backlog could not be written just now: a try would write
                # the whole backlog first, and the off command must not wait for that.
                raise JournalError(f"{self.path}: {backlog} entries wait unwritten")
            # Not the busy timeout's seconds: a held journal must not hold the safe state.
            with self.waiting_at_most(SAFE_OFF_WAIT_S):
                return self.command_intent(instrument, raw, **context)
        except JournalError as error:
            self.unjournaled += 1
            log.critical(
                "journal cannot be written (%s): sending %r to %s to reach the safe state; "
                "it is journaled when the journal writes again",
                error,
                raw,
                instrument,
            )
            payload = _command_payload(instrument, raw, context, unjournaled=str(error)[:300])
            with contextlib.suppress(JournalError):  # staged even if a backlog flush fails
                self._stage(Kind.COMMAND, payload, None)
            return DurableIntent(
                _JOURNAL_TOKEN, seq=0, instrument=instrument, data=raw, entry_hash=""
            )

    # -- kind-specific helpers (payload conventions: interlock.journal.entries) --

    def _record(
        self, kind: str, payload: Mapping[str, Any], actor: str | None, durable: bool
    ) -> Entry | Pending:
        if durable:
            return self.append(kind, payload, actor=actor)
        return self._stage(kind, payload, actor)  # kind is one of KINDS, and no command

    def request(
        self, who: str, client: str, action: str, *, durable: bool = True, **details: Any
    ) -> Entry | Pending:
        payload = {**details, "client": client, "action": action}
        return self._record(Kind.REQUEST, payload, who, durable)

    def verdict(
        self,
        allowed: bool,
        *,
        request: int | Pending | None = None,
        rule: str | None = None,
        where: str | None = None,
        reason: str | None = None,
        durable: bool = True,
        **details: Any,
    ) -> Entry | Pending:
        payload = {**details, "allowed": bool(allowed)}
        for key, value in (("request", request), ("rule", rule), ("where", where)):
            if value is not None:
                payload[key] = value
        if reason is not None:
            payload["reason"] = reason
        return self._record(Kind.VERDICT, payload, None, durable)

    def readback(
        self, instrument: str, query: str, reply: str, *, durable: bool = True, **details: Any
    ) -> Entry | Pending:
        payload = {**details, "instrument": instrument, "query": query, "reply": reply}
        return self._record(Kind.READBACK, payload, None, durable)

    def measurement(self, net: str, *, durable: bool = True, **values: Any) -> Entry | Pending:
        return self._record(Kind.MEASUREMENT, {**values, "net": net}, None, durable)

    def measurements(
        self,
        instrument: str,
        readings: Mapping[str, Mapping[str, float]],
        *,
        durable: bool = True,
    ) -> Entry | Pending:
        """The nets of one instrument read in one exchange, in one entry: ``readings``
        maps each net to its values (``voltage``, ``current``)."""
        payload = {"instrument": instrument, "nets": {n: dict(v) for n, v in readings.items()}}
        return self._record(Kind.MEASUREMENT, payload, None, durable)

    def state(
        self, source: str, dest: str, trigger: str, *, durable: bool = True, **details: Any
    ) -> Entry | Pending:
        payload = {**details, "from": source, "to": dest, "trigger": trigger}
        return self._record(Kind.STATE, payload, None, durable)

    def fault(
        self, cause: str, detail: str, *, durable: bool = True, **details: Any
    ) -> Entry | Pending:
        return self._record(
            Kind.FAULT, {**details, "cause": cause, "detail": detail}, None, durable
        )

    def operator(
        self, operator: str, action: str, *, durable: bool = True, **details: Any
    ) -> Entry | Pending:
        return self._record(Kind.OPERATOR, {**details, "action": action}, operator, durable)

    def identity(
        self, instrument: str, *, expected: str, seen: str, ok: bool, **details: Any
    ) -> Entry:
        payload = {**details, "instrument": instrument, "expected": expected, "seen": seen}
        return self.append(Kind.IDENTITY, {**payload, "ok": bool(ok)})

    def config(
        self,
        files: Mapping[str, str | Path],
        *,
        limits: Mapping[str, Mapping[str, Any]] | None = None,
        **details: Any,
    ) -> Entry:
        """Pin the configuration in force: each file's path and SHA-256.

        ``files`` maps a role (``"bench"``, ``"profile"``) to a path; the
        files are hashed now, so the entry says what was read, not what the
        file holds later. ``limits`` (net -> limit name -> SI value) lets the
        post-mortem show the limits without the files.
        """
        pinned = {
            role: {"path": str(path), "sha256": file_digest(path)} for role, path in files.items()
        }
        payload: dict[str, Any] = {**details, "files": pinned}
        if limits is not None:
            payload["limits"] = {net: dict(values) for net, values in limits.items()}
        return self.append(Kind.CONFIG, payload)

    # -- reading back what this journal holds --------------------------------

    def last(self, kind: str | None = None) -> Entry | None:
        """The newest entry written (of ``kind``, if given), or None."""
        where, args = ("WHERE kind = ? ", (str(kind),)) if kind is not None else ("", ())
        with self._lock:
            conn = self._conn
            if conn is None:
                raise JournalError(f"{self.path}: journal is closed")
            try:
                row = conn.execute(
                    f"SELECT {ENTRY_COLUMNS} FROM entries {where}ORDER BY seq DESC LIMIT 1", args
                ).fetchone()
            except sqlite3.Error as exc:
                raise JournalError(f"{self.path}: cannot read: {exc}") from exc
        return None if row is None else row_to_entry(row)
