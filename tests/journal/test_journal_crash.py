"""SIGKILL a real writer process mid-burst: the journal opens, verifies, and
holds every command that went out on the wire."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from interlock.journal import Journal, JournalReader, verify_journal
from interlock.journal.entries import payload_data
from interlock.journal.startup import check_at_start
from interlock.journal.witness import read_witness

WRITER = Path(__file__).with_name("crash_writer.py")
PRUNER = Path(__file__).with_name("crash_pruner.py")
ROOT = Path(__file__).resolve().parents[2]


_spawned: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _reap_children():
    """Whatever a failing test leaves running is killed, never left looping."""
    yield
    while _spawned:
        proc = _spawned.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def spawn(script: Path, *args: object, env: dict[str, str] | None = None) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, str(script), *map(str, args)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        text=True,
    )
    _spawned.append(proc)
    return proc


def start_writer(
    journal: Path, wire: Path, name: str, threads: int = 1, pause: float = 0.0
) -> subprocess.Popen:
    return spawn(WRITER, journal, wire, name, threads, pause)


def run_until(proc: subprocess.Popen, durable_lines: int) -> list[str]:
    """Read the writer's report until it has said ``durable`` that many times."""
    assert proc.stdout is not None
    lines: list[str] = []
    durable = 0
    deadline = time.monotonic() + 20
    while durable < durable_lines:
        line = proc.stdout.readline()
        assert line, f"writer ended early (rc={proc.poll()})"
        lines.append(line.strip())
        durable += line.startswith("durable ")
        assert time.monotonic() < deadline, "writer too slow"
    return lines


def kill(proc: subprocess.Popen, lines: list[str]) -> list[str]:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.stdout is not None
    # Whatever it managed to report before dying counts too.
    lines.extend(line.strip() for line in proc.stdout.read().splitlines())
    proc.stdout.close()
    assert proc.wait(timeout=10) == -signal.SIGKILL
    return lines


def pruned_ranges(journal: Path) -> list[tuple[int, int]]:
    """Seq ranges (exclusive bounds) that retention recorded as removed."""
    conn = sqlite3.connect(journal)
    try:
        return conn.execute("SELECT after_seq, before_seq FROM pruned").fetchall()
    finally:
        conn.close()


def check_after_crash(journal: Path, wire: Path, reported: list[str]) -> int:
    report = verify_journal(journal)  # opens and verifies, or raises JournalCorrupt
    with JournalReader(journal) as reader:
        entries = {e.seq: e for e in reader.entries()}
    assert report.entries == len(entries)
    gaps = pruned_ranges(journal)

    def pruned(seq: int) -> bool:
        return any(after < seq < before for after, before in gaps)

    durable = [int(line.split()[1]) for line in reported if line.startswith("durable ")]
    missing = [seq for seq in durable if seq not in entries and not pruned(seq)]
    assert not missing, f"entries reported durable but lost: {missing}"

    journaled = {payload_data(e.payload) for e in entries.values() if e.kind == "command"}
    sent = wire.read_bytes() if wire.exists() else b""
    *whole, partial = sent.split(b"\n")
    # Without retention every line on the wire must be journaled. With it (one
    # writer thread), the i-th line on the wire is the i-th durable intent, so
    # a line may be absent only if retention removed that very entry.
    by_order = durable if gaps else [None] * len(whole)
    for line, seq in zip(whole, by_order, strict=False):
        if seq is not None and pruned(seq):
            continue
        assert line + b"\n" in journaled, f"sent but not journaled: {line!r}"
    # A write cut short by the kill: its bytes (a prefix) went out, so it must be journaled.
    if partial:
        assert any(data.startswith(partial) for data in journaled)
    return len(whole)


@pytest.mark.parametrize("round_", range(6))
def test_sigkill_during_a_burst_loses_nothing_that_was_sent(tmp_path, round_):
    rng = random.Random(round_)
    journal, wire = tmp_path / "journal.sqlite", tmp_path / "wire.bin"
    proc = start_writer(journal, wire, "w", threads=1 + round_ % 3)
    lines = run_until(proc, rng.randint(5, 120))
    # Land the kill at an arbitrary point of a commit, not just between lines.
    time.sleep(rng.random() * 0.005)
    lines = kill(proc, lines)
    assert check_after_crash(journal, wire, lines) >= 1


def test_the_check_catches_a_command_sent_before_it_was_journaled(tmp_path):
    # A writer that sends first and journals second would leave this behind.
    journal, wire = tmp_path / "journal.sqlite", tmp_path / "wire.bin"
    with Journal(journal, bench="b") as j:
        j.command_intent("psu", b"VOLT 1\n")
    wire.write_bytes(b"VOLT 1\nOUTP ON\n")
    with pytest.raises(AssertionError, match="sent but not journaled"):
        check_after_crash(journal, wire, [])
    with pytest.raises(AssertionError, match="reported durable but lost"):
        check_after_crash(journal, tmp_path / "empty.bin", ["durable 2"])


def test_journal_is_writable_after_a_crash(tmp_path):
    journal, wire = tmp_path / "journal.sqlite", tmp_path / "wire.bin"
    proc = start_writer(journal, wire, "w")
    kill(proc, run_until(proc, 30))
    with Journal(journal, bench="crash-bench") as j:
        entry = j.fault("crash", "controller restarted after SIGKILL")
    report = verify_journal(journal)
    assert report.last_seq == entry.seq


def test_sigkill_one_of_two_concurrent_writer_processes(tmp_path):
    journal, wire = tmp_path / "journal.sqlite", tmp_path / "wire.bin"
    # Create the file first, so the two writers do not race to make the schema.
    Journal(journal, bench="crash-bench").close()
    victim = start_writer(journal, wire, "victim")
    survivor = start_writer(journal, wire, "survivor")
    victim_lines = kill(victim, run_until(victim, 40))
    survivor_lines = kill(survivor, run_until(survivor, 20))
    check_after_crash(journal, wire, victim_lines + survivor_lines)
    with JournalReader(journal) as reader:
        actors = {e.actor for e in reader.entries()}
    assert actors == {"victim", "survivor"}


@pytest.mark.parametrize("round_", range(3))
def test_sigkill_while_pruning_beside_a_writer(tmp_path, round_):
    rng = random.Random(100 + round_)
    journal, wire = tmp_path / "journal.sqlite", tmp_path / "wire.bin"
    Journal(journal, bench="crash-bench").close()
    writer = start_writer(journal, wire, "w", pause=0.002)
    lines = run_until(writer, 30)
    pruner = spawn(PRUNER, journal)
    assert pruner.stdout is not None
    for _ in range(rng.randint(1, 5)):
        assert pruner.stdout.readline().startswith("pruned ")
    lines += run_until(writer, rng.randint(5, 40))
    time.sleep(rng.random() * 0.005)
    os.kill(pruner.pid, signal.SIGKILL)
    lines = kill(writer, lines)
    assert pruner.wait(timeout=10) == -signal.SIGKILL
    check_after_crash(journal, wire, lines)
    assert verify_journal(journal).pruned_gaps >= 1


def test_a_crash_between_a_commit_and_its_witness_leaves_a_lag_that_is_accepted(tmp_path):
    journal, wire = tmp_path / "journal.sqlite", tmp_path / "wire.bin"
    proc = spawn(WRITER, journal, wire, "w", env={"DIE_BEFORE_WITNESS": "21"})
    assert proc.stdout is not None
    lines = [line.strip() for line in proc.stdout]
    assert proc.wait(timeout=30) == -signal.SIGKILL
    check_after_crash(journal, wire, lines)
    report = verify_journal(journal)
    # The 21st commit (an intent, then a measurement: commits alternate) is in the
    # database; the witness still holds the 20th.
    assert (report.last_seq, report.witness.head.seq) == (21, 20)
    with Journal(journal, bench="crash-bench") as j:
        assert check_at_start(j).ok
        entry = j.fault("crash", "restarted")
    assert read_witness(journal).record.head == (entry.seq, entry.hash)
    assert verify_journal(journal).last_seq == entry.seq


def test_two_writers_one_killed_before_its_witness_write_the_other_carries_it_on(tmp_path):
    journal, wire = tmp_path / "journal.sqlite", tmp_path / "wire.bin"
    Journal(journal, bench="crash-bench").close()
    victim = spawn(WRITER, journal, wire, "victim", 1, 0.001, env={"DIE_BEFORE_WITNESS": "40"})
    survivor = start_writer(journal, wire, "survivor", pause=0.001)
    assert victim.stdout is not None
    victim_lines = [line.strip() for line in victim.stdout]
    assert victim.wait(timeout=30) == -signal.SIGKILL
    died_at = max(int(line.split()[1]) for line in victim_lines if line.startswith("durable "))
    # The survivor goes on past the victim's last commit, whose witness was never written.
    survivor_lines: list[str] = []
    while not any(
        line.startswith("durable ") and int(line.split()[1]) > died_at + 10
        for line in survivor_lines
    ):
        survivor_lines += run_until(survivor, 1)
    survivor_lines = kill(survivor, survivor_lines)
    check_after_crash(journal, wire, victim_lines + survivor_lines)
    report = verify_journal(journal)
    assert report.witness.head.seq >= report.last_seq - 1  # at most the last commit behind
