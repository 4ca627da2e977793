"""Appending, reading back and thread-safety of the journal writer."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time

import pytest

from interlock.errors import JournalError
from interlock.journal import GENESIS_HASH, Journal, JournalReader, Kind, verify_journal
from interlock.journal.entries import computed_hash


def test_entries_carry_all_fields_and_chain(journal, journal_path, clock):
    journal.begin_run("run-1")
    first = journal.request(
        "alice", "pytest-plugin", "set", net="VBUS", quantity="voltage", value=5.0
    )
    clock.advance(0.5)
    second = journal.verdict(True, request=first.seq, rule="nets.VBUS.max_voltage")

    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert first.actor == "alice" and second.actor == "controller"
    assert first.bench == "sim-bench" and first.run_id == "run-1"
    assert first.wall_time == "2026-03-14T09:30:00.000000Z"
    assert second.mono_time - first.mono_time == pytest.approx(0.5)
    assert first.payload == {
        "action": "set",
        "client": "pytest-plugin",
        "net": "VBUS",
        "quantity": "voltage",
        "value": 5.0,
    }
    assert computed_hash(second) == second.hash

    with JournalReader(journal_path) as reader:
        assert list(reader.entries()) == [first, second]


def test_payload_is_canonical_json(journal):
    entry = journal.measurement("VBUS", voltage=24.01, current=0.2)
    assert entry.payload_json == '{"current":0.2,"net":"VBUS","voltage":24.01}'


def test_refuses_non_json_payloads_and_unknown_kinds(journal):
    with pytest.raises(JournalError, match="not plain JSON"):
        journal.measurement("VBUS", voltage=float("nan"))
    with pytest.raises(JournalError, match="unknown entry kind"):
        journal.append("gossip", {})
    assert journal.last() is None


def test_config_pins_file_hashes(journal, tmp_path):
    bench = tmp_path / "bench.toml"
    bench.write_text("[bench]\nname = 'sim'\n")
    entry = journal.config({"bench": bench}, limits={"VBUS": {"max_voltage": 5.25}})
    pinned = entry.payload["files"]["bench"]
    assert pinned["path"] == str(bench)
    assert pinned["sha256"] == hashlib.sha256(bench.read_bytes()).hexdigest()
    assert entry.payload["limits"] == {"VBUS": {"max_voltage": 5.25}}
    with pytest.raises(JournalError, match="cannot hash"):
        journal.config({"profile": tmp_path / "missing.toml"})


def test_file_is_wal_with_full_sync(journal, journal_path):
    journal.fault("estop", "button pressed")
    conn = sqlite3.connect(journal_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    assert journal._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_reopening_continues_the_chain(journal_path, clock):
    with Journal(journal_path, bench="b", clock=clock) as j:
        j.state("disconnected", "safe", "connect")
    with Journal(journal_path, bench="b", clock=clock) as j:
        entry = j.state("safe", "armed", "arm")
    assert entry.seq == 2
    assert verify_journal(journal_path).entries == 2


def test_closed_journal_refuses_appends(journal_path):
    j = Journal(journal_path, bench="b")
    j.close()
    with pytest.raises(JournalError, match="closed"):
        j.fault("x", "y")


def test_reader_refuses_a_missing_file(tmp_path):
    with pytest.raises(JournalError, match="no journal at"):
        JournalReader(tmp_path / "nope.sqlite")
    assert not (tmp_path / "nope.sqlite").exists()


def test_not_a_journal_is_a_journal_error(tmp_path):
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).close()
    with pytest.raises(JournalError, match="not a journal"):
        JournalReader(other)


def test_threads_share_one_journal(journal, journal_path):
    def work(n: int) -> None:
        for i in range(40):
            journal.measurement(f"NET{n}", voltage=float(i))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = verify_journal(journal_path)
    assert report.entries == 240 and report.last_seq == 240


def test_two_journal_objects_on_one_file_keep_one_chain(journal_path, clock):
    # Two connections stand in for two processes; BEGIN IMMEDIATE serialises them.
    a = Journal(journal_path, bench="b", actor="a")
    b = Journal(journal_path, bench="b", actor="b")
    try:

        def work(j: Journal) -> None:
            for _ in range(50):
                j.append(Kind.OPERATOR, {"action": "poke"})

        threads = [threading.Thread(target=work, args=(j,)) for j in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        a.close()
        b.close()
    assert verify_journal(journal_path).entries == 100


def test_runs_are_summarised(journal, journal_path, clock):
    journal.state("disconnected", "safe", "connect")
    journal.begin_run("r1")
    journal.operator("olga", "arm")
    journal.end_run()
    journal.begin_run("r2")
    journal.fault("readback", "VOLT? read 5.4")
    with JournalReader(journal_path) as reader:
        runs = reader.runs()
        assert [(r.run_id, r.first_seq, r.last_seq, r.faulted) for r in runs] == [
            ("r1", 2, 2, False),
            ("r2", 3, 3, True),
        ]
        assert reader.latest_run() == "r2"
        assert [e.seq for e in reader.entries(run="r1")] == [2]


def test_new_run_ids_sort_by_time(journal, clock):
    first = journal.begin_run()
    clock.advance(1)
    second = journal.begin_run()
    assert first < second and first.startswith("20260314T093000Z-")


def test_reader_pages_through_many_entries(journal_path, journal):
    with journal._write_transaction() as conn:
        for i in range(4500):
            journal._insert(conn, Kind.MEASUREMENT, {"net": "V", "voltage": i}, None, None)
    with JournalReader(journal_path) as reader:
        seqs = [e.seq for e in reader.entries()]
    assert seqs == list(range(1, 4501))


def test_a_held_write_lock_fails_an_append_after_the_busy_timeout(journal_path):
    holder = sqlite3.connect(journal_path, isolation_level=None)
    try:
        with Journal(journal_path, bench="b", busy_timeout=0.2) as j:
            holder.execute("BEGIN IMMEDIATE")
            start = time.monotonic()
            with pytest.raises(JournalError, match="cannot start a write: database is locked"):
                j.fault("x", "y")
            assert time.monotonic() - start < 5
            holder.execute("ROLLBACK")
            assert j.fault("x", "y").seq == 1
    finally:
        holder.close()


def test_each_write_waits_for_a_held_journal_as_long_as_its_own_bound(journal_path):
    # The busy timeout is set only when a write needs another than the last: a
    # bounded write after an unbounded one, and the other way round, each wait theirs.
    holder = sqlite3.connect(journal_path, isolation_level=None)

    def waited(j: Journal, bound: float | None) -> float:
        start = time.monotonic()
        with pytest.raises(JournalError):
            if bound is None:
                j.fault("x", "y")
            else:
                with j.waiting_at_most(bound):
                    j.fault("x", "y")
        return time.monotonic() - start

    try:
        with Journal(journal_path, bench="b", busy_timeout=0.6) as j:
            j.fault("before", "the holder")
            holder.execute("BEGIN IMMEDIATE")
            assert waited(j, 0.05) < 0.4
            assert waited(j, 0.05) < 0.4
            assert waited(j, None) >= 0.55
            assert waited(j, 0.05) < 0.4
            assert waited(j, None) >= 0.55
            holder.execute("ROLLBACK")
            assert j.fault("x", "y").seq == 2
    finally:
        holder.close()


def test_a_foreign_database_is_not_turned_into_a_journal(tmp_path):
    other = tmp_path / "inventory.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE parts (name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="not a journal"):
        Journal(other, bench="b")
    conn = sqlite3.connect(other)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    assert tables == {"parts"}


def test_a_file_that_is_not_sqlite_is_refused(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database at all, just some text that is long enough " * 20)
    for opener in (JournalReader, lambda p: Journal(p, bench="b")):
        with pytest.raises(JournalError, match="not a journal"):
            opener(notes)
    assert notes.read_text().startswith("not a database")
