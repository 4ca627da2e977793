"""Export: one JSON object per line, every field of every entry, hashes included.

The seam toward a central store of journals: each line carries the bench,
the run and the chain hashes, so a collector can merge many benches and
still check each chain.
"""

from __future__ import annotations

import json
from typing import TextIO

from interlock.journal.reader import JournalReader


def export_jsonl(
    reader: JournalReader, out: TextIO, *, run: str | None = None, since: str | None = None
) -> int:
    """Write the selected entries to ``out`` in seq order; return how many."""
    count = 0
    for entry in reader.entries(run=run, since=since):
        out.write(json.dumps(entry.as_dict(), ensure_ascii=False) + "\n")
        count += 1
    return count
