"""A journal whose files are removed, or replaced, while it holds them open.

Without a check, SQLite goes on writing to the removed files: every commit after
that "succeeds", goes nowhere anyone will find it, and is gone when the process
ends. The journal asks before each commit: it refuses the write that found it,
puts back what it holds (in a thread of its own) where the place is free, and
refuses every write when it cannot put the record back.
"""

from __future__ import annotations

import grp
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from interlock.errors import JournalError
from interlock.journal import Journal, JournalReader, store, verify_journal
from interlock.journal.files import JournalAccess, companions
from interlock.journal.putback import put_back
from interlock.journal.startup import ChainGuard, check_at_start
from interlock.journal.witness import read_witness, witness_path
from tests.waiting import until


def append(journal: Journal, count: int) -> None:
    for i in range(count):
        journal.measurement("VBUS", voltage=float(i))


def kinds_in(path: Path) -> list[str]:
    """Every entry's kind, read by a connection of its own (as another process would)."""
    with JournalReader(path) as reader:
        return [entry.kind for entry in reader.entries()]


def settled(journal: Journal) -> None:
    """Once what the journal puts back is put back (a thread of its own does it)."""
    assert until(lambda: not journal.putting_back), "still putting back"


def put_back_entries(path: Path) -> list:
    with JournalReader(path) as reader:
        return [e for e in reader.entries() if e.payload.get("action") == "put back"]


def remove(*paths: Path) -> None:
    for path in paths:
        os.unlink(path)


def every_file(journal: Journal) -> list[Path]:
    return [journal.path, *companions(journal.path), witness_path(journal.path)]


def test_a_journal_removed_with_all_its_files_is_put_back_whole(journal, caplog):
    append(journal, 20)
    remove(*every_file(journal))  # rm journal.sqlite*
    with pytest.raises(JournalError, match=r"journal\.sqlite was removed.*being put back"):
        append(journal, 1)
    settled(journal)
    # The copy is made by a thread of its own, not by the write that found it (nor the
    # trip it starts): copying a large journal takes seconds.
    threads = {r.threadName for r in caplog.records if "nothing lost" in r.getMessage()}
    assert threads == {"interlock-journal-put-back"}
    assert {r.threadName for r in caplog.records if "being put back" in r.getMessage()} == {
        "MainThread"
    }
    report = verify_journal(journal.path)  # the chain and its witness, as put back
    assert (report.entries, report.last_seq) == (20, 20)
    assert read_witness(journal.path).record.head.seq == 20
    # It goes on there: the next write is in the file, after its own record of the event.
    append(journal, 1)
    assert kinds_in(journal.path) == ["measurement"] * 20 + ["journal", "measurement"]
    (put_back,) = put_back_entries(journal.path)
    assert put_back.kind == "journal"
    assert put_back.payload["how"] == "put back from what this journal held open"
    assert put_back.payload["last"] == 20
    assert "journal.sqlite was removed" in put_back.payload["found"]
    assert verify_journal(journal.path).entries == 22


def test_without_the_check_the_writes_after_a_removal_go_nowhere(tmp_path):
    """What the check is for: SQLite itself takes the writes without a word."""
    path = tmp_path / "plain.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (x)")
    remove(path, *companions(path))
    conn.execute("INSERT INTO t VALUES (1)")  # no error
    conn.close()
    assert not path.exists()


def test_the_database_alone_removed_is_put_back_and_goes_on(journal):
    append(journal, 5)
    remove(journal.path)  # -wal and -shm stay: the connection's own
    with pytest.raises(JournalError, match="being put back"):
        append(journal, 1)
    settled(journal)
    append(journal, 3)
    assert kinds_in(journal.path) == ["measurement"] * 5 + ["journal"] + ["measurement"] * 3
    assert verify_journal(journal.path).entries == 9


def test_entries_staged_before_the_removal_are_written_after_it(journal):
    append(journal, 3)
    staged = journal.measurement("VBUS", voltage=9.0, durable=False)
    remove(*every_file(journal))
    with pytest.raises(JournalError):
        journal.flush()
    settled(journal)
    journal.flush()
    assert staged.seq == 4
    assert kinds_in(journal.path) == ["measurement"] * 4 + ["journal"]


def test_a_directory_removed_is_made_again_and_the_journal_put_back(tmp_path, clock):
    run = tmp_path / "run"
    with Journal(run / "journal.sqlite", bench="sim-bench", clock=clock) as journal:
        append(journal, 4)
        shutil.rmtree(run)  # rm -rf run/
        with pytest.raises(JournalError, match="being put back"):
            append(journal, 1)
        settled(journal)
        append(journal, 1)
    assert oct(run.stat().st_mode & 0o777) == oct(0o700)
    assert oct((run / "journal.sqlite").stat().st_mode & 0o777) == oct(0o600)
    assert verify_journal(run / "journal.sqlite").entries == 6


def test_a_journal_replaced_by_another_file_is_saved_beside_it_and_not_written_again(journal):
    append(journal, 7)
    other = journal.path.with_name("other.sqlite")
    other.write_bytes(b"not this journal")
    os.replace(other, journal.path)
    with pytest.raises(JournalError, match=r"replaced by another file.*being put back"):
        append(journal, 1)
    settled(journal)
    with pytest.raises(JournalError, match=r"saved as journal\.sqlite\.saved-"):
        append(journal, 1)
    assert journal.path.read_bytes() == b"not this journal"  # left as it is
    (saved,) = journal.path.parent.glob("journal.sqlite.saved-*")
    with JournalReader(saved) as reader:
        assert len(list(reader.entries())) == 7
    # Nothing more: each later write is refused, saying why.
    for _ in range(2):
        with pytest.raises(JournalError, match="nothing more is written"):
            append(journal, 1)
    assert journal.path.read_bytes() == b"not this journal"


def test_a_wal_removed_saves_the_journal_beside_it_and_stops_writing(journal):
    append(journal, 6)
    remove(Path(f"{journal.path}-wal"))
    with pytest.raises(JournalError, match=r"journal\.sqlite-wal was removed"):
        append(journal, 1)
    settled(journal)
    with pytest.raises(JournalError, match=r"journal\.sqlite-wal was removed.*saved as"):
        append(journal, 1)
    (saved,) = journal.path.parent.glob("journal.sqlite.saved-*")
    with JournalReader(saved) as reader:  # what was still in the removed -wal included
        assert len(list(reader.entries())) == 6
    with pytest.raises(JournalError, match="nothing more is written"):
        append(journal, 1)


def test_files_removed_under_another_writers_transaction_are_found_without_waiting(journal):
    # Another process in a transaction on the removed files: the write looks before it
    # waits for that process's lock (up to the busy timeout) as well as after.
    append(journal, 3)
    holder = sqlite3.connect(journal.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        remove(*every_file(journal))
        with journal.waiting_at_most(0.5), pytest.raises(JournalError, match="being put back"):
            append(journal, 1)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    settled(journal)
    append(journal, 1)
    assert kinds_in(journal.path) == ["measurement"] * 3 + ["journal", "measurement"]


def test_the_next_start_names_the_copy_saved_beside_the_journal(journal_path, clock, caplog):
    # A writer that could not put its files back saved what it held beside them: every
    # later start says so (in its check's entry, and in the fault of a break, which is
    # when the copy may hold what the journal lacks) until an operator moves it away.
    journal = Journal(journal_path, bench="sim-bench", clock=clock)
    append(journal, 6)
    remove(Path(f"{journal.path}-wal"))
    with pytest.raises(JournalError, match=r"journal\.sqlite-wal was removed"):
        append(journal, 1)
    settled(journal)
    journal.close()
    (saved,) = (p.name for p in journal_path.parent.glob("journal.sqlite.saved-*"))
    for beside in ("-wal", "-shm"):  # what a reader of the copy leaves beside it
        (journal_path.parent / f"{saved}{beside}").touch()
    with Journal(journal_path, bench="sim-bench", clock=clock) as restarted:
        check = check_at_start(restarted)
    assert check.saved == (saved,)
    assert f"copies saved beside it: {saved}" in caplog.text
    with JournalReader(journal_path) as reader:
        (entry,) = [e for e in reader.entries() if e.payload.get("action") == "check"]
    assert entry.payload["saved"] == [saved]
    conn = sqlite3.connect(journal_path)  # and a break found at the next start
    conn.execute("UPDATE entries SET actor = 'mallory' WHERE seq = ?", (entry.seq,))
    conn.commit()
    conn.close()
    trips: list[tuple[str, str]] = []
    with Journal(journal_path, bench="sim-bench", clock=clock) as restarted:
        ChainGuard(restarted, check_at_start(restarted)).latch(lambda *trip: trips.append(trip))
    assert trips == [
        (
            "journal-chain",
            f"entry {entry.seq}: content does not match its hash (edited); "
            f"saved beside it when its files went: {saved}",
        )
    ]


def test_a_journal_that_writes_no_more_keeps_no_more_than_a_backlog(journal, caplog):
    # Nothing staged is written again: a client flooding a bench whose journal went must
    # not grow the staged entries, nor the log, without end.
    append(journal, 2)
    remove(Path(f"{journal.path}-wal"))
    with pytest.raises(JournalError, match="being put back"):
        append(journal, 1)
    settled(journal)
    with pytest.raises(JournalError, match="nothing more is written"):
        append(journal, 1)
    caplog.clear()
    for i in range(3 * store.MAX_STAGED):
        journal.stage("request", {"action": "set", "value": i})
    assert journal.staged == store.MAX_STAGED
    assert journal.not_kept == 2 * store.MAX_STAGED
    assert len(caplog.records) == 1
    assert "no more are kept" in caplog.records[0].getMessage()
    # What a status shows of it: why it writes nothing, and what it could not keep.
    condition = journal.condition()
    assert "nothing more is written" in condition["not_writing"]
    assert (condition["staged"], condition["not_kept"]) == (store.MAX_STAGED, 2 * store.MAX_STAGED)


def test_a_journal_that_writes_says_so_in_its_condition(journal):
    append(journal, 2)
    assert journal.condition() == {
        "not_writing": None,
        "staged": 0,
        "not_kept": 0,
        "unjournaled": 0,
    }
    remove(Path(f"{journal.path}-wal"))
    with pytest.raises(JournalError, match="being put back"):
        append(journal, 1)
    assert journal.condition()["not_writing"] is not None  # until it is settled


def test_a_witness_removed_is_put_back_at_the_head_it_held(journal):
    append(journal, 8)
    remove(witness_path(journal.path))
    with pytest.raises(JournalError, match=r"journal\.sqlite\.head was removed"):
        append(journal, 1)
    settled(journal)
    assert read_witness(journal.path).record.head.seq == 8
    append(journal, 2)
    report = verify_journal(journal.path)
    assert (report.entries, read_witness(journal.path).record.head.seq) == (11, 11)


def test_a_journal_left_alone_is_never_taken_for_removed(journal):
    # Commits, checkpoints, other writers and readers, in this process and in others,
    # change none of the files.
    append(journal, 50)
    with JournalReader(journal.path) as reader:
        assert len(list(reader.entries())) == 50
    other = Journal(journal.path, bench="sim-bench")
    try:
        append(other, 5)
    finally:
        other.close()
    another_process = (
        "import sys; from interlock.journal import Journal, verify_journal\n"
        "with Journal(sys.argv[1], bench='sim-bench', actor='cli') as j:\n"
        "    j.measurement('VBUS', voltage=1.0)\n"
        "print(verify_journal(sys.argv[1]).entries)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", another_process, str(journal.path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.split() == ["56"]
    conn = sqlite3.connect(journal.path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    append(journal, 5)
    assert not journal.putting_back
    assert verify_journal(journal.path).entries == 61


def test_a_write_that_waited_for_another_writer_while_the_files_went_is_refused(journal):
    """The check is made once the write lock is had: a write that waited for another
    process's transaction, and the files went meanwhile, would otherwise commit into
    the removed files (its check made before the wait found them in place)."""
    append(journal, 3)
    holder = sqlite3.connect(journal.path, isolation_level=None)  # another process's write
    holder.execute("BEGIN IMMEDIATE")
    refused: list[BaseException] = []

    def write() -> None:
        try:
            append(journal, 1)
        except JournalError as error:
            refused.append(error)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert until(journal._lock.locked), "the write did not start"
        time.sleep(0.2)  # into its BEGIN, waiting for the holder (a write lasts 30 s)
        remove(*every_file(journal))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        writer.join(timeout=60)
    assert not writer.is_alive()
    assert refused and "being put back" in str(refused[0])
    settled(journal)
    append(journal, 1)
    assert kinds_in(journal.path) == ["measurement"] * 3 + ["journal", "measurement"]
    assert verify_journal(journal.path).entries == 5


def test_a_journal_closed_after_its_files_went_is_put_back_first(tmp_path, clock):
    """Nothing written after the removal finds it but the close: the record must not go
    with the connection (a service stopped, a guardian stood down)."""
    path = tmp_path / "journal.sqlite"
    journal = Journal(path, bench="sim-bench", clock=clock)
    append(journal, 5)
    staged = journal.measurement("VBUS", voltage=9.0, durable=False)
    remove(*every_file(journal))
    journal.close()
    assert staged.seq == 6
    assert kinds_in(path) == ["measurement"] * 6 + ["journal"]
    assert verify_journal(path).entries == 7

    journal = Journal(path, bench="sim-bench", clock=clock)
    append(journal, 2)
    remove(*every_file(journal))  # nothing staged at all
    journal.close()
    assert verify_journal(path).entries == 10


def test_a_witness_removed_while_the_database_is_put_back_is_put_back_too(journal):
    """rm removes the files one by one, and a write may come between two of them: here
    the witness goes while the database is being copied back (a journal large enough
    for the copy to take a while). It is noticed at the next write, and put back."""
    for _ in range(40):
        for _ in range(999):
            journal.measurement("VBUS", voltage=1.0, durable=False)
        journal.flush()
    remove(journal.path)
    with pytest.raises(JournalError, match="being put back"):
        append(journal, 1)
    copies = journal.path.parent.glob
    deadline = time.monotonic() + 10
    while journal.putting_back and not list(copies(".journal.sqlite.copy-*")):
        assert time.monotonic() < deadline  # the copy under way: what went was looked at
    remove(witness_path(journal.path))
    settled(journal)
    for _ in range(2):  # found by the put-back (if it looked after all), or by this write
        try:
            append(journal, 1)
            break
        except JournalError:
            settled(journal)
    assert witness_path(journal.path).exists()
    report = verify_journal(journal.path)
    assert read_witness(journal.path).record.head.seq == report.last_seq


def test_an_off_command_does_not_wait_for_a_put_back(journal, monkeypatch):
    """The put-back holds the journal's write lock while it copies: the safe state's off
    command goes out at once, unjournaled, and is journaled (flagged) right after."""
    copying, go_on = threading.Event(), threading.Event()

    def held_up(*arguments):
        copying.set()
        go_on.wait(10)
        return put_back(*arguments)

    monkeypatch.setattr(store, "put_back", held_up)
    append(journal, 3)
    remove(*every_file(journal))
    with pytest.raises(JournalError, match="being put back"):
        append(journal, 1)
    assert copying.wait(10)  # the put-back holds the write lock from here
    intent = journal.safe_off_intent("psu1", "OUTP OFF,(@1)\n")
    assert (intent.seq, journal.unjournaled, journal.putting_back) == (0, 1, True)
    go_on.set()
    settled(journal)
    journal.flush()
    with JournalReader(journal.path) as reader:
        (flagged,) = [e for e in reader.entries() if e.payload.get("unjournaled")]
    # Not "journal busy for 0.05 s": it did not wait for the lock.
    assert "being put back" in flagged.payload["unjournaled"]


def test_a_writer_opened_without_a_group_keeps_the_journals(tmp_path):
    """The guardian opens the service's journal without the bench's journal_group: what
    it puts back, or takes, keeps the group the files had."""
    group = next(g for g in grp.getgrall() if g.gr_gid != os.getgid())
    path = tmp_path / "journal.sqlite"
    service = Journal(path, bench="sim-bench", access=JournalAccess(group.gr_name))
    guardian = Journal(path, bench="sim-bench", actor="guardian")
    try:
        append(service, 2)
        remove(*every_file(service))
        with pytest.raises(JournalError):
            append(guardian, 1)  # the guardian is the one to put it back
        settled(guardian)
        append(guardian, 1)
        with pytest.raises(JournalError):
            append(service, 1)  # and the service takes it
        settled(service)
        append(service, 1)
    finally:
        guardian.close()
        service.close()
    for file in (path, *companions(path), witness_path(path)):
        if file.exists():
            found = file.stat()
            assert (oct(found.st_mode & 0o777), found.st_gid) == (oct(0o640), group.gr_gid), file
    assert verify_journal(path).entries == 2 + 1 + 1 + 1 + 1


@pytest.mark.parametrize("removed", ["every file", "the database alone"])
def test_a_second_writer_goes_on_in_the_journal_the_first_put_back(journal, removed):
    """The guardian holds the service's journal open too: after the service put it
    back, the guardian's next write finds another file there, holding its chain, and
    goes on in it rather than saving a copy of its own. (The -wal and -shm the two
    shared are not the new file's: the first writer removes them before it opens it.)"""
    other = Journal(journal.path, bench="sim-bench", actor="guardian")
    try:
        append(journal, 4)
        append(other, 2)
        remove(*(every_file(journal) if removed == "every file" else [journal.path]))
        with pytest.raises(JournalError, match="being put back"):
            append(journal, 1)
        settled(journal)
        with pytest.raises(JournalError, match=r"journal\.sqlite was replaced by another file"):
            append(other, 1)
        settled(other)
        append(other, 1)
        append(journal, 1)
    finally:
        other.close()
    hows = sorted(e.payload["how"] for e in put_back_entries(journal.path))
    assert hows == ["another writer had put it back", "put back from what this journal held open"]
    assert not list(journal.path.parent.glob("*.saved-*"))
    report = verify_journal(journal.path)
    assert report.entries == 4 + 2 + 2 + 1 + 1  # both writers' entries and each one's record
    assert read_witness(journal.path).record.head.seq == report.last_seq
