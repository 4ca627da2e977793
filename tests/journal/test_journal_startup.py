"""The start-up check, from the witness's checkpoint on, and the acknowledgement of a break."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from interlock.errors import FaultLatched, JournalCorrupt
from interlock.journal import Journal, JournalReader, verify_journal
from interlock.journal.retention import RetentionPolicy, prune
from interlock.journal.startup import ChainGuard, check_at_start
from interlock.journal.witness import read_witness


def append(journal: Journal, count: int) -> None:
    for i in range(count):
        journal.measurement("VBUS", voltage=float(i))


def tamper(path: Path, statement: str) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def test_each_start_checks_what_was_written_since_the_last(journal):
    append(journal, 100)
    first = check_at_start(journal)
    assert (first.ok, first.after, first.entries, first.entry) == (True, 0, 100, 101)
    assert read_witness(journal.path).record.checked.seq == 100
    append(journal, 10)
    second = check_at_start(journal)
    # The first check's own entry and the ten after it.
    assert (second.ok, second.after, second.entries) == (True, 100, 11)
    with JournalReader(journal.path) as reader:
        entry = list(reader.entries())[-1]
    assert entry.payload["action"] == "check"
    assert entry.payload["witnessed"][0] == 111  # made durable before it said so


def test_an_edit_since_the_last_start_is_found_at_start(journal):
    append(journal, 10)
    check_at_start(journal)
    append(journal, 10)
    tamper(journal.path, "UPDATE entries SET actor = 'mallory' WHERE seq = 15")
    check = check_at_start(journal)
    assert [(b.seq, b.problem) for b in check.breaks] == [
        (15, "entry 15: content does not match its hash (edited)")
    ]
    # The break is journaled, and the checkpoint stays before it.
    assert read_witness(journal.path).record.checked.seq == 10
    assert check_at_start(journal).breaks == check.breaks


def test_an_edit_before_the_checkpoint_is_left_to_journal_verify(journal):
    # What keeps a start short on a big journal: entries checked once are not read again.
    append(journal, 10)
    check_at_start(journal)
    tamper(journal.path, "UPDATE entries SET actor = 'mallory' WHERE seq = 5")
    assert check_at_start(journal).ok
    with pytest.raises(JournalCorrupt, match="entry 5: content does not match its hash"):
        verify_journal(journal.path)


def test_a_cut_below_the_checkpoint_is_found_at_start(journal):
    append(journal, 50)
    check_at_start(journal)
    tamper(journal.path, "DELETE FROM entries WHERE seq > 20")
    tamper(
        journal.path, "UPDATE head SET seq = 20, hash = (SELECT hash FROM entries WHERE seq = 20)"
    )
    check = check_at_start(journal)
    assert check.after == 0  # the checkpoint's entry is gone: the whole chain is read
    assert check.breaks[0].problem == (
        "entries 21..51 are missing at the end: the witness journal.sqlite.head records seq 51 "
        "(cut)"
    )


def test_a_guard_latches_the_first_break_and_a_reset_acknowledges_it(journal):
    append(journal, 10)
    tamper(journal.path, "UPDATE entries SET actor = 'mallory' WHERE seq = 4")
    tamper(journal.path, "UPDATE entries SET actor = 'mallory' WHERE seq = 7")
    guard = ChainGuard(journal, check_at_start(journal))
    trips: list[tuple[str, str]] = []
    guard.latch(lambda cause, detail: trips.append((cause, detail)))
    assert trips == [
        ("journal-chain", "entry 4: content does not match its hash (edited) (and 1 more break(s))")
    ]
    guard.before_reset("olga", f"journal-chain: {trips[0][1]}")
    assert guard.pending == ()
    report = verify_journal(journal.path)
    assert [(a.brk.seq, a.actor) for a in report.acknowledged] == [(4, "olga"), (7, "olga")]
    # The next start goes past them.
    assert check_at_start(journal).ok


def test_a_reset_of_another_fault_first_says_the_chain_is_broken(journal):
    append(journal, 5)
    tamper(journal.path, "UPDATE entries SET actor = 'mallory' WHERE seq = 2")
    guard = ChainGuard(journal, check_at_start(journal))
    with pytest.raises(FaultLatched, match="the journal's chain is broken too: entry 2"):
        guard.before_reset("olga", "estop: emergency stop by bob")
    assert guard.pending
    guard.before_reset("olga", "estop: emergency stop by bob")
    assert guard.pending == () and check_at_start(journal).ok


def test_nothing_broken_nothing_latched(journal):
    append(journal, 5)
    guard = ChainGuard(journal, check_at_start(journal))
    guard.latch(lambda cause, detail: pytest.fail("tripped"))
    guard.before_reset("olga", "estop: emergency stop by bob")


def test_an_acknowledged_break_is_not_pruned_and_an_acknowledgement_outlives_retention(journal):
    append(journal, 10)
    tamper(journal.path, "UPDATE entries SET actor = 'mallory' WHERE seq = 3")
    ChainGuard(journal, check_at_start(journal)).before_reset("olga", "journal-chain: entry 3")
    policy = RetentionPolicy(max_entries=0, include_faulted=True)
    with pytest.raises(JournalCorrupt) as caught:
        prune(journal, policy)
    assert str(caught.value).startswith(
        "entry 3: content does not match its hash (edited): acknowledged by olga at entry 12;"
        " a journal with a break is not pruned"
    )
    # A wipe acknowledged: the witness is anchored anew, and the acknowledgement is its record.
    tamper(journal.path, "DELETE FROM entries")
    tamper(journal.path, "DELETE FROM head")
    ChainGuard(journal, check_at_start(journal)).before_reset("olga", "journal-chain: wiped")
    append(journal, 3)
    report = prune(journal, policy)
    assert report.removed == 4  # the check and the three after it; not the acknowledgement
    with JournalReader(journal.path) as reader:
        kept = [e.payload["action"] for e in reader.entries()]
    assert kept == ["acknowledge", "prune"]
    assert "(wiped)" in verify_journal(journal.path).acknowledged[-1].brk.problem
