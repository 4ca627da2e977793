"""Sequences of appends, runs, faults and prunes nobody would write by hand.

After every step the chain verifies, nothing unexpected is missing, runs go
whole or not at all, and faulted runs survive pruning unless asked.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from interlock.journal import Journal, JournalReader, verify_journal
from interlock.journal.retention import RetentionPolicy, prune

# Durability is what the crash tests are for; here speed buys more examples,
# so the files live in memory when the machine offers it.
SCRATCH = "/dev/shm" if Path("/dev/shm").is_dir() else None


class JournalMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(dir=SCRATCH))
        self.path = self.dir / "journal.sqlite"
        self.journal = Journal(self.path, bench="b")
        self.written: dict[int, str] = {}  # seq -> run id
        self.faulted: set[str] = set()
        self.runs = 0

    def teardown(self) -> None:
        self.journal.close()
        shutil.rmtree(self.dir)

    def retained(self) -> dict[int, str]:
        with JournalReader(self.path) as reader:
            return {e.seq: e.run_id for e in reader.entries()}

    @rule(count=st.integers(1, 4))
    def append(self, count: int) -> None:
        for _ in range(count):
            entry = self.journal.measurement("VBUS", voltage=1.0)
            self.written[entry.seq] = entry.run_id

    @rule()
    def start_run(self) -> None:
        self.runs += 1
        self.journal.begin_run(f"run-{self.runs}")

    @rule()
    def end_run(self) -> None:
        self.journal.end_run()

    @precondition(lambda self: self.journal.run_id != "")
    @rule()
    def fault(self) -> None:
        entry = self.journal.fault("overcurrent", "VBUS")
        self.written[entry.seq] = entry.run_id
        self.faulted.add(entry.run_id)

    @rule(keep=st.integers(0, 8), include_faulted=st.booleans())
    def prune(self, keep: int, include_faulted: bool) -> None:
        before = self.retained()
        report = prune(
            self.journal, RetentionPolicy(max_entries=keep, include_faulted=include_faulted)
        )
        after = self.retained()
        removed = set(before) - set(after)
        assert removed == {seq for a, b in report.ranges for seq in range(a, b + 1)}
        if report.entry is not None:
            self.written[report.entry.seq] = ""
        # The newest entries within the bound are all still there.
        newest = sorted(before)[len(before) - keep :] if keep else []
        assert set(newest) <= set(after)
        for seq in removed:
            run = before[seq]
            if run:
                # Whole runs only: nothing of this run is left.
                assert run not in after.values()
                if run in self.faulted:
                    assert include_faulted
        if include_faulted:
            self.faulted -= {before[s] for s in removed}

    @invariant()
    def chain_verifies(self) -> None:
        report = verify_journal(self.path)
        retained = self.retained()
        assert report.entries == len(retained)
        assert set(retained) <= set(self.written)

    @invariant()
    def faulted_runs_are_kept(self) -> None:
        retained_runs = set(self.retained().values())
        for run in self.faulted:
            assert run in retained_runs


JournalMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestJournalMachine = JournalMachine.TestCase
