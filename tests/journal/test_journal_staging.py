"""Staged entries: written with the next commit, in order, before what that commit adds."""

from __future__ import annotations

import sqlite3
import time

import pytest

from interlock.errors import JournalError
from interlock.journal import Journal, JournalReader, verify_journal


def kinds(path):
    with JournalReader(path) as reader:
        return [(e.kind, e.payload) for e in reader.entries()]


def test_request_and_verdict_go_to_disk_with_the_command(tmp_path):
    path = tmp_path / "j.sqlite"
    with Journal(path, bench="b") as journal:
        request = journal.request("alice", "script", "set", net="VBUS", value=5.0, durable=False)
        journal.verdict(True, request=request, durable=False)
        assert kinds(path) == []  # nothing written yet
        assert journal.staged == 2
        intent = journal.command_intent("psu", "VOLT 5,(@2)\n")
        written = kinds(path)
        assert [k for k, _ in written] == ["request", "verdict", "command"]
        assert written[1][1]["request"] == request.seq == 1  # the verdict names its request
        assert intent.seq == 3
        assert journal.staged == 0
    assert verify_journal(path).entries == len(kinds(path))


def test_staged_entries_keep_the_time_they_happened(tmp_path):
    class Clock:
        now = 10.0

        def wall(self):
            from datetime import UTC, datetime

            return datetime.fromtimestamp(self.now, UTC)

        def monotonic(self):
            return self.now

    clock = Clock()
    with Journal(tmp_path / "j.sqlite", bench="b", clock=clock) as journal:
        journal.readback("psu", "VOLT?", "5.0", durable=False)
        clock.now = 20.0
        journal.flush()
        entry = journal.last()
    assert entry.mono_time == 10.0


def test_close_flushes_and_commands_are_never_staged(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path, bench="b")
    with pytest.raises(JournalError, match="never staged"):
        journal.stage("command", {"instrument": "psu", "data": "OUTP ON\n"})
    journal.measurement("VBUS", voltage=1.0, durable=False)
    journal.close()
    assert [k for k, _ in kinds(path)] == ["measurement"]
    assert verify_journal(path).entries == len(kinds(path))


@pytest.mark.parametrize(
    "line",
    ["*IDN?\n", "MEAS:VOLT? (@1,2);:MEAS:CURR? (@1,2)\n", "SYST:ERR?\n", "VOLT? (@2)\n"],
)
def test_a_pure_query_goes_out_with_its_record_staged(tmp_path, line):
    from interlock.journal import JournaledWriter

    path = tmp_path / "j.sqlite"
    sent = []
    with Journal(path, bench="b") as journal:
        intent = journal.query_intent("psu", line)
        JournaledWriter("psu", sent.append).send(intent)
        assert sent == [line.encode()]
        assert kinds(path) == []  # not on disk yet: a question changes nothing
        journal.flush()
    assert kinds(path) == [("command", {"data": line, "instrument": "psu", "query": True})]


@pytest.mark.parametrize(
    "line", ["VOLT 5,(@2)\n", "VOLT 5,(@2);:VOLT? (@2)\n", "OUTP ON\n", "MEAS:VOLT?;*RST\n", ""]
)
def test_anything_that_sets_must_be_journaled_durably_first(tmp_path, line):
    with Journal(tmp_path / "j.sqlite", bench="b") as journal:
        with pytest.raises(JournalError, match="not a pure query"):
            journal.query_intent("psu", line)
        assert journal.staged == 0


def test_staged_entries_never_pile_up_unbounded(tmp_path):
    from interlock.journal.store import MAX_STAGED

    path = tmp_path / "j.sqlite"
    with Journal(path, bench="b") as journal:
        for i in range(MAX_STAGED + 5):
            journal.measurement("VBUS", voltage=float(i), durable=False)
        assert journal.staged < MAX_STAGED
        assert len(kinds(path)) >= MAX_STAGED


def test_a_backlog_a_busy_journal_cannot_take_is_logged_once_a_thousand(tmp_path, caplog):
    # An entry staged past the backlog tries a write (waiting 10 ms at most); another
    # process holding the journal refuses it. Said once a thousand entries, not once
    # each: the log is not flooded too.
    from interlock.journal.store import MAX_STAGED

    path = tmp_path / "j.sqlite"
    with Journal(path, bench="b") as journal:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            for i in range(MAX_STAGED + 40):
                journal.measurement("VBUS", voltage=float(i), durable=False)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        said = [r for r in caplog.records if "not written yet" in r.getMessage()]
        assert [r.getMessage().split()[0] for r in said] == [str(MAX_STAGED)]
        journal.flush()
    assert len(kinds(path)) == MAX_STAGED + 40


def test_a_journal_that_cannot_take_a_flood_tries_now_and_then_and_keeps_a_bound(tmp_path, caplog):
    """Held by another process for long: the stagers past the backlog do not each try a
    write (each waits, and a full disk's refuses the whole backlog at its end), and no
    more than MAX_HELD entries are kept; the rest are counted, said once."""
    from interlock.journal.store import BACKLOG_RETRY_S, MAX_HELD

    path = tmp_path / "j.sqlite"
    began: list[str] = []
    with Journal(path, bench="b") as journal:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        # Each write's BEGIN, as SQLite runs it (the journal's own connection, traced).
        journal._conn.set_trace_callback(
            lambda sql: began.append(sql) if sql.startswith("BEGIN") else None
        )
        try:
            started = time.monotonic()
            for i in range(MAX_HELD + 50):
                journal.measurement("VBUS", voltage=float(i), durable=False)
            took = time.monotonic() - started
        finally:
            journal._conn.set_trace_callback(None)
            holder.execute("ROLLBACK")
            holder.close()
        # One try, then one each BACKLOG_RETRY_S at most (not one per entry: 19,050).
        assert 1 <= len(began) <= 2 + took / BACKLOG_RETRY_S, (len(began), took)
        assert (journal.staged, journal.not_kept) == (MAX_HELD, 50)
        let_go = [r for r in caplog.records if "no more are kept" in r.getMessage()]
        assert len(let_go) == 1
        assert journal.condition()["not_kept"] == 50
        journal.flush()  # once it is let go, all that was kept is written
    assert len(kinds(path)) == MAX_HELD


def test_past_the_bound_a_stops_record_is_still_kept_and_its_off_commands_do_not_wait(
    tmp_path,
):
    """A flood's entries fill MAX_HELD; a stop after it (its fault, its off command sent
    unjournaled, its state change) has places of its own, and its off command does not
    try to write a backlog the journal is behind with."""
    from interlock.journal.store import MAX_HELD

    path = tmp_path / "j.sqlite"
    began: list[str] = []
    with Journal(path, bench="b") as journal:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            for i in range(MAX_HELD + 10):
                journal.request("script", "c", "set", durable=False, value=float(i))
            assert journal.not_kept == 10
            journal._conn.set_trace_callback(
                lambda sql: began.append(sql) if sql.startswith("BEGIN") else None
            )
            journal.fault("estop", "by the operator", first=False, durable=False)
            off = journal.safe_off_intent("psu", "OUTP OFF,(@1)\n", purpose="safe-state")
            journal.state("live", "fault", "trip", durable=False)
            assert (off.seq, began) == (0, [])  # out at once, unjournaled, nothing tried
            assert (journal.staged, journal.not_kept) == (MAX_HELD + 3, 10)
        finally:
            journal._conn.set_trace_callback(None)
            holder.execute("ROLLBACK")
            holder.close()
        journal.flush()
    with JournalReader(path) as reader:
        last = [(e.kind, e.payload.get("unjournaled") is not None) for e in reader.entries()]
    assert last[-3:] == [("fault", False), ("command", True), ("state", False)]


def test_text_that_is_not_unicode_is_refused_at_staging_and_poisons_nothing(journal):
    """A lone surrogate (JSON's "\\udcff", an undecodable file name) cannot be stored
    as UTF-8: refused when staged or appended, and the journal writes on."""
    with pytest.raises(JournalError, match="not plain JSON"):
        journal.request("alice", "c", "set", durable=False, net="VLOGIC\udcff")
    with pytest.raises(JournalError, match="not Unicode"):
        journal.stage("measurement", {"net": "VLOGIC"}, actor="eve\udcff")
    with pytest.raises(JournalError):
        journal.append("request", {"net": "\ud800"})
    assert journal.staged == 0
    entry = journal.append("request", {"net": "VLOGIC"})
    assert entry.payload == {"net": "VLOGIC"}


def test_the_answer_to_a_staged_query_takes_its_place_time_and_bytes(tmp_path):
    path = tmp_path / "j.sqlite"
    line = "MEAS:VOLT? (@1)\n"
    with Journal(path, bench="b") as journal:
        journal.request("alice", "script", "measure", net="VBUS", durable=False)
        intent = journal.query_intent("psu", line)
        asked_at = intent.staged_as.mono
        journal.verdict(True, durable=False)  # staged by anyone in between: it stays after
        journal.answer(intent, line.rstrip(), "+5.0E+00", net="VBUS")
        assert journal.staged == 3
        journal.flush()
        entries = [journal.last()]
    written = kinds(path)
    assert [k for k, _ in written] == ["request", "readback", "verdict"]
    assert written[1][1] == {
        "data": line,
        "instrument": "psu",
        "net": "VBUS",
        "query": "MEAS:VOLT? (@1)",
        "reply": "+5.0E+00",
    }
    with JournalReader(path) as reader:
        assert next(reader.entries(after_seq=1)).mono_time == asked_at
    assert entries[0].kind == "verdict"
    assert verify_journal(path).entries == 3


def test_a_query_already_written_keeps_its_entry_and_the_answer_gets_its_own(tmp_path):
    path = tmp_path / "j.sqlite"
    with Journal(path, bench="b") as journal:
        intent = journal.query_intent("psu", "*IDN?\n")
        journal.flush()  # another thread's commit took the query's entry meanwhile
        journal.answer(intent, "*IDN?", "KEYSIGHT,E36312A,1,2")
        durable = journal.command_intent("psu", "VOLT 5,(@1);:VOLT? (@1)\n")
        journal.answer(durable, "VOLT 5,(@1);:VOLT? (@1)", "+5.0")  # a line that set
    assert [(k, p.get("query")) for k, p in kinds(path)] == [
        ("command", True),
        ("readback", "*IDN?"),
        ("command", None),
        ("readback", "VOLT 5,(@1);:VOLT? (@1)"),
    ]
    assert all("data" not in p for k, p in kinds(path) if k == "readback")


def test_a_query_taken_by_a_commit_under_way_is_not_replaced(tmp_path, monkeypatch):
    path = tmp_path / "j.sqlite"
    with Journal(path, bench="b") as journal:
        intent = journal.query_intent("psu", "*IDN?\n")
        insert = journal._insert_staged

        def answered_while_writing(conn, staged, head):  # the answer comes mid-commit
            journal.answer(intent, "*IDN?", "KEYSIGHT,E36312A,1,2")
            return insert(conn, staged, head)

        monkeypatch.setattr(journal, "_insert_staged", answered_while_writing)
        journal.flush()
        monkeypatch.undo()
        assert journal.staged == 1  # the answer, for the next commit
    assert [k for k, _ in kinds(path)] == ["command", "readback"]
    assert verify_journal(path).entries == 2


def test_a_query_that_got_no_answer_keeps_its_entry(tmp_path):
    path = tmp_path / "j.sqlite"
    with Journal(path, bench="b") as journal:
        journal.query_intent("psu", "MEAS:VOLT? (@1)\n")  # then the exchange timed out
    assert kinds(path) == [
        ("command", {"data": "MEAS:VOLT? (@1)\n", "instrument": "psu", "query": True})
    ]
