"""Reading a journal: entries by run or time, the runs it holds.

A reader has its own connection, so it can run beside a writer (another
thread or process): in WAL mode readers see the last committed state and
never block appends.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from interlock.errors import JournalError
from interlock.journal.db import ENTRY_COLUMNS, connect, row_to_entry
from interlock.journal.entries import Entry, Kind


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    first_seq: int
    last_seq: int
    started: str  # wall time of its first entry
    ended: str  # wall time of its last entry
    entries: int
    faulted: bool  # holds a fault entry: kept by retention unless asked


class JournalReader:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn = connect(self.path, create=False)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> JournalReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise JournalError(f"{self.path}: cannot read journal: {exc}") from exc

    def entries(
        self,
        *,
        run: str | None = None,
        since: str | None = None,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> Iterator[Entry]:
        """Entries in seq order. ``since`` is a wall time as stored (see store.format_wall)."""
        clauses = ["seq > ?"]
        params: list[object] = [after_seq]
        if run is not None:
            clauses.append("run_id = ?")
            params.append(run)
        if since is not None:
            clauses.append("wall_time >= ?")
            params.append(since)
        sql = f"SELECT {ENTRY_COLUMNS} FROM entries WHERE {' AND '.join(clauses)} ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        # Fetched in pages: a journal can be large, and a held cursor would
        # pin a read snapshot (and keep the WAL from being checkpointed).
        page = 2000
        last = after_seq
        while True:
            params[0] = last
            rows = self._query(sql if limit is not None else f"{sql} LIMIT {page}", tuple(params))
            for row in rows:
                yield row_to_entry(row)
            if limit is not None or len(rows) < page:
                return
            last = rows[-1][0]

    def runs(self) -> list[RunSummary]:
        rows = self._query(
            "SELECT run_id, MIN(seq), MAX(seq), MIN(wall_time), MAX(wall_time), COUNT(*), "
            "SUM(kind = ?) FROM entries WHERE run_id != '' GROUP BY run_id ORDER BY MIN(seq)",
            (Kind.FAULT.value,),
        )
        return [
            RunSummary(run_id, first, last, started, ended, count, bool(faults))
            for run_id, first, last, started, ended, count, faults in rows
        ]

    def latest_run(self) -> str | None:
        row = self._query("SELECT run_id FROM entries WHERE run_id != '' ORDER BY seq DESC LIMIT 1")
        return row[0][0] if row else None

    def lead_in(self, seq: int, kinds: tuple[str, ...], *, limit: int = 20) -> list[Entry]:
        """The last ``limit`` entries of ``kinds`` outside any run, between the
        previous run and ``seq`` (e.g. the identity checks and the operator's
        arm that came just before a run began)."""
        row = self._query(
            "SELECT MAX(seq) FROM entries WHERE run_id != '' AND seq < ? "
            "AND run_id != (SELECT run_id FROM entries WHERE seq = ?)",
            (seq, seq),
        )
        start = row[0][0] or 0
        marks = ", ".join("?" for _ in kinds)
        rows = self._query(
            f"SELECT {ENTRY_COLUMNS} FROM entries WHERE run_id = '' AND kind IN ({marks}) "
            "AND seq > ? AND seq < ? ORDER BY seq DESC LIMIT ?",
            (*kinds, start, seq, limit),
        )
        return [row_to_entry(r) for r in reversed(rows)]

    def last_seq(self) -> int:
        row = self._query("SELECT MAX(seq) FROM entries")
        return row[0][0] or 0

    def bench(self) -> str | None:
        row = self._query("SELECT bench FROM entries ORDER BY seq DESC LIMIT 1")
        return row[0][0] if row else None
