"""The console's data layer on its own: a service that hangs, the journal tail."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from interlock.config import load_bench
from interlock.console.source import Disconnected, JournalTail, ServiceSource
from interlock.journal import Journal
from tests.service.conftest import write_bench


def test_a_service_that_hangs_is_shown_as_lost(short_dir):
    """Something accepts on the socket and never answers (e.g. a stopped process)."""
    bench = load_bench(write_bench(short_dir))

    async def scenario() -> tuple[Disconnected, float]:
        accepted: list[asyncio.StreamWriter] = []

        async def silent(_reader, writer) -> None:
            accepted.append(writer)

        server = await asyncio.start_unix_server(silent, path=str(bench.service.socket))
        source = ServiceSource(bench, "viewer", token="any", period=0.05)
        start = time.monotonic()
        updates = source.follow()
        try:
            first = await asyncio.wait_for(anext(updates), 10)
        finally:
            await updates.aclose()
            await source.close()
            for writer in accepted:
                writer.close()
            server.close()
            await server.wait_closed()
        return first, time.monotonic() - start

    first, took = asyncio.run(scenario())
    assert isinstance(first, Disconnected)
    assert first.reason == "the service stopped answering"
    assert 1.5 < took < 5


def test_no_service_at_all_is_said_plainly(short_dir):
    bench = load_bench(write_bench(short_dir))

    async def scenario() -> Disconnected:
        source = ServiceSource(bench, "viewer", token="any")
        updates = source.follow()
        try:
            return await asyncio.wait_for(anext(updates), 5)
        finally:
            await updates.aclose()
            await source.close()

    assert asyncio.run(scenario()) == Disconnected("no service answers on the socket")


def test_the_journal_tail_leaves_out_the_chatty_kinds(short_dir):
    path = short_dir / "journal.sqlite"
    tail = JournalTail(path)
    assert tail.tail(5) == []  # no journal yet: nothing, no error
    journal = Journal(path, bench="sim-bench-01")
    try:
        asked = journal.request("ops", "script x", "set", net="VBUS", quantity="voltage", value=26)
        journal.verdict(False, request=asked.seq, rule="max_voltage", where="p.toml", reason="26 V")
        for volts in (5.0, 5.01, 4.99):
            journal.measurement("VLOGIC", voltage=volts, current=0.15)
        journal.fault("monitor", "VLOGIC: short?")
        lines = tail.tail(2)
    finally:
        journal.close()
        tail.close()
    assert [(line.kind, line.alarm) for line in lines] == [
        ("verdict", "refused"),
        ("fault", "fault"),
    ]
    assert lines[1].text == "FAULT monitor: VLOGIC: short?"


_HAMMER = """
import sys, threading, time
from interlock.console.source import JournalTail
tail = JournalTail(sys.argv[1])
stop = threading.Event()
def read():
    while not stop.is_set():
        try:
            tail.tail(200)
        except Exception:
            pass
readers = [threading.Thread(target=read) for _ in range(3)]
for reader in readers:
    reader.start()
end = time.monotonic() + 1.0
while time.monotonic() < end:
    tail.close()
stop.set()
for reader in readers:
    reader.join()
"""


def test_the_tail_survives_being_closed_while_a_refresh_reads_it(tmp_path):
    """The console reads the tail in worker threads and closes it on its event loop.

    Closing an SQLite connection another thread is reading through crashes the
    interpreter; in a child process, so the crash is a failure here, not the end of the run.
    """
    path = tmp_path / "journal.sqlite"
    with Journal(path, bench="sim-bench-01") as journal:
        for n in range(300):
            journal.append("operator", {"action": "note", "n": n})
    done = subprocess.run(
        [sys.executable, "-c", _HAMMER, str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
