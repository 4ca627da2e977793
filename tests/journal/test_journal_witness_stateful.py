"""Tampering nobody would script by hand is always caught; a crash's lag never is.

A journal is written, restarted (the start-up check) and pruned in random
order. At any point someone may tamper with the files: remove a range of
entries, edit one (or edit it and rehash the chain from there, head included),
swap two, cut the tail (head moved to match, or not), wipe everything,
delete, garble or roll back the witness. Each is detected by `journal
verify`, and by the start-up check unless it only touches entries the last
check already verified. The files are then put back. And at any point the
witness may lag the database as a crash leaves it (any value it held since
the last entry that claimed it durable): that is accepted, by both.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from interlock.errors import JournalCorrupt
from interlock.journal import Journal, JournalReader, verify_journal
from interlock.journal.db import ENTRY_COLUMNS, row_to_entry
from interlock.journal.entries import computed_hash
from interlock.journal.retention import RetentionPolicy, prune
from interlock.journal.startup import check_at_start
from interlock.journal.verify import inspect_file
from interlock.journal.witness import decode, witness_path

SCRATCH = "/dev/shm" if Path("/dev/shm").is_dir() else None

TAMPERS = (
    "delete-range",
    "edit",
    "edit-and-rehash",
    "swap",
    "cut-moving-head",
    "truncate",
    "wipe",
    "delete-witness",
    "garble-witness",
    "roll-back-witness",
)


class WitnessMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(dir=SCRATCH))
        self.path = self.dir / "journal.sqlite"
        self.witness = witness_path(self.path)
        Journal(self.path, bench="b").close()
        self.runs = 0
        # Every value the witness held after a step, and those since the newest claim:
        # what a crash may leave behind.
        self.history: list[bytes] = [self.witness.read_bytes()]
        self.since_claim: list[bytes] = list(self.history)
        self.floor = 0

    def teardown(self) -> None:
        shutil.rmtree(self.dir)

    # -- what the model knows ---------------------------------------------------

    def files(self) -> list[Path]:
        return [self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm"), self.witness]

    def seqs(self) -> list[int]:
        with JournalReader(self.path) as reader:
            return [e.seq for e in reader.entries()]

    def newest_claim(self) -> int:
        with JournalReader(self.path) as reader:
            claims = [
                e.payload["witnessed"][0]
                for e in reader.entries()
                if e.kind == "journal" and "witnessed" in e.payload
            ]
        return max(claims, default=0)

    def witnessed(self) -> tuple[int, int]:
        record = decode(self.witness.read_bytes())
        return record.head.seq, record.checked.seq

    def stepped(self) -> None:
        current = self.witness.read_bytes()
        self.history.append(current)
        floor = self.newest_claim()
        if floor != self.floor:
            self.floor, self.since_claim = floor, [current]
        else:
            self.since_claim.append(current)

    # -- honest use ---------------------------------------------------------------

    @rule(count=st.integers(1, 6), in_run=st.booleans(), fault=st.booleans())
    def append(self, count: int, in_run: bool, fault: bool) -> None:
        with Journal(self.path, bench="b") as journal:
            if in_run:
                self.runs += 1
                journal.begin_run(f"run-{self.runs}")
            for i in range(count):
                journal.measurement("VBUS", voltage=float(i))
            if fault and in_run:
                journal.fault("overcurrent", "VBUS")
        self.stepped()

    @rule()
    def restart(self) -> None:
        with Journal(self.path, bench="b") as journal:
            assert check_at_start(journal).ok
        self.stepped()

    @rule(keep=st.integers(0, 8), include_faulted=st.booleans())
    def prune(self, keep: int, include_faulted: bool) -> None:
        with Journal(self.path, bench="b") as journal:
            prune(journal, RetentionPolicy(max_entries=keep, include_faulted=include_faulted))
        self.stepped()

    @rule(data=st.data())
    def crash_leaves_the_witness_lagging(self, data: st.DataObject) -> None:
        lagging = data.draw(st.sampled_from(self.since_claim))
        event(f"lagging: {decode(lagging).head.seq < self.witnessed()[0]}")
        self.witness.write_bytes(lagging)
        self.accepted()

    @invariant()
    def accepted(self) -> None:
        report = verify_journal(self.path)
        assert report.witness is not None
        assert report.witness.head.seq <= (report.last_seq or 0)
        assert not inspect_file(self.path, from_checkpoint=True).unacknowledged

    # -- tampering ----------------------------------------------------------------

    @precondition(lambda self: len(self.seqs()) >= 3)
    @rule(data=st.data(), tamper=st.sampled_from(TAMPERS))
    def tamper(self, data: st.DataObject, tamper: str) -> None:
        saved = self.dir / "saved"
        saved.mkdir()
        for file in self.files():
            if file.exists():
                shutil.copy2(file, saved / file.name)
        try:
            checked = self.witnessed()[1]
            touched = self.apply(tamper, data)
            if touched is None:
                return  # nothing of this kind to do here
            event(f"tamper: {tamper}")
            with_checkpoint = inspect_file(self.path, from_checkpoint=True)
            try:
                verify_journal(self.path)
            except JournalCorrupt:
                pass
            else:
                raise AssertionError(f"{tamper} not detected by verify")
            if tamper.endswith("witness") or tamper == "wipe" or touched > checked:
                assert with_checkpoint.unacknowledged, f"{tamper} not detected at start"
        finally:
            for file in self.files():
                file.unlink(missing_ok=True)
            for file in saved.iterdir():
                shutil.copy2(file, self.path.parent / file.name)
            shutil.rmtree(saved)

    def apply(self, tamper: str, data: st.DataObject) -> int | None:
        """Tamper; returns the lowest seq touched (None: nothing done)."""
        seqs = self.seqs()
        head_seq, _ = self.witnessed()
        conn = sqlite3.connect(self.path)
        try:
            if tamper == "delete-range":
                i = data.draw(st.integers(0, len(seqs) - 2))
                j = data.draw(st.integers(i, len(seqs) - 2))
                conn.execute("DELETE FROM entries WHERE seq BETWEEN ? AND ?", (seqs[i], seqs[j]))
                touched = seqs[i]
            elif tamper in ("edit", "edit-and-rehash"):
                # A chain rewritten beyond what the witness holds is a crash's lag.
                within = seqs if tamper == "edit" else [s for s in seqs if s <= head_seq]
                if not within:
                    return None
                seq = data.draw(st.sampled_from(within))
                column, value = data.draw(
                    st.sampled_from(
                        [("actor", "'mallory'"), ("payload", "'{}'"), ("mono_time", "0.5")]
                    )
                )
                conn.execute(f"UPDATE entries SET {column} = {value} WHERE seq = ?", (seq,))
                if tamper == "edit-and-rehash":
                    rehash(conn, seq)
                touched = seq
            elif tamper == "swap":
                i = data.draw(st.integers(0, len(seqs) - 2))
                a, b = seqs[i], seqs[i + 1]
                conn.execute("UPDATE entries SET seq = -1 WHERE seq = ?", (a,))
                conn.execute("UPDATE entries SET seq = ? WHERE seq = ?", (a, b))
                conn.execute("UPDATE entries SET seq = ? WHERE seq = -1", (b,))
                touched = a
            elif tamper in ("cut-moving-head", "truncate"):
                # Moving the head too, below what the witness holds: beyond it the cut
                # is a crash's lag.
                below = [s for s in seqs[:-1] if tamper == "truncate" or s < head_seq]
                if not below:
                    return None
                last = data.draw(st.sampled_from(below))
                conn.execute("DELETE FROM entries WHERE seq > ?", (last,))
                if tamper == "cut-moving-head":
                    conn.execute(
                        "UPDATE head SET seq = ?, hash = (SELECT hash FROM entries WHERE seq = ?)",
                        (last, last),
                    )
                touched = last + 1
            elif tamper == "wipe":
                if head_seq == 0:
                    return None  # a witness that holds nothing yet: a new journal
                conn.execute("DELETE FROM entries")
                conn.execute("DELETE FROM head")
                touched = seqs[0]
            elif tamper == "delete-witness":
                self.witness.unlink()
                touched = seqs[-1]
            elif tamper == "garble-witness":
                data_ = bytearray(self.witness.read_bytes())
                data_[data.draw(st.integers(0, len(data_) - 1))] ^= data.draw(st.integers(1, 255))
                self.witness.write_bytes(bytes(data_))
                touched = seqs[-1]
            else:  # roll-back-witness, to before the newest entry that claims it durable
                older = [w for w in self.history if decode(w).head.seq < self.floor]
                if not older:
                    return None
                self.witness.write_bytes(data.draw(st.sampled_from(older)))
                touched = seqs[-1]
            conn.commit()
            return touched
        finally:
            conn.close()


def rehash(conn: sqlite3.Connection, start: int) -> None:
    """Recompute the hash of ``start`` and of every entry after it, and the head: a
    chain that verifies, rewritten from ``start`` on."""
    rows = conn.execute(
        f"SELECT {ENTRY_COLUMNS} FROM entries WHERE seq >= ? ORDER BY seq", (start,)
    ).fetchall()
    prev_hash = None
    for row in rows:
        entry = row_to_entry(row)
        if prev_hash is not None:
            entry = type(entry)(**{**entry.__dict__, "prev_hash": prev_hash})
        prev_hash = computed_hash(entry)
        conn.execute(
            "UPDATE entries SET prev_hash = ?, hash = ? WHERE seq = ?",
            (entry.prev_hash, prev_hash, entry.seq),
        )
    if rows:
        conn.execute("UPDATE head SET seq = ?, hash = ?", (rows[-1][0], prev_hash))


WitnessMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestWitnessMachine = WitnessMachine.TestCase
