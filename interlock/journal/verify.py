"""Checking the hash chain: is this the journal as it was written?

Checks, in seq order:

- each entry's stored hash matches its content (an edited entry fails here);
- each entry's ``prev_hash`` is the hash of the entry before it (a removed,
  inserted or reordered entry fails here), or, across a gap in ``seq``, the
  gap is one that retention recorded in ``pruned`` with the same hash;
- the chain starts at seq 1 on the genesis hash, or after a recorded gap;
- the last entry is the recorded head (removing the newest entries fails here);
- every gap recorded in ``pruned`` is listed by the newest prune entry
  (declaring a gap by hand to hide a removal fails here);
- the witness beside the database (:mod:`interlock.journal.witness`) names
  an entry on the chain, at or before its end: a journal emptied or cut
  with its head record moved to match fails here, and so does a missing
  witness, one rolled back past an entry that claims it durable, or one
  whose checkpoint is off the chain.

Each problem is a :class:`ChainBreak`. A break an operator acknowledged (a
``journal`` entry with ``"action": "acknowledge"`` listing its ``mark``, see
:mod:`interlock.journal.startup`) is reported with its acknowledgement and
the check goes on past it; the first one not acknowledged raises
JournalCorrupt.

What it cannot see: someone who rewrites the chain from the edit onwards,
recomputing every hash, the head and the witness, or who puts back an older
witness together with a journal cut to match it. The hashes are unkeyed;
exporting the head hash elsewhere (``interlock journal verify`` prints it) is
what pins a journal against that.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from interlock.errors import JournalCorrupt, JournalError
from interlock.journal.db import ENTRY_COLUMNS, connect, holds_point, row_to_entry
from interlock.journal.entries import GENESIS_HASH, Kind, computed_hash
from interlock.journal.witness import START, Point, WitnessRead, WitnessRecord, read_witness


@dataclass(frozen=True)
class ChainBreak:
    seq: int | None  # the first entry concerned (None: none can be named)
    problem: str  # as shown to people
    mark: str  # the same break, found again, has the same mark


@dataclass(frozen=True)
class Acknowledged:
    brk: ChainBreak
    entry: int  # the acknowledging entry
    actor: str
    wall_time: str
    action: str = "acknowledge"  # or "adopt": a journal from before witnesses

    def describe(self) -> str:
        verb = "adopted" if self.action == "adopt" else "acknowledged"
        return f"{self.brk.problem}: {verb} by {self.actor} at entry {self.entry}"


@dataclass(frozen=True)
class VerifyReport:
    entries: int
    first_seq: int | None
    last_seq: int | None
    pruned_gaps: int  # gaps retention left, each checked against its record
    head_hash: str
    witness: WitnessRecord | None = None  # as found (None: not checked, or missing)
    # Every acknowledgement in the part checked: of breaks still there (an edited
    # entry), and of those a re-anchored witness no longer shows (a cut, a wipe).
    acknowledged: tuple[Acknowledged, ...] = ()


@dataclass(frozen=True)
class Inspection:
    """Everything a check found, broken or not (see :func:`inspect_connection`)."""

    report: VerifyReport
    after: Point  # the check began after this entry (seq 0: the whole chain)
    end: Point  # the last entry checked (or ``after``, if none)
    breaks: tuple[ChainBreak, ...]
    acknowledgements: dict[str, Acknowledged] = field(default_factory=dict)  # mark ->

    @property
    def unacknowledged(self) -> list[ChainBreak]:
        return [b for b in self.breaks if b.mark not in self.acknowledgements]


def verify_journal(path: str | Path) -> VerifyReport:
    """Verify the journal file at ``path`` and its witness; raise JournalCorrupt at
    the first break not acknowledged."""
    return raise_first(inspect_file(path))


def inspect_file(path: str | Path, *, from_checkpoint: bool = False) -> Inspection:
    """Inspect the journal at ``path`` and its witness, on a consistent snapshot.

    ``from_checkpoint``: check only what follows the entry the witness says
    the chain was verified up to, if that entry is still there as recorded
    (the whole chain otherwise).
    """
    # Read before the snapshot: the witness is written after each commit, so
    # read first it names nothing the snapshot lacks, even while writers run.
    witness = read_witness(path)
    conn = connect(path, create=False)
    try:
        # One read transaction: a consistent snapshot even while a writer appends.
        conn.execute("BEGIN")
        try:
            after = START
            if from_checkpoint and witness.record is not None:
                checked = witness.record.checked
                row = conn.execute(
                    "SELECT hash FROM entries WHERE seq = ?", (checked.seq,)
                ).fetchone()
                if row is not None and row[0] == checked.hash:
                    after = checked
            return inspect_connection(conn, after=after, witness=witness)
        finally:
            conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        raise JournalError(f"{path}: cannot read journal: {exc}") from exc
    finally:
        conn.close()


def raise_first(found: Inspection) -> VerifyReport:
    for brk in found.unacknowledged:
        raise JournalCorrupt(brk.seq, brk.problem)
    return found.report


def _gap_text(first: int, last: int) -> str:
    return f"entry {first} is" if first == last else f"entries {first}..{last} are"


class _Notes:
    """What the journal says about itself in its ``journal`` entries after a seq:
    the gaps the newest prune lists, acknowledgements, the newest durable-witness claim.

    Read before those entries' own hashes are checked: an entry edited to
    cover a forged gap or to acknowledge a break still fails the chain check.
    """

    def __init__(self, conn: sqlite3.Connection, after_seq: int) -> None:
        self.listed: set[tuple[int, int]] | None = None
        self.acknowledgements: dict[str, Acknowledged] = {}
        self.claim: tuple[int, Point] | None = None  # (entry, the witness it claims)
        rows = conn.execute(
            "SELECT seq, actor, wall_time, payload FROM entries "
            "WHERE run_id = '' AND kind = ? AND seq > ? ORDER BY seq DESC",
            (Kind.JOURNAL.value, after_seq),
        )
        for seq, actor, wall_time, payload in rows:
            try:
                data = json.loads(payload)
                action = data.get("action")
                if action == "prune" and self.listed is None:
                    self.listed = {(int(a), int(b)) for a, b in data.get("gaps", [])}
                if "witnessed" in data and self.claim is None:
                    claimed_seq, claimed_hash = data["witnessed"]
                    self.claim = (seq, Point(int(claimed_seq), str(claimed_hash)))
                for item in data.get("breaks", []) if action in ("acknowledge", "adopt") else []:
                    brk = ChainBreak(item.get("seq"), str(item["problem"]), str(item["mark"]))
                    self.acknowledgements.setdefault(
                        brk.mark, Acknowledged(brk, seq, actor, wall_time, action)
                    )
            except (ValueError, TypeError, AttributeError, KeyError):
                continue  # an unreadable entry fails the chain check
        self.after_seq = after_seq

    def gaps_listed(self, conn: sqlite3.Connection) -> set[tuple[int, int]]:
        if self.listed is None and self.after_seq:
            # The newest prune may precede the checked part: look further back.
            return _Notes(conn, 0).listed or set()
        return self.listed or set()


def inspect_connection(
    conn: sqlite3.Connection,
    *,
    after: Point = START,
    witness: WitnessRead | None = None,
) -> Inspection:
    """Check the chain as seen by ``conn``, going on past every break; and the
    witness, if given (read before ``conn``'s snapshot began).

    ``after`` starts the check past an entry already verified (only what
    follows it is read); the report then counts only the entries checked.
    """
    after = Point(*after)
    after_seq, after_hash = after
    notes = _Notes(conn, after_seq)
    # Keyed by the entry before the gap: the gap must end exactly at the next entry.
    gaps = {
        before: (after_gap, last_hash)
        for before, after_gap, last_hash in conn.execute(
            "SELECT after_seq, before_seq, last_hash FROM pruned"
        )
    }
    head_row = conn.execute("SELECT seq, hash FROM head WHERE id = 1").fetchone()
    breaks: list[ChainBreak] = []

    def broken(seq: int | None, problem: str, mark: str) -> None:
        breaks.append(ChainBreak(seq, problem, mark))

    listed: set[tuple[int, int]] | None = None
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
            recomputed = None
            broken(
                entry.seq,
                f"entry {entry.seq}: unreadable fields: {exc}",
                f"unreadable:{entry.seq}:{entry.hash}",
            )
        if recomputed is not None and recomputed != entry.hash:
            broken(
                entry.seq,
                f"entry {entry.seq}: content does not match its hash (edited)",
                f"edited:{entry.seq}:{recomputed}",
            )
        if entry.seq == prev_seq + 1:
            if entry.prev_hash != prev_hash:
                what = "the chain start" if prev_seq == 0 else f"entry {prev_seq}"
                broken(
                    entry.seq,
                    f"entry {entry.seq}: does not chain to {what} (replaced or reordered)",
                    f"unchained:{entry.seq}:{entry.prev_hash}:{prev_hash}",
                )
        else:
            gap = gaps.get(prev_seq)
            if listed is None:
                listed = notes.gaps_listed(conn)
            if gap is not None and gap[0] > entry.seq:
                broken(
                    entry.seq,
                    f"entry {entry.seq}: lies inside a pruned range (inserted)",
                    f"inserted:{entry.seq}:{entry.hash}",
                )
            elif gap is None or gap[0] != entry.seq:
                # A recorded gap that ends early: the entries after it are the missing ones.
                first_missing = gap[0] if gap is not None and gap[0] < entry.seq else prev_seq + 1
                broken(
                    first_missing,
                    f"{_gap_text(first_missing, entry.seq - 1)} missing "
                    f"(removed without a retention record)",
                    f"missing:{prev_seq}:{entry.prev_hash}",
                )
            elif (prev_seq, entry.seq) not in listed:
                broken(
                    prev_seq + 1,
                    f"{_gap_text(prev_seq + 1, entry.seq - 1)} missing "
                    f"(gap not listed by the last prune entry)",
                    f"unlisted:{prev_seq}:{entry.seq}",
                )
            elif gap[1] != entry.prev_hash:
                broken(
                    entry.seq,
                    f"entry {entry.seq}: does not chain to the pruned range recorded before it",
                    f"unchained:{entry.seq}:{entry.prev_hash}:{gap[1]}",
                )
            else:
                gaps_seen += 1
        if first_seq is None:
            first_seq = entry.seq
        prev_seq, prev_hash = entry.seq, entry.hash
        count += 1

    head_hash = GENESIS_HASH
    if head_row is None:
        if count or after_seq:
            broken(
                first_seq if first_seq is not None else after_seq,
                "the journal's head record is missing",
                f"nohead:{prev_seq}:{prev_hash}",
            )
    else:
        head_seq, head_hash = head_row
        if prev_seq < head_seq:
            broken(
                prev_seq + 1,
                f"{_gap_text(prev_seq + 1, head_seq)} missing at the end (truncated)",
                # As the gap the next append leaves: it chains to the head's hash.
                f"missing:{prev_seq}:{head_hash}",
            )
        elif prev_seq > head_seq or prev_hash != head_hash:
            broken(
                min(prev_seq, head_seq + 1),
                f"entry {prev_seq}: the newest entries differ from the recorded head "
                f"(seq {head_seq})",
                f"head:{head_seq}:{head_hash}:{prev_seq}:{prev_hash}",
            )

    record = None
    if witness is not None:
        record = witness.record
        anything = bool(count or after_seq or head_row)
        breaks.extend(_witness_breaks(conn, witness, Point(prev_seq, prev_hash), anything, notes))

    report = VerifyReport(
        entries=count,
        first_seq=first_seq,
        last_seq=prev_seq if count else None,
        pruned_gaps=gaps_seen,
        head_hash=head_hash,
        witness=record,
        acknowledged=tuple(
            sorted(notes.acknowledgements.values(), key=lambda a: (a.entry, a.brk.seq or 0))
        ),
    )
    return Inspection(
        report, after, Point(prev_seq, prev_hash), tuple(breaks), notes.acknowledgements
    )


def _witness_breaks(
    conn: sqlite3.Connection,
    witness: WitnessRead,
    end: Point,
    anything: bool,
    notes: _Notes,
) -> list[ChainBreak]:
    """What is wrong between the chain (ending at ``end``) and its witness."""
    name = witness.path.name
    if witness.problem is not None:
        return [
            ChainBreak(
                None,
                f"the witness {name} is unreadable ({witness.problem})",
                f"witness-unreadable:{witness.problem}",
            )
        ]
    if witness.record is None:
        if not anything:
            return []
        return [
            ChainBreak(
                None,
                f"no witness beside the journal ({name}): its head is anchored nowhere "
                "(a journal from before witnesses, or the witness was deleted); "
                "adopt it with `interlock journal verify --adopt`, or reset the "
                "service's journal-chain fault",
                "witness-missing",
            )
        ]
    head, checked = witness.record.head, witness.record.checked
    mark = f"witness:{head.seq}:{head.hash}"
    if head.seq > end.seq:
        if end.seq == 0:
            problem = (
                f"the journal is empty, but its witness {name} records entries up to "
                f"seq {head.seq} (wiped)"
            )
        else:
            problem = (
                f"{_gap_text(end.seq + 1, head.seq)} missing at the end: the witness "
                f"{name} records seq {head.seq} (cut)"
            )
        return [ChainBreak(end.seq + 1, problem, mark)]
    if not holds_point(conn, *head):
        return [
            ChainBreak(
                head.seq,
                f"entry {head.seq}: not the entry the witness {name} records "
                f"(removed, replaced or rewritten)",
                mark,
            )
        ]
    found: list[ChainBreak] = []
    if notes.claim is not None and head.seq < notes.claim[1].seq:
        claimed_at, claimed = notes.claim
        found.append(
            ChainBreak(
                head.seq + 1,
                f"the witness {name} records seq {head.seq}, older than seq {claimed.seq} "
                f"that entry {claimed_at} found it durable at (rolled back)",
                f"witness-rolled-back:{head.seq}:{head.hash}:{claimed_at}",
            )
        )
    if checked.seq > head.seq or not holds_point(conn, *checked):
        found.append(
            ChainBreak(
                checked.seq,
                f"entry {checked.seq}: not the entry the witness {name} was verified up to "
                f"(removed, replaced or rewritten)",
                f"witness-checked:{checked.seq}:{checked.hash}",
            )
        )
    return found


def verify_connection(
    conn: sqlite3.Connection, *, after_seq: int = 0, after_hash: str = GENESIS_HASH
) -> VerifyReport:
    """Verify the chain as seen by ``conn`` (not its witness); raise JournalCorrupt
    at the first break not acknowledged.

    ``after_seq``/``after_hash`` start the check past an entry already
    verified (only what follows it is read); the report then counts only
    the entries checked.
    """
    return raise_first(inspect_connection(conn, after=Point(after_seq, after_hash)))
