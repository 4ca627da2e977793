"""Golden post-mortem of a short synthetic run: the timeline text and a valid PNG."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from journal_synthetic import RUN_ID, write_config_files, write_synthetic_run
from PIL import Image

from interlock.errors import JournalError
from interlock.journal import Journal
from interlock.journal.postmortem import write_postmortem

GOLDEN = Path(__file__).with_name("golden") / "postmortem_timeline.txt"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def run_journal(tmp_path, monkeypatch, clock) -> Path:
    # Relative config paths keep the golden text free of the tmp dir.
    monkeypatch.chdir(tmp_path)
    files = write_config_files(tmp_path)
    path = tmp_path / "journal.sqlite"
    with Journal(path, bench="sim-bench", clock=clock) as journal:
        write_synthetic_run(journal, clock, files)
        # A later, clean run: the post-mortem must pick the requested one.
        clock.advance(60)
        journal.begin_run("20260314T093200Z-d4e5f6")
        journal.operator("olga", "arm")
    return path


def test_timeline_matches_the_golden_file(run_journal, tmp_path):
    result = write_postmortem(run_journal, RUN_ID, tmp_path / "pm")
    text = result.timeline.read_text(encoding="utf-8")
    if os.environ.get("INTERLOCK_UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")
    assert result.chain_error is None and result.entries == 33


def test_plot_is_a_readable_png(run_journal, tmp_path):
    result = write_postmortem(run_journal, RUN_ID, tmp_path / "pm")
    data = result.plot.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    with Image.open(result.plot) as image:
        image.verify()
    with Image.open(result.plot) as image:
        width, height = image.size
        assert image.format == "PNG" and width > 500 and height > 300
        # Not a blank canvas: lines of several colours were drawn.
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 16) or []) > 10


def test_default_is_the_latest_run(run_journal, tmp_path):
    result = write_postmortem(run_journal, None, tmp_path / "pm")
    assert result.run_id == "20260314T093200Z-d4e5f6"
    text = result.timeline.read_text()
    assert "Outcome: no fault" in text
    assert "NONE PINNED" in text
    assert result.plot.read_bytes().startswith(PNG_SIGNATURE)


def test_a_broken_chain_is_reported_in_the_post_mortem(run_journal, tmp_path):
    import sqlite3

    conn = sqlite3.connect(run_journal)
    conn.execute("UPDATE entries SET payload = '{\"allowed\":true}' WHERE seq = 26")
    conn.commit()
    conn.close()
    result = write_postmortem(run_journal, RUN_ID, tmp_path / "pm")
    assert result.chain_error == "entry 26: content does not match its hash (edited)"
    assert "Journal chain: BROKEN: entry 26" in result.timeline.read_text()


def test_unknown_run_is_an_error(run_journal, tmp_path):
    with pytest.raises(JournalError, match="no entries for run 'nope'"):
        write_postmortem(run_journal, "nope", tmp_path / "pm")
