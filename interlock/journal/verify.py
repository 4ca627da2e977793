"""Checking the hash chain: is this the journal as it was written?

Checks, in seq order, stopping at the first problem:

- each entry's stored hash matches its content (an edited entry fails here);
- each entry's ``prev_hash`` is the hash of the entry before it (a removed,
  inserted or reordered entry fails here), or, across a gap in ``seq``, the
  gap is one that retention recorded in ``pruned`` with the same hash;
- the chain starts at seq 1 on the genesis hash, or after a recorded gap;
- the last entry is the recorded head (removing the newest entries fails here);
- every gap recorded in ``pruned`` is listed by the newest prune entry
  (declaring a gap by hand to hide a removal fails here).

What it cannot see: someone who rewrites the chain from the edit onwards,
recomputing every hash and the head. The hashes are unkeyed; exporting the
head hash elsewhere (``interlock journal verify`` prints it) is what pins a
journal against that.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from interlock.errors import JournalCorrupt, JournalError
from interlock.journal.db import ENTRY_COLUMNS, connect, row_to_entry
from interlock.journal.entries import GENESIS_HASH, Kind, computed_hash


@dataclass(frozen=True)
class VerifyReport:
    entries: int
    first_seq: int | None
    last_seq: int | None
    pruned_gaps: int  # gaps retention left, each checked against its record
    head_hash: str


def verify_journal(path: str | Path) -> VerifyReport:
    """Verify the journal file at ``path``; raise JournalCorrupt at the first bad entry."""
    conn = connect(path, create=False)
    try:
        # One read transaction: a consistent snapshot even while a writer appends.
        conn.execute("BEGIN")
        try:
            return verify_connection(conn)
        finally:
            conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        raise JournalError(f"{path}: cannot read journal: {exc}") from exc
    finally:
        conn.close()


def _gap_text(first: int, last: int) -> str:
    return f"entry {first} is" if first == last else f"entries {first}..{last} are"


def _gaps_listed_by_last_prune(conn: sqlite3.Connection) -> set[tuple[int, int]]:
    """The gaps the newest prune entry lists (see retention); empty if none.

    Read before that entry's own hash is checked: if it was edited to cover
    a forged gap, the chain check still fails at that entry.
    """
    rows = conn.execute(
        "SELECT payload FROM entries WHERE kind = ? ORDER BY seq DESC", (Kind.JOURNAL.value,)
    )
    for (payload,) in rows:
        try:
            data = json.loads(payload)
            if data.get("action") == "prune":
                return {(int(a), int(b)) for a, b in data.get("gaps", [])}
        except (ValueError, TypeError, AttributeError):
            continue  # an unreadable entry fails the chain check below
    return set()


def verify_connection(
    conn: sqlite3.Connection, *, after_seq: int = 0, after_hash: str = GENESIS_HASH
) -> VerifyReport:
    """Verify the chain as seen by ``conn``.

    ``after_seq``/``after_hash`` start the check past an entry already
    verified (only what follows it is read); the report then counts only
    the entries checked.
    """
    # Keyed by the entry before the gap: the gap must end exactly at the next entry.
    gaps = {
        after: (before, last_hash)
        for after, before, last_hash in conn.execute(
            "SELECT after_seq, before_seq, last_hash FROM pruned"
        )
    }
    head_row = conn.execute("SELECT seq, hash FROM head WHERE id = 1").fetchone()

    listed = _gaps_listed_by_last_prune(conn)
    prev_seq, prev_hash = after_seq, after_hash
    first_seq: int | None = None
    count = 0
    gaps_seen = 0
    rows = conn.execute(
        f"SELECT {ENTRY_COLUMNS} FROM entries WHERE seq > ? ORDER BY seq", (after_seq,)
    )
    for row in rows:
        entry = row_to_entry(row)
        try:
            recomputed = computed_hash(entry)
        except (TypeError, ValueError, JournalError) as exc:
            raise JournalCorrupt(entry.seq, f"entry {entry.seq}: unreadable fields: {exc}") from exc
        if recomputed != entry.hash:
            raise JournalCorrupt(
                entry.seq, f"entry {entry.seq}: content does not match its hash (edited)"
            )
        if entry.seq == prev_seq + 1:
            if entry.prev_hash != prev_hash:
                what = "the chain start" if prev_seq == 0 else f"entry {prev_seq}"
                raise JournalCorrupt(
                    entry.seq,
                    f"entry {entry.seq}: does not chain to {what} (replaced or reordered)",
                )
        else:
            gap = gaps.get(prev_seq)
            if gap is not None and gap[0] > entry.seq:
                raise JournalCorrupt(
                    entry.seq, f"entry {entry.seq}: lies inside a pruned range (inserted)"
                )
            if gap is None or gap[0] != entry.seq:
                # A recorded gap that ends early: the entries after it are the missing ones.
                first_missing = gap[0] if gap is not None and gap[0] < entry.seq else prev_seq + 1
                raise JournalCorrupt(
                    first_missing,
                    f"{_gap_text(first_missing, entry.seq - 1)} missing "
                    f"(removed without a retention record)",
                )
            if (prev_seq, entry.seq) not in listed:
                raise JournalCorrupt(
                    prev_seq + 1,
                    f"{_gap_text(prev_seq + 1, entry.seq - 1)} missing "
                    f"(gap not listed by the last prune entry)",
                )
            if gap[1] != entry.prev_hash:
                raise JournalCorrupt(
                    entry.seq,
                    f"entry {entry.seq}: does not chain to the pruned range recorded before it",
                )
            gaps_seen += 1
        if first_seq is None:
            first_seq = entry.seq
        prev_seq, prev_hash = entry.seq, entry.hash
        count += 1

    if head_row is None:
        if count or after_seq:
            raise JournalCorrupt(first_seq, "the journal's head record is missing")
        return VerifyReport(0, None, None, 0, GENESIS_HASH)
    head_seq, head_hash = head_row
    if prev_seq < head_seq:
        raise JournalCorrupt(
            prev_seq + 1, f"{_gap_text(prev_seq + 1, head_seq)} missing at the end (truncated)"
        )
    if prev_seq > head_seq or prev_hash != head_hash:
        raise JournalCorrupt(
            min(prev_seq, head_seq + 1),
            f"entry {prev_seq}: the newest entries differ from the recorded head (seq {head_seq})",
        )
    return VerifyReport(count, first_seq, prev_seq, gaps_seen, head_hash)
