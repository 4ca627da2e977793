"""Tampering with the stored journal is detected and the first bad entry named."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from interlock.errors import JournalCorrupt
from interlock.journal import Journal, verify_journal

FIELDS = "wall_time, mono_time, bench, run_id, kind, actor, payload, prev_hash, hash"


@pytest.fixture
def ten_entries(journal_path: Path, clock) -> Path:
    with Journal(journal_path, bench="sim-bench", clock=clock) as j:
        j.begin_run("run-1")
        for i in range(10):
            clock.advance(0.1)
            j.measurement("VBUS", voltage=float(i), current=0.1)
    assert verify_journal(journal_path).entries == 10
    return journal_path


def tamper(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def corrupt_seq(path: Path) -> tuple[int | None, str]:
    with pytest.raises(JournalCorrupt) as caught:
        verify_journal(path)
    return caught.value.seq, str(caught.value)


def test_edited_payload_is_detected(ten_entries):
    tamper(
        ten_entries, """UPDATE entries SET payload = '{"net":"VBUS","voltage":1.5}' WHERE seq = 5"""
    )
    seq, message = corrupt_seq(ten_entries)
    assert seq == 5
    assert message == "entry 5: content does not match its hash (edited)"


@pytest.mark.parametrize(
    "column, value",
    [
        ("wall_time", "'2020-01-01T00:00:00.000000Z'"),
        ("actor", "'mallory'"),
        ("run_id", "'x'"),
        ("mono_time", "1.0"),
        ("kind", "'operator'"),
        ("bench", "'other'"),
    ],
)
def test_every_field_is_covered_by_the_hash(ten_entries, column, value):
    tamper(ten_entries, f"UPDATE entries SET {column} = {value} WHERE seq = 3")
    assert corrupt_seq(ten_entries)[0] == 3


def test_edit_with_a_recomputed_hash_breaks_the_next_link(ten_entries):
    from interlock.journal.db import row_to_entry
    from interlock.journal.entries import computed_hash

    conn = sqlite3.connect(ten_entries)
    row = conn.execute(f"SELECT seq, {FIELDS} FROM entries WHERE seq = 5").fetchone()
    conn.close()
    forged = row_to_entry(row)
    forged = type(forged)(**{**forged.__dict__, "actor": "mallory"})
    tamper(
        ten_entries,
        f"UPDATE entries SET actor = 'mallory', hash = '{computed_hash(forged)}' WHERE seq = 5",
    )
    seq, message = corrupt_seq(ten_entries)
    assert seq == 6
    assert "entry 6: does not chain to entry 5" in message


def test_deleted_entry_is_detected(ten_entries):
    tamper(ten_entries, "DELETE FROM entries WHERE seq = 4")
    seq, message = corrupt_seq(ten_entries)
    assert seq == 4
    assert message == "entry 4 is missing (removed without a retention record)"


def test_deleted_first_entries_are_detected(ten_entries):
    tamper(ten_entries, "DELETE FROM entries WHERE seq <= 2")
    seq, message = corrupt_seq(ten_entries)
    assert seq == 1
    assert message.startswith("entries 1..2 are missing")


def test_deleted_newest_entries_are_detected(ten_entries):
    tamper(ten_entries, "DELETE FROM entries WHERE seq >= 9")
    seq, message = corrupt_seq(ten_entries)
    assert seq == 9
    assert "missing at the end (truncated)" in message


def test_reordered_entries_are_detected(ten_entries):
    # Swap the whole content of entries 6 and 7, keeping their seq numbers.
    tamper(
        ten_entries,
        "UPDATE entries SET seq = -1 WHERE seq = 6",
        "UPDATE entries SET seq = 6 WHERE seq = 7",
        "UPDATE entries SET seq = 7 WHERE seq = -1",
    )
    seq, message = corrupt_seq(ten_entries)
    assert seq == 6
    assert "entry 6" in message


def test_reordered_and_renumbered_entries_are_detected(ten_entries):
    # Swap content but keep each hash's seq consistent: caught by the links.
    from interlock.journal.db import row_to_entry
    from interlock.journal.entries import computed_hash

    conn = sqlite3.connect(ten_entries)
    rows = {r[0]: r for r in conn.execute(f"SELECT seq, {FIELDS} FROM entries")}
    conn.close()
    statements = []
    for seq, source in ((6, 7), (7, 6)):
        moved = row_to_entry((seq, *rows[source][1:]))
        statements.append(
            f"UPDATE entries SET mono_time = {moved.mono_time}, payload = '{moved.payload_json}', "
            f"wall_time = '{moved.wall_time}', prev_hash = '{moved.prev_hash}', "
            f"hash = '{computed_hash(moved)}' WHERE seq = {seq}"
        )
    tamper(ten_entries, *statements)
    seq, message = corrupt_seq(ten_entries)
    assert seq == 6
    assert message == "entry 6: does not chain to entry 5 (replaced or reordered)"


def test_removed_head_record_is_detected(ten_entries):
    tamper(ten_entries, "DELETE FROM head")
    assert corrupt_seq(ten_entries)[0] == 1


def test_inserted_entry_after_head_is_detected(ten_entries):
    tamper(
        ten_entries,
        f"INSERT INTO entries (seq, {FIELDS}) SELECT 11, {FIELDS} FROM entries WHERE seq = 10",
    )
    assert corrupt_seq(ten_entries)[0] == 11
