"""``interlock journal ...`` and ``interlock postmortem``: exit codes and output lines."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from journal_synthetic import RUN_ID

from interlock.cli import main
from interlock.journal import Journal, verify_journal

ROOT = Path(__file__).resolve().parents[2]


def cli(capsys, *argv: str) -> tuple[int, list[str], list[str]]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def test_show_prints_one_line_per_entry(run_journal, capsys):
    code, out, err = cli(capsys, "journal", "show", "--journal", str(run_journal))
    assert code == 0 and err == []
    assert len(out) == 35
    assert out[0] == (
        "#1      2026-03-14T09:30:00.000000Z  -  state       controller   "
        "disconnected -> safe (connect)"
    )
    assert out[25] == (
        f"#26     2026-03-14T09:30:03.430000Z  {RUN_ID}  verdict     controller   "
        "REFUSED request #25 by nets.VBUS.max_voltage "
        "(profiles/mdb24.toml: nets.VBUS.max_voltage): 30 V is above 25 V"
    )


def test_show_filters_by_run_and_time(run_journal, capsys):
    code, out, _ = cli(capsys, "journal", "show", "--journal", str(run_journal), "--run", RUN_ID)
    assert code == 0 and len(out) == 32 and out[0].startswith("#4 ")
    code, out, _ = cli(
        capsys,
        "journal",
        "show",
        "--journal",
        str(run_journal),
        "--since",
        "2026-03-14T09:30:08.7",
    )
    assert code == 0 and [line.split()[0] for line in out] == ["#34", "#35"]
    # Relative: everything of the synthetic run is years older than 10 minutes.
    code, out, _ = cli(capsys, "journal", "show", "--journal", str(run_journal), "--since", "10m")
    assert code == 0 and out == []


def test_show_rejects_a_bad_time(run_journal, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["journal", "show", "--journal", str(run_journal), "--since", "yesterday"])
    assert caught.value.code == 2
    assert "not a time: 'yesterday'" in capsys.readouterr().err


def test_verify_ok(run_journal, capsys):
    code, out, _ = cli(capsys, "journal", "verify", "--journal", str(run_journal))
    assert code == 0
    assert out[0] == f"journal {run_journal}: 35 entries (seq 1..35): chain OK"
    assert out[1].startswith("head sha256 ") and len(out[1]) == len("head sha256 ") + 64


def test_verify_corrupt_exits_4_naming_the_entry(run_journal, capsys):
    conn = sqlite3.connect(run_journal)
    conn.execute("DELETE FROM entries WHERE seq = 12")
    conn.commit()
    conn.close()
    code, out, err = cli(capsys, "journal", "verify", "--journal", str(run_journal))
    assert code == 4 and out == []
    assert err == ["JournalCorrupt: entry 12 is missing (removed without a retention record)"]


def test_missing_journal_exits_4(tmp_path, capsys):
    code, _, err = cli(capsys, "journal", "verify", "--journal", str(tmp_path / "none.sqlite"))
    assert code == 4
    assert err == [f"JournalError: no journal at {tmp_path / 'none.sqlite'}"]
    assert not (tmp_path / "none.sqlite").exists()


def test_export_jsonl_to_stdout_and_file(run_journal, tmp_path, capsys):
    code, out, _ = cli(
        capsys,
        "journal",
        "export",
        "--format",
        "jsonl",
        "--journal",
        str(run_journal),
        "--run",
        RUN_ID,
    )
    assert code == 0 and len(out) == 32
    first = json.loads(out[0])
    assert set(first) == {
        "seq",
        "wall_time",
        "mono_time",
        "bench",
        "run_id",
        "kind",
        "actor",
        "payload",
        "prev_hash",
        "hash",
    }
    assert (first["seq"], first["kind"]) == (4, "config")
    target = tmp_path / "out.jsonl"
    code, out, _ = cli(
        capsys, "journal", "export", "--journal", str(run_journal), "--out", str(target)
    )
    assert code == 0 and out == [f"exported 35 entries to {target}"]
    lines = target.read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, 36))
    # Each exported entry links to the one before it.
    assert all(
        json.loads(b)["prev_hash"] == json.loads(a)["hash"] for a, b in itertools.pairwise(lines)
    )


def test_prune_then_verify(run_journal, capsys, clock):
    with Journal(run_journal, bench="sim-bench", clock=clock) as journal:
        journal.begin_run("clean-run")
        journal.operator("olga", "arm")
        journal.end_run()
        for i in range(5):
            journal.measurement("VBUS", voltage=float(i))
    code, out, _ = cli(
        capsys, "journal", "prune", "--journal", str(run_journal), "--max-entries", "3"
    )
    assert code == 0
    assert out == [
        "removed 6 entries (seq 1..3, 36..38)",
        "kept 32 entries of runs that ended in a fault",
        "recorded as entry #42",
    ]
    code, out, _ = cli(capsys, "journal", "verify", "--journal", str(run_journal))
    assert code == 0 and out[0].endswith("(seq 4..42), 2 pruned gap(s) as recorded: chain OK")
    code, out, _ = cli(
        capsys,
        "journal",
        "prune",
        "--journal",
        str(run_journal),
        "--max-entries",
        "3",
        "--include-faulted",
        "--dry-run",
    )
    assert code == 0 and out == ["would remove 33 entries (seq 4..35, 39)"]


def test_prune_needs_a_bound(run_journal, capsys):
    code, _, err = cli(capsys, "journal", "prune", "--journal", str(run_journal))
    assert code == 2
    assert err == ["journal prune: give --max-age, --max-entries or --max-bytes"]


def test_postmortem_writes_timeline_and_plot(run_journal, tmp_path, capsys):
    out_dir = tmp_path / "pm"
    code, out, _ = cli(capsys, "postmortem", "--journal", str(run_journal), "--out", str(out_dir))
    assert code == 0
    assert out == [
        f"run {RUN_ID}: 32 entries",
        f"wrote {out_dir / 'timeline.txt'}",
        f"wrote {out_dir / 'nets.png'}",
    ]
    assert (out_dir / "nets.png").read_bytes()[:4] == b"\x89PNG"


def test_postmortem_of_a_corrupt_journal_still_writes_and_exits_4(run_journal, tmp_path, capsys):
    conn = sqlite3.connect(run_journal)
    conn.execute("UPDATE entries SET actor = 'mallory' WHERE seq = 6")
    conn.commit()
    conn.close()
    code, _out, err = cli(
        capsys, "postmortem", RUN_ID, "--journal", str(run_journal), "--out", str(tmp_path / "pm")
    )
    assert code == 4
    assert err == ["JournalCorrupt: entry 6: content does not match its hash (edited)"]
    assert (tmp_path / "pm" / "timeline.txt").exists()


def test_journal_found_through_the_bench(tmp_path, monkeypatch, capsys):
    # The repository's own bench.toml puts the journal at run/journal.sqlite beside it.
    shutil.copy(ROOT / "bench.toml", tmp_path / "bench.toml")
    monkeypatch.chdir(tmp_path)
    journal_path = tmp_path / "run" / "journal.sqlite"
    journal_path.parent.mkdir()
    with Journal(journal_path, bench="sim-bench-01") as journal:
        journal.state("disconnected", "safe", "connect")
    code, out, _ = cli(capsys, "journal", "verify")
    assert code == 0
    assert out[0] == "bench sim-bench-01 [simulation]"
    assert out[1] == f"journal {journal_path}: 1 entries (seq 1..1): chain OK"


def test_missing_bench_is_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "journal", "show")
    assert code == 2 and err[0].startswith("ConfigError: ")


def test_follow_prints_new_entries_until_interrupted(journal_path, tmp_path):
    with Journal(journal_path, bench="b") as journal:
        journal.state("disconnected", "safe", "connect")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "interlock",
                "journal",
                "show",
                "--follow",
                "--journal",
                str(journal_path),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().startswith("#1 ")
            journal.fault("estop", "button")
            assert "FAULT estop: button" in proc.stdout.readline()
            time.sleep(0.1)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
    assert verify_journal(journal_path).entries == 2


def test_show_into_a_closed_pipe_ends_quietly(journal_path):
    with Journal(journal_path, bench="b") as journal, journal._write_transaction() as conn:
        for i in range(3000):
            journal._insert(conn, "measurement", {"net": "VBUS", "voltage": i}, None, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "interlock", "journal", "show", "--journal", str(journal_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"#1 ")
    proc.stdout.close()  # like `| head -1`
    assert proc.wait(timeout=30) == 0
    assert proc.stderr.read() == b""
    proc.stderr.close()


def test_show_filters_by_kind_and_keeps_the_tail(run_journal, capsys):
    journal = str(run_journal)
    _, every, _ = cli(capsys, "journal", "show", "--journal", journal)
    code, out, _ = cli(capsys, "journal", "show", "--journal", journal, "--kind", "verdict")
    assert code == 0 and out == [line for line in every if line.split()[3] == "verdict"]
    assert out
    code, out, _ = cli(
        capsys, "journal", "show", "--journal", journal, "--kind", "verdict", "--kind", "fault"
    )
    assert out == [line for line in every if line.split()[3] in ("verdict", "fault")]
    code, out, _ = cli(capsys, "journal", "show", "--journal", journal, "--tail", "3")
    assert code == 0 and out == every[-3:]
    code, out, _ = cli(
        capsys, "journal", "show", "--journal", journal, "--run", RUN_ID, "--tail", "1000"
    )
    assert out == [line for line in every if line.split()[2] == RUN_ID]


def test_show_refused_keeps_only_the_verdicts_that_refused(run_journal, capsys):
    journal = str(run_journal)
    _, verdicts, _ = cli(capsys, "journal", "show", "--journal", journal, "--kind", "verdict")
    code, out, _ = cli(capsys, "journal", "show", "--journal", journal, "--refused")
    assert code == 0 and out and out == [line for line in verdicts if "REFUSED" in line]
    assert len(out) < len(verdicts)  # the allowed ones are left out


def test_show_or_postmortem_of_an_unknown_run_is_a_usage_error(run_journal, tmp_path, capsys):
    for argv in (
        ["journal", "show", "--run", "nonexistent"],
        ["journal", "export", "--run", "nonexistent"],
        ["postmortem", "nonexistent", "--out", str(tmp_path / "pm")],
    ):
        code, out, err = cli(capsys, *argv, "--journal", str(run_journal))
        assert (code, out) == (2, [])
        assert err == [
            f"InvalidArgument: {run_journal}: no run 'nonexistent' in this journal "
            f"(latest: {RUN_ID})"
        ]
