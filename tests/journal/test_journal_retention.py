"""Retention: bounded by age, count or bytes; whole runs; faulted runs kept; chain intact."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest

from interlock.errors import JournalCorrupt, JournalError
from interlock.journal import JournalReader, verify_journal
from interlock.journal.retention import RetentionPolicy, prune


def seqs(path) -> list[int]:
    with JournalReader(path) as reader:
        return [e.seq for e in reader.entries()]


def fill(journal, clock, n: int, run: str = "") -> None:
    journal.run_id = run
    for i in range(n):
        clock.advance(60)
        journal.measurement("VBUS", voltage=float(i))
    journal.end_run()


def test_prune_by_count_keeps_the_newest_and_verifies(journal, journal_path, clock):
    fill(journal, clock, 30)
    report = prune(journal, RetentionPolicy(max_entries=10), actor="ops")
    assert (report.removed, report.ranges) == (20, [(1, 20)])
    assert seqs(journal_path) == [*range(21, 31), 31]
    assert report.entry.kind == "journal" and report.entry.actor == "ops"
    assert report.entry.payload["ranges"] == [[1, 20]]
    assert report.entry.payload["policy"] == {"include_faulted": False, "max_entries": 10}
    result = verify_journal(journal_path)
    assert (result.entries, result.first_seq, result.pruned_gaps) == (11, 21, 1)


def test_prune_by_age(journal, journal_path, clock):
    fill(journal, clock, 10)  # one entry a minute
    # Now is 09:40; entries were written at 09:31 .. 09:40.
    report = prune(journal, RetentionPolicy(max_age=timedelta(minutes=3, seconds=30)))
    assert report.ranges == [(1, 6)]
    verify_journal(journal_path)


def test_prune_by_bytes(journal, journal_path, clock):
    fill(journal, clock, 20)
    report = prune(journal, RetentionPolicy(max_bytes=1000))
    assert 0 < report.removed < 20
    assert seqs(journal_path)[0] == report.ranges[-1][1] + 1
    verify_journal(journal_path)


def test_faulted_runs_are_kept_unless_asked(journal, journal_path, clock):
    fill(journal, clock, 3, run="old-ok")  # 1..3
    journal.begin_run("old-fault")
    journal.fault("overcurrent", "VBUS 2.1 A")  # 4
    journal.end_run()
    fill(journal, clock, 3, run="old-ok-2")  # 5..7
    fill(journal, clock, 5)  # 8..12
    report = prune(journal, RetentionPolicy(max_entries=5))
    assert report.ranges == [(1, 3), (5, 7)]
    assert report.spared_faulted == 1
    assert seqs(journal_path) == [4, *range(8, 14)]
    assert verify_journal(journal_path).pruned_gaps == 2

    report = prune(journal, RetentionPolicy(max_entries=5, include_faulted=True))
    assert report.ranges == [(4, 4), (8, 8)]
    assert verify_journal(journal_path).pruned_gaps == 1


def test_a_run_is_pruned_whole_or_not_at_all(journal, journal_path, clock):
    fill(journal, clock, 4, run="r1")  # 1..4
    fill(journal, clock, 4, run="r2")  # 5..8
    report = prune(journal, RetentionPolicy(max_entries=2))
    assert report.ranges == [(1, 4)]
    assert report.spared_runs == 2
    verify_journal(journal_path)


def test_nothing_to_prune_writes_nothing(journal, journal_path, clock):
    fill(journal, clock, 3)
    report = prune(journal, RetentionPolicy(max_entries=10))
    assert report.removed == 0 and report.entry is None
    assert seqs(journal_path) == [1, 2, 3]


def test_dry_run_removes_nothing(journal, journal_path, clock):
    fill(journal, clock, 5)
    report = prune(journal, RetentionPolicy(max_entries=1), dry_run=True)
    assert report.ranges == [(1, 4)] and report.entry is None
    assert seqs(journal_path) == [1, 2, 3, 4, 5]


def test_pruning_everything_still_verifies_and_appends(journal, journal_path, clock):
    fill(journal, clock, 5)
    prune(journal, RetentionPolicy(max_entries=0))
    assert seqs(journal_path) == [6]
    journal.fault("x", "y")
    assert verify_journal(journal_path).entries == 2


def test_repeated_prunes_keep_the_chain(journal, journal_path, clock):
    for _ in range(4):
        fill(journal, clock, 7)
        prune(journal, RetentionPolicy(max_entries=5))
        verify_journal(journal_path)


def test_removal_after_a_prune_is_still_detected(journal, journal_path, clock):
    fill(journal, clock, 30)
    prune(journal, RetentionPolicy(max_entries=10))  # keeps 21..31
    conn = sqlite3.connect(journal_path)
    conn.execute("DELETE FROM entries WHERE seq = 21")
    conn.commit()
    conn.close()
    with pytest.raises(JournalCorrupt) as caught:
        verify_journal(journal_path)
    assert caught.value.seq == 21


def test_a_corrupt_journal_is_not_pruned(journal, journal_path, clock):
    fill(journal, clock, 10)
    conn = sqlite3.connect(journal_path)
    conn.execute("UPDATE entries SET actor = 'mallory' WHERE seq = 2")
    conn.commit()
    conn.close()
    with pytest.raises(JournalCorrupt):
        prune(journal, RetentionPolicy(max_entries=1))
    assert seqs(journal_path) == list(range(1, 11))


def test_policy_needs_a_bound():
    with pytest.raises(JournalError, match="needs a maximum"):
        RetentionPolicy()
    with pytest.raises(JournalError, match="must not be negative"):
        RetentionPolicy(max_entries=-1)


def test_a_run_appended_to_while_pruning_is_kept(journal, journal_path, clock, monkeypatch):
    from interlock.journal import retention

    fill(journal, clock, 4, run="r1")  # 1..4
    fill(journal, clock, 4)  # 5..8
    real_plan = retention._plan

    def plan_then_append(*args, **kwargs):
        plan = real_plan(*args, **kwargs)
        # Another thread appends to r1 (say, it faults) after the snapshot.
        journal.append("fault", {"cause": "late", "detail": ""}, run_id="r1")
        return plan

    monkeypatch.setattr(retention, "_plan", plan_then_append)
    report = prune(journal, RetentionPolicy(max_entries=2))
    assert report.ranges == [(5, 6)]
    assert report.spared_runs == 4
    assert seqs(journal_path)[:4] == [1, 2, 3, 4]
    verify_journal(journal_path)


def test_a_gap_declared_by_hand_is_detected(journal, journal_path, clock):
    fill(journal, clock, 30)
    prune(journal, RetentionPolicy(max_entries=10))  # keeps 21..31
    conn = sqlite3.connect(journal_path)
    prev_hash = conn.execute("SELECT prev_hash FROM entries WHERE seq = 26").fetchone()[0]
    conn.execute("DELETE FROM entries WHERE seq = 25")
    conn.execute("INSERT INTO pruned VALUES (24, 26, ?)", (prev_hash,))
    conn.commit()
    conn.close()
    with pytest.raises(JournalCorrupt) as caught:
        verify_journal(journal_path)
    assert caught.value.seq == 25
    assert "gap not listed by the last prune entry" in str(caught.value)


def test_the_prune_entry_lists_every_gap(journal, journal_path, clock):
    fill(journal, clock, 3, run="old-ok")  # 1..3
    journal.begin_run("old-fault")
    journal.fault("overcurrent", "VBUS 2.1 A")  # 4
    journal.end_run()
    fill(journal, clock, 3)  # 5..7
    report = prune(journal, RetentionPolicy(max_entries=0))
    assert report.entry.payload["gaps"] == [[0, 4], [4, 8]]
    assert verify_journal(journal_path).pruned_gaps == 2
