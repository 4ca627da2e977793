"""Bounded growth: pruning old entries without breaking the chain.

A :class:`RetentionPolicy` bounds the journal by age, by entry count and/or
by bytes of entry data (field and payload bytes, not the file size). Entries
beyond any bound are removed, with two exceptions:

- a run is removed whole or not at all: a post-mortem of half a run would
  mislead, so a run that straddles a bound is kept entire;
- a run that holds a fault entry is kept unless ``include_faulted`` is set:
  those are the runs someone will want to look at.

Entries outside any run (``run_id == ""``) are removed one by one, except an
operator's acknowledgement of a break in the chain (and an adoption): the
only record left of a wipe or a cut tail once the witness is anchored anew.

How the chain survives: before deleting anything the whole chain is verified
(evidence of tampering must not be pruned away). That check and the choice
of what goes run on a read snapshot, so the controller's appends are not
held up behind them; under the write lock only entries appended since are
checked, and the runs they belong to are kept. Then, in one transaction,
every gap in ``seq`` left behind is recorded in the ``pruned`` table with
the hash the next retained entry chains to, and the prune itself is
journaled as a ``journal`` entry naming the removed ranges, the policy and
every gap in the journal after it; verify checks the ``pruned`` table
against that list in the newest prune entry, so a gap cannot be declared by
hand without editing a hashed entry.
:mod:`interlock.journal.verify` accepts a gap only if it is so recorded.

The witness stays consistent: the whole check includes it (a journal whose
witness says entries are missing is not pruned), it is made to hold the
head durably before anything is removed (the prune entry says so, in
``"witnessed"``), so no witness older than the prune is taken for a crash's
lag, and its checkpoint moves to the prune entry, verified through.
A journal with a break is not pruned, even one an operator acknowledged:
the break's evidence would go with it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from interlock.errors import JournalCorrupt, JournalError
from interlock.journal.db import connect
from interlock.journal.entries import Entry, Kind
from interlock.journal.store import Journal, format_wall
from interlock.journal.verify import Inspection, VerifyReport, inspect_connection, verify_connection
from interlock.journal.witness import Point, read_witness

# Bytes an entry takes, as counted against ``max_bytes``: its text fields
# (UTF-8) plus the two 8-byte numbers.
_ENTRY_BYTES = (
    "16 + length(CAST(wall_time AS BLOB)) + length(CAST(bench AS BLOB))"
    " + length(CAST(run_id AS BLOB)) + length(CAST(kind AS BLOB))"
    " + length(CAST(actor AS BLOB)) + length(CAST(payload AS BLOB))"
    " + length(prev_hash) + length(hash)"
)


@dataclass(frozen=True)
class RetentionPolicy:
    max_age: timedelta | None = None
    max_entries: int | None = None
    max_bytes: int | None = None
    include_faulted: bool = False

    def __post_init__(self) -> None:
        if self.max_age is None and self.max_entries is None and self.max_bytes is None:
            raise JournalError("a retention policy needs a maximum age, entry count or size")
        for name in ("max_entries", "max_bytes"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise JournalError(f"{name} must not be negative, got {value}")
        if self.max_age is not None and self.max_age < timedelta(0):
            raise JournalError(f"max_age must not be negative, got {self.max_age}")

    def describe(self) -> dict[str, Any]:
        policy: dict[str, Any] = {"include_faulted": self.include_faulted}
        if self.max_age is not None:
            policy["max_age_s"] = self.max_age.total_seconds()
        if self.max_entries is not None:
            policy["max_entries"] = self.max_entries
        if self.max_bytes is not None:
            policy["max_bytes"] = self.max_bytes
        return policy


@dataclass(frozen=True)
class PruneReport:
    removed: int
    ranges: list[tuple[int, int]]  # removed seqs, as inclusive ranges
    spared_faulted: int  # entries beyond a bound kept because their run faulted
    spared_runs: int  # entries beyond a bound kept because their run straddles it
    entry: Entry | None  # the journal entry recording the prune; None if nothing went


def _ranges(seqs: list[int]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for seq in sorted(seqs):
        if ranges and ranges[-1][1] == seq - 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges


def select_prunable(
    conn: sqlite3.Connection, policy: RetentionPolicy, now: datetime
) -> tuple[list[tuple[int, str]], int, int]:
    """((seq, run) to remove, entries spared for a faulted run, spared for a straddling run)."""
    cutoff = format_wall(now - policy.max_age) if policy.max_age is not None else None
    faulted = {
        run
        for (run,) in conn.execute(
            "SELECT DISTINCT run_id FROM entries WHERE kind = ? AND run_id != ''",
            (Kind.FAULT.value,),
        )
    }
    beyond: list[tuple[int, str]] = []  # (seq, run_id) of entries past a bound
    within_runs: set[str] = set()  # runs with at least one entry inside every bound
    total_bytes = 0
    rows = conn.execute(
        f"SELECT seq, wall_time, run_id, {_ENTRY_BYTES} FROM entries ORDER BY seq DESC"
    )
    for count, (seq, wall_time, run_id, size) in enumerate(rows, start=1):
        total_bytes += size
        over = (
            (cutoff is not None and wall_time < cutoff)
            or (policy.max_entries is not None and count > policy.max_entries)
            or (policy.max_bytes is not None and total_bytes > policy.max_bytes)
        )
        if over:
            beyond.append((seq, run_id))
        elif run_id:
            within_runs.add(run_id)

    acknowledgements = {
        seq
        for (seq,) in conn.execute(
            "SELECT seq FROM entries WHERE run_id = '' AND kind = ? "
            "AND json_extract(payload, '$.action') IN ('acknowledge', 'adopt')",
            (Kind.JOURNAL.value,),
        )
    }
    doomed: list[tuple[int, str]] = []
    spared_faulted = spared_runs = 0
    for seq, run_id in beyond:
        if seq in acknowledgements:
            continue
        if run_id in faulted and not policy.include_faulted:
            spared_faulted += 1
        elif run_id in within_runs:
            spared_runs += 1
        else:
            doomed.append((seq, run_id))
    return doomed, spared_faulted, spared_runs


def _record_gaps(conn: sqlite3.Connection) -> None:
    """Rewrite ``pruned`` to declare every gap among the retained entries."""
    conn.execute("DELETE FROM pruned")
    conn.execute(
        "INSERT INTO pruned (after_seq, before_seq, last_hash) "
        "SELECT previous, seq, prev_hash FROM ("
        "  SELECT seq, prev_hash, COALESCE(LAG(seq) OVER (ORDER BY seq), 0) AS previous"
        "  FROM entries"
        ") WHERE seq != previous + 1"
    )


def _gaps_after_prune(conn: sqlite3.Connection) -> list[tuple[int, int]]:
    """Every gap once the prune entry about to be appended is in place.

    The prune entry carries this list, so a gap declared later by hand in
    ``pruned`` (to hide a removed entry) does not match it.
    """
    gaps = [
        (previous, seq)
        for previous, seq in conn.execute(
            "SELECT previous, seq FROM ("
            "  SELECT seq, COALESCE(LAG(seq) OVER (ORDER BY seq), 0) AS previous FROM entries"
            ") WHERE seq != previous + 1"
        )
    ]
    head = conn.execute("SELECT seq FROM head WHERE id = 1").fetchone()[0]
    last = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM entries").fetchone()[0]
    if last != head:  # the newest entries went too: the prune entry follows a gap
        gaps.append((last, head + 1))
    return gaps


@dataclass(frozen=True)
class _Plan:
    checked: VerifyReport
    doomed: list[tuple[int, str]]
    spared_faulted: int
    spared_runs: int


def _refuse_any_break(found: Inspection) -> VerifyReport:
    for brk in found.breaks:
        ack = found.acknowledgements.get(brk.mark)
        if ack is None:
            raise JournalCorrupt(brk.seq, brk.problem)
        raise JournalCorrupt(
            brk.seq,
            f"{ack.describe()}; a journal with a break is not pruned "
            "(export it, and start a new journal)",
        )
    return found.report


def _plan(journal: Journal, policy: RetentionPolicy, now: datetime) -> _Plan:
    """Verify and choose on a read snapshot: the slow part, without the write lock."""
    witness = read_witness(journal.path)  # before the snapshot: see verify.inspect_file
    conn = connect(journal.path, create=False)
    try:
        conn.execute("BEGIN")
        checked = _refuse_any_break(inspect_connection(conn, witness=witness))
        doomed, spared_faulted, spared_runs = select_prunable(conn, policy, now)
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        raise JournalError(f"{journal.path}: cannot read journal: {exc}") from exc
    finally:
        conn.close()
    return _Plan(checked, doomed, spared_faulted, spared_runs)


def prune(
    journal: Journal,
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
    actor: str | None = None,
    dry_run: bool = False,
) -> PruneReport:
    """Remove what ``policy`` allows, in one transaction, and journal that it was done.

    Raises JournalCorrupt (and removes nothing) if the chain does not verify.
    """
    now = now or journal.clock.wall()
    plan = _plan(journal, policy, now)
    checked = plan.checked
    if dry_run or not plan.doomed:
        doomed = [seq for seq, _ in plan.doomed]
        return PruneReport(
            len(doomed), _ranges(doomed), plan.spared_faulted, plan.spared_runs, None
        )
    with journal._write_transaction() as conn:
        # Appends since the snapshot: check they chain onto it, and keep any
        # run they belong to (it is still going on, or just faulted).
        row = conn.execute("SELECT hash FROM entries WHERE seq = ?", (checked.last_seq,)).fetchone()
        if row is None or row[0] != checked.head_hash:
            raise JournalError(
                f"{journal.path}: entry {checked.last_seq} changed while pruning; try again"
            )
        verify_connection(conn, after_seq=checked.last_seq or 0, after_hash=checked.head_hash)
        # Durable before anything goes, verified up to its head: after a crash the
        # witness is never older than this prune, nor checked up to an entry it removed.
        witnessed = journal._claim_witness(conn, checked=journal._tx_start)
        late_runs = {
            run
            for (run,) in conn.execute(
                "SELECT DISTINCT run_id FROM entries WHERE seq > ? AND run_id != ''",
                (checked.last_seq,),
            )
        }
        doomed = [seq for seq, run in plan.doomed if run not in late_runs]
        spared_runs = plan.spared_runs + len(plan.doomed) - len(doomed)
        ranges = _ranges(doomed)
        if not doomed:
            return PruneReport(0, [], plan.spared_faulted, spared_runs, None)
        conn.executemany(
            "DELETE FROM entries WHERE seq BETWEEN ? AND ?", [(a, b) for a, b in ranges]
        )
        entry = journal._insert(
            conn,
            Kind.JOURNAL,
            {
                "action": "prune",
                "removed": len(doomed),
                "ranges": [list(r) for r in ranges],
                "policy": policy.describe(),
                "spared_faulted": plan.spared_faulted,
                "spared_runs": spared_runs,
                "gaps": [list(gap) for gap in _gaps_after_prune(conn)],
                **({"witnessed": list(witnessed)} if witnessed is not None else {}),
            },
            actor,
            "",
        )
        journal._tx_checked = Point(entry.seq, entry.hash)
        _record_gaps(conn)
        # Give the freed pages back to the file system (auto_vacuum=INCREMENTAL).
        conn.execute("PRAGMA incremental_vacuum").fetchall()
    return PruneReport(len(doomed), ranges, plan.spared_faulted, spared_runs, entry)
