"""Golden post-mortem of a short synthetic run: the timeline text and a valid PNG."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from journal_synthetic import RUN_ID
from PIL import Image

from interlock.errors import InvalidArgument
from interlock.journal import Journal
from interlock.journal.postmortem import write_postmortem

GOLDEN = Path(__file__).with_name("golden") / "postmortem_timeline.txt"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def later_run(run_journal, clock) -> Path:
    """The synthetic run followed by a short clean one."""
    clock.advance(60)
    with Journal(run_journal, bench="sim-bench", clock=clock) as journal:
        journal.begin_run("20260314T093200Z-d4e5f6")
        journal.operator("olga", "arm")
    return run_journal


def test_timeline_matches_the_golden_file(run_journal, tmp_path):
    result = write_postmortem(run_journal, RUN_ID, tmp_path / "pm")
    text = result.timeline.read_text(encoding="utf-8")
    if os.environ.get("INTERLOCK_UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")
    assert result.chain_error is None and result.entries == 32


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


def test_default_is_the_latest_run(later_run, tmp_path):
    result = write_postmortem(later_run, None, tmp_path / "pm")
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
    # A usage error (exit 2), naming the latest run there is: not a broken journal.
    with pytest.raises(InvalidArgument, match=r"no run 'nope' in this journal \(latest: "):
        write_postmortem(run_journal, "nope", tmp_path / "pm")
