"""A service that starts on a broken journal latches a fault; the operator's reset acknowledges it.

Real services on a simulated bench, stopped and started again on the same
journal, which is changed in between with plain sqlite3.
"""

from __future__ import annotations

import contextlib
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from interlock.cli import main
from interlock.errors import FaultLatched, InterlockError, JournalCorrupt
from interlock.journal import JournalReader
from interlock.journal.witness import witness_path

from .conftest import ServeBench, Served, assert_bench_safe, bring_up


def tamper(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def journal_of(served: Served) -> Path:
    return served.service.settings.journal


def restart(serve_bench: ServeBench, served: Served) -> Served:
    served.stop()
    return serve_bench()


def last_of(path: Path, action: str):
    with JournalReader(path) as reader:
        found = [e for e in reader.entries() if e.payload.get("action") == action]
    return found[-1] if found else None


def verify_lines(capsys, path: Path) -> tuple[int, list[str], list[str]]:
    code = main(["journal", "verify", "--journal", str(path)])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def test_an_edited_entry_latches_a_fault_until_an_operator_acknowledges_it(serve_bench, capsys):
    served = serve_bench()
    path = journal_of(served)
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), witness_path(path)):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    tamper(path, "UPDATE entries SET actor = 'mallory' WHERE seq = 3")

    served = restart(serve_bench, served)
    operator = served.client("operator", who="olga")
    status = operator.status()
    assert status["state"] == "fault"
    assert status["fault"] == "journal-chain: entry 3: content does not match its hash (edited)"
    with pytest.raises(FaultLatched):
        operator.arm()
    check = last_of(path, "check")
    assert [b["seq"] for b in check.payload["breaks"]] == [3]

    operator.reset()
    assert operator.status()["state"] == "safe"
    ack = last_of(path, "acknowledge")
    assert ack.actor == "olga"
    assert [(b["seq"], b["problem"]) for b in ack.payload["breaks"]] == [
        (3, "entry 3: content does not match its hash (edited)")
    ]
    operator.arm()  # nothing holds the bench any more
    operator.disarm()

    served = restart(serve_bench, served)
    status = served.client("viewer").status()
    assert (status["state"], status["fault"]) == ("safe", None)
    assert "breaks" not in last_of(path, "check").payload
    served.stop()

    code, out, err = verify_lines(capsys, path)
    assert (code, err) == (0, [])
    assert out[0].endswith(": chain OK but for 1 acknowledged break(s)")
    assert out[1].startswith(
        f"  entry 3: content does not match its hash (edited): acknowledged by olga at "
        f"entry {ack.seq} ("
    )


@pytest.mark.parametrize(
    "statements, fault",
    [
        (
            ["DELETE FROM entries", "DELETE FROM head"],
            "the journal is empty, but its witness journal.sqlite.head records entries up to "
            "seq {last} (wiped)",
        ),
        (
            [
                "DELETE FROM entries WHERE seq > {cut}",
                "UPDATE head SET seq = {cut}, hash = (SELECT hash FROM entries WHERE seq = {cut})",
            ],
            "entries {next}..{last} are missing at the end: the witness journal.sqlite.head "
            "records seq {last} (cut)",
        ),
    ],
    ids=["wiped", "cut"],
)
def test_a_wiped_or_cut_journal_latches_and_the_reset_anchors_it_anew(
    serve_bench, capsys, statements, fault
):
    served = serve_bench()
    served.client("operator").arm()  # some entries to lose
    path = journal_of(served)
    served.stop()
    with JournalReader(path) as reader:
        last = reader.last_seq()
    cut = last - 5
    tamper(path, *(s.format(cut=cut) for s in statements))
    code, _, err = verify_lines(capsys, path)
    assert code == 4
    expected = fault.format(last=last, cut=cut, next=cut + 1)
    assert err == [f"JournalCorrupt: {expected}"]

    served = serve_bench()
    operator = served.client("operator", who="olga")
    assert operator.status()["fault"] == f"journal-chain: {expected}"
    with pytest.raises(FaultLatched):
        operator.arm()
    operator.reset()
    ack = last_of(path, "acknowledge")
    assert [b["problem"] for b in ack.payload["breaks"]] == [expected]

    served = restart(serve_bench, served)
    assert served.client("viewer").status()["fault"] is None
    served.stop()
    code, out, err = verify_lines(capsys, path)
    assert (code, err) == (0, [])
    assert out[1].startswith(f"  {expected}: acknowledged by olga at entry {ack.seq} (")


def test_a_journal_from_before_witnesses_is_adopted_by_the_reset(serve_bench):
    served = serve_bench()
    path = journal_of(served)
    served.stop()
    witness_path(path).unlink()
    served = serve_bench()
    operator = served.client("operator", who="olga")
    assert operator.status()["fault"].startswith(
        "journal-chain: no witness beside the journal (journal.sqlite.head)"
    )
    operator.reset()
    assert witness_path(path).exists()
    served = restart(serve_bench, served)
    assert served.client("viewer").status()["state"] == "safe"


def test_a_break_made_after_the_fault_takes_a_second_reset(serve_bench):
    served = serve_bench()
    path = journal_of(served)
    served.stop()
    tamper(path, "UPDATE entries SET actor = 'mallory' WHERE seq = 3")
    served = serve_bench()
    operator = served.client("operator", who="olga")
    tamper(path, "UPDATE entries SET actor = 'mallory' WHERE seq = 5")
    with pytest.raises(JournalCorrupt, match="the journal broke again since the fault: entry 5"):
        operator.reset()
    assert operator.status()["state"] == "fault"
    operator.reset()
    assert operator.status()["state"] == "safe"
    ack = last_of(path, "acknowledge")
    assert [b["seq"] for b in ack.payload["breaks"]] == [3, 5]


def test_a_journal_removed_while_a_net_is_live_trips_and_loses_no_entry(serve_bench, capsys):
    """``rm journal.sqlite*`` under a live bench: without the journal's check the service
    goes on, every record after it is lost, and the next start finds a wiped journal."""
    served = serve_bench()
    path = journal_of(served)
    operator, script = served.client("operator"), served.client("script")
    with script.lease():
        operator.arm()
        bring_up(script)
        with JournalReader(path) as reader:
            before = reader.last_seq()
        files = (path, Path(f"{path}-wal"), Path(f"{path}-shm"), witness_path(path))
        held = {file: file.stat().st_ino for file in files if file.exists()}
        for file, inode in held.items():
            # Not a file that a pass between two put back: that would be another scenario.
            with contextlib.suppress(FileNotFoundError):
                if file.stat().st_ino == inode:
                    file.unlink()
        # The monitor's next pass, or this request, finds it: either way the bench trips.
        with contextlib.suppress(InterlockError):
            script.set_voltage("VLOGIC", 4.5)
        deadline = time.monotonic() + 10
        while operator.status()["state"] != "fault" and time.monotonic() < deadline:
            time.sleep(0.05)
        status = operator.status()
    assert status["state"] == "fault"
    # Whoever wrote next found it ("journal:" for the request, "monitor:" for a pass).
    assert f"{path}: journal.sqlite was removed" in status["fault"]
    assert "being put back from what this journal holds open" in status["fault"]
    assert_bench_safe(served.truth())
    served.stop()

    code, out, err = verify_lines(capsys, path)  # the chain whole, and its witness
    assert out[0].endswith(": chain OK"), out
    assert (code, err) == (0, [])
    with JournalReader(path) as reader:
        entries = list(reader.entries())
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    put_back = next(e for e in entries if e.payload.get("action") == "put back")
    assert put_back.seq > before
    assert put_back.payload["how"] == "put back from what this journal held open"
    after = [e for e in entries if e.seq > before]  # the trip and its safe state, on disk
    assert any(e.kind == "fault" for e in after)
    assert any(e.kind == "command" and e.payload.get("purpose") == "safe-state" for e in after)

    served = serve_bench()  # starts on it as on any journal: no break to acknowledge
    assert served.client("viewer").status()["fault"] is None
