"""Staged entries: written with the next commit, in order, before what that commit adds."""

from __future__ import annotations

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
