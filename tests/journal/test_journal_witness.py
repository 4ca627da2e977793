"""The witness beside the journal: a wipe or a cut tail is reported, a crash's lag is not.

Real SQLite files; the database is changed behind the journal's back with
plain sqlite3, as someone with the file would.
"""

from __future__ import annotations

import getpass
import sqlite3
from pathlib import Path

import pytest

from interlock.cli import main
from interlock.errors import JournalCorrupt, JournalError
from interlock.journal import Journal, JournalReader, verify_journal
from interlock.journal.retention import RetentionPolicy, prune
from interlock.journal.startup import adopt, check_at_start
from interlock.journal.witness import (
    SIZE,
    Point,
    Witness,
    WitnessRecord,
    decode,
    encode,
    read_witness,
    witness_path,
)


def write(path: Path, count: int, clock=None) -> Journal:
    journal = Journal(path, bench="sim-bench", clock=clock)
    for i in range(count):
        journal.measurement("VBUS", voltage=float(i), current=0.1)
    return journal


@pytest.fixture
def hundred(journal_path: Path, clock) -> Path:
    write(journal_path, 100, clock).close()
    assert verify_journal(journal_path).last_seq == 100
    return journal_path


def tamper(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def corrupt(path: Path) -> JournalCorrupt:
    with pytest.raises(JournalCorrupt) as caught:
        verify_journal(path)
    return caught.value


def cli(capsys, *argv: str) -> tuple[int, list[str], list[str]]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def witness_bytes(path: Path) -> bytes:
    return witness_path(path).read_bytes()


def test_every_commit_moves_the_witness_to_the_head(journal_path, clock):
    with write(journal_path, 3, clock) as journal:
        last = journal.last()
        record = read_witness(journal_path).record
        assert record is not None and record.head == (3, last.hash)
        # A staged entry moves it with the commit that writes it.
        journal.measurement("VBUS", voltage=1.0, durable=False)
        assert read_witness(journal_path).record.head.seq == 3
        journal.flush()
        assert read_witness(journal_path).record.head == (4, journal.last().hash)


def test_a_wiped_journal_is_reported_naming_what_is_missing(hundred, capsys):
    tamper(hundred, "DELETE FROM entries", "DELETE FROM head")
    error = corrupt(hundred)
    assert error.seq == 1
    assert str(error) == (
        "the journal is empty, but its witness journal.sqlite.head records entries up to "
        "seq 100 (wiped)"
    )
    code, out, err = cli(capsys, "journal", "verify", "--journal", str(hundred))
    assert (code, out) == (4, [])
    assert err == [f"JournalCorrupt: {error}"]


def test_a_deleted_database_is_a_wipe_too(hundred):
    for path in (hundred, Path(f"{hundred}-wal"), Path(f"{hundred}-shm")):
        path.unlink(missing_ok=True)
    Journal(hundred, bench="sim-bench").close()  # the service makes a new, empty one
    assert "(wiped)" in str(corrupt(hundred))


def test_a_cut_tail_with_its_head_moved_is_reported(hundred, capsys):
    tamper(
        hundred,
        "DELETE FROM entries WHERE seq > 50",
        "UPDATE head SET seq = 50, hash = (SELECT hash FROM entries WHERE seq = 50)",
    )
    error = corrupt(hundred)
    assert error.seq == 51
    assert str(error) == (
        "entries 51..100 are missing at the end: the witness journal.sqlite.head records "
        "seq 100 (cut)"
    )
    code, _, err = cli(capsys, "journal", "verify", "--journal", str(hundred))
    assert code == 4 and err == [f"JournalCorrupt: {error}"]


def test_a_rewritten_tail_is_reported(hundred, clock):
    # The last 10 cut and 12 others written in their place, chained and headed right:
    # the chain verifies, but the witness's entry is not the one there now.
    tamper(
        hundred,
        "DELETE FROM entries WHERE seq > 90",
        "UPDATE head SET seq = 90, hash = (SELECT hash FROM entries WHERE seq = 90)",
    )
    saved = witness_bytes(hundred)
    journal = write(hundred, 12, clock)  # a writer: it leaves a witness off its chain alone
    journal.close()
    assert witness_bytes(hundred) == saved
    error = corrupt(hundred)
    assert error.seq == 100
    assert str(error) == (
        "entry 100: not the entry the witness journal.sqlite.head records "
        "(removed, replaced or rewritten)"
    )


def test_a_witness_that_lags_the_database_is_accepted(hundred, clock):
    # As after a crash between a commit and its witness write.
    lagging = witness_bytes(hundred)
    with Journal(hundred, bench="sim-bench", clock=clock) as journal:
        journal.measurement("VBUS", voltage=1.0)
        journal.measurement("VBUS", voltage=2.0)
    witness_path(hundred).write_bytes(lagging)
    report = verify_journal(hundred)
    assert (report.last_seq, report.witness.head.seq) == (102, 100)
    # The next writer finds it on its chain and moves it on.
    with Journal(hundred, bench="sim-bench", clock=clock) as journal:
        entry = journal.measurement("VBUS", voltage=3.0)
    assert read_witness(hundred).record.head == (entry.seq, entry.hash)


def test_a_witness_rolled_back_past_a_durable_claim_is_reported(hundred, clock):
    old = witness_bytes(hundred)
    with Journal(hundred, bench="sim-bench", clock=clock) as journal:
        check = check_at_start(journal)  # claims the witness durable at seq 100
        journal.measurement("VBUS", voltage=1.0)
    assert check.ok
    assert verify_journal(hundred).last_seq == 102
    witness_path(hundred).write_bytes(old)
    assert verify_journal(hundred).witness.head.seq == 100  # the claim's own seq: a lag
    with Journal(hundred, bench="sim-bench", clock=clock) as journal:
        journal.measurement("VBUS", voltage=2.0)
        check_at_start(journal)  # claims seq 103
    witness_path(hundred).write_bytes(old)
    error = corrupt(hundred)
    assert str(error) == (
        "the witness journal.sqlite.head records seq 100, older than seq 103 that entry 104 "
        "found it durable at (rolled back)"
    )


def test_a_missing_or_garbled_witness_is_reported(hundred):
    witness = witness_path(hundred)
    good = witness.read_bytes()
    witness.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    assert str(corrupt(hundred)) == (
        "the witness journal.sqlite.head is unreadable (its checksum does not match)"
    )
    witness.write_bytes(b"")
    assert "unreadable (0 bytes where a record has 92)" in str(corrupt(hundred))
    witness.unlink()
    error = corrupt(hundred)
    assert str(error).startswith(
        "no witness beside the journal (journal.sqlite.head): its head is anchored nowhere"
    )
    assert "interlock journal verify --adopt" in str(error)


def test_an_empty_journal_needs_no_witness(journal_path):
    Journal(journal_path, bench="b").close()
    witness_path(journal_path).unlink()
    assert verify_journal(journal_path).entries == 0


def test_a_journal_from_before_witnesses_is_adopted_explicitly(hundred, capsys):
    witness_path(hundred).unlink()
    # A writer does not make one up for a journal that holds entries.
    write(hundred, 1).close()
    assert not witness_path(hundred).exists()
    code, _, err = cli(capsys, "journal", "verify", "--journal", str(hundred))
    assert code == 4 and "no witness beside the journal" in err[0]
    code, out, err = cli(capsys, "journal", "verify", "--adopt", "--journal", str(hundred))
    assert (code, err) == (0, [])
    assert out[0] == "adopted: witness journal.sqlite.head anchored at entry #102"
    assert out[1] == (
        f"journal {hundred}: 102 entries (seq 1..102): chain OK but for 1 acknowledged break(s)"
    )
    assert out[2].startswith("  no witness beside the journal (journal.sqlite.head)")
    assert f"adopted by cli:{getpass.getuser()} at entry 102 (" in out[2]
    assert out[4] == (
        "witness journal.sqlite.head: holds the head at seq 102; "
        "the service's start-up check has verified the chain up to seq 101"
    )
    with JournalReader(hundred) as reader:
        entry = list(reader.entries())[-1]
    assert (entry.kind, entry.actor, entry.payload["action"]) == (
        "journal",
        f"cli:{getpass.getuser()}",
        "adopt",
    )
    assert entry.payload["breaks"][0]["mark"] == "witness-missing"
    # Once is enough.
    code, _, err = cli(capsys, "journal", "verify", "--adopt", "--journal", str(hundred))
    assert code == 4
    assert err == [f"JournalError: {hundred}: nothing to adopt: the journal has its witness"]


def test_adoption_refuses_a_broken_chain(hundred):
    witness_path(hundred).unlink()
    tamper(hundred, "UPDATE entries SET actor = 'mallory' WHERE seq = 7")
    with Journal(hundred, bench="sim-bench") as journal, pytest.raises(JournalCorrupt) as caught:
        adopt(journal, "olga")
    assert str(caught.value) == (
        "entry 7: content does not match its hash (edited) (only a whole chain is adopted)"
    )
    assert not witness_path(hundred).exists()


def test_pruning_keeps_the_witness_on_the_chain(journal_path, clock):
    with write(journal_path, 20, clock) as journal:
        before = witness_bytes(journal_path)
        report = prune(journal, RetentionPolicy(max_entries=0, include_faulted=True))
        assert report.removed == 20
        entry = report.entry
        assert entry.payload["witnessed"] == [20, decode(before).head.hash]
        record = read_witness(journal_path).record
        assert record.head == record.checked == (entry.seq, entry.hash)
        # A witness from before the prune that removed its entry: a lag would be on
        # the chain (the last removed entry is recorded); this one predates the claim.
        witness_path(journal_path).write_bytes(
            encode(WitnessRecord(Point(10, "ab" * 32), Point(0, "00" * 32)))
        )
        assert "entry 10: not the entry the witness" in str(corrupt(journal_path))
        witness_path(journal_path).write_bytes(before)  # the pre-prune head: a lag
        assert verify_journal(journal_path).witness.head.seq == 20
        journal.measurement("VBUS", voltage=1.0)
    assert verify_journal(journal_path).witness.head.seq == 22


def test_a_journal_whose_witness_says_entries_are_missing_is_not_pruned(hundred):
    tamper(
        hundred,
        "DELETE FROM entries WHERE seq > 50",
        "UPDATE head SET seq = 50, hash = (SELECT hash FROM entries WHERE seq = 50)",
    )
    with Journal(hundred, bench="sim-bench") as journal, pytest.raises(JournalCorrupt) as caught:
        prune(journal, RetentionPolicy(max_entries=0, include_faulted=True))
    assert caught.value.seq == 51
    with JournalReader(hundred) as reader:
        assert reader.last_seq() == 50


def test_a_witness_ahead_of_a_writer_is_never_moved_back(journal_path, clock):
    # Two writers race: the one whose commit came first writes its witness last.
    with write(journal_path, 2, clock) as journal:
        first, second = journal.last(), None
    with write(journal_path, 1, clock) as journal:
        second = journal.last()
    witness = Witness.open(journal_path)
    try:
        stale = Point(1, "00" * 32)
        assert not witness.advance(stale, Point(first.seq, first.hash), lambda p: True)
        assert witness.read().head == (second.seq, second.hash)
    finally:
        witness.close()


def test_the_witness_record_is_fixed_size_with_a_checksum():
    record = WitnessRecord(Point(2**63, "ff" * 32), Point(0, "00" * 32))
    data = encode(record)
    assert len(data) == SIZE and decode(data) == record
    for i in range(SIZE):
        flipped = bytearray(data)
        flipped[i] ^= 0x40
        with pytest.raises(JournalCorrupt):
            decode(bytes(flipped))


def test_an_unreadable_witness_file_is_a_journal_error(hundred):
    witness = witness_path(hundred)
    witness.unlink()
    witness.mkdir()  # a directory where the file should be
    with pytest.raises(JournalError):
        verify_journal(hundred)
