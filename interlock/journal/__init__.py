"""The bench's flight recorder: a durable, hash-chained journal in SQLite.

The controller holds a :class:`Journal` and records every request, verdict,
command, readback, measurement, state change, fault, operator action,
identity check and the configuration pinned at arming. Every call returns
once its entry is on disk. Commands are sent only through a
:class:`DurableIntent` (write-ahead, see :mod:`interlock.journal.intent`)::

    journal = Journal(bench.service.journal, bench=bench.name)
    journal.begin_run()                                   # at arming
    journal.operator("olga", "arm")
    journal.config({"bench": bench.path, "profile": profile.path},
                   limits={"VBUS": {"max_voltage": 25.0, "max_current": 0.5}})
    request = journal.request("alice", "pytest-plugin", "set",
                              net="VBUS", quantity="voltage", value=24.0)
    journal.verdict(True, request=request.seq)
    intent = journal.command_intent("psu", b"VOLT 24,(@1)\n",
                                    net="VBUS", quantity="voltage", value=24.0)
    psu_port.send(intent)                                 # a JournaledWriter
    journal.readback("psu", "VOLT? (@1)", "24.000", net="VBUS",
                     quantity="voltage", value=24.0, expected=24.0, ok=True)
    journal.measurement("VBUS", voltage=24.01, current=0.2)
    journal.end_run()

Entry kinds and payload conventions are in :mod:`interlock.journal.entries`;
the chain check in :mod:`interlock.journal.verify`; the head kept outside the
database in :mod:`interlock.journal.witness`; the service's start-up check and
an operator's acknowledgement of a break in :mod:`interlock.journal.startup`;
who may read the files in :mod:`interlock.journal.files`; retention in
:mod:`interlock.journal.retention`; the post-mortem in
:mod:`interlock.journal.postmortem`. Readers (:class:`JournalReader`) have
their own connection and never block the writer; use one per thread.
"""

from interlock.journal.entries import GENESIS_HASH, KINDS, Entry, Kind
from interlock.journal.intent import (
    DurableIntent,
    JournaledWriter,
    QueryIntent,
    is_pure_query,
    send_journaled,
)
from interlock.journal.reader import JournalReader, RunSummary
from interlock.journal.store import Clock, Journal, Pending, SystemClock
from interlock.journal.verify import VerifyReport, verify_journal

__all__ = [
    "GENESIS_HASH",
    "KINDS",
    "Clock",
    "DurableIntent",
    "Entry",
    "Journal",
    "JournalReader",
    "JournaledWriter",
    "Kind",
    "Pending",
    "QueryIntent",
    "RunSummary",
    "SystemClock",
    "VerifyReport",
    "is_pure_query",
    "send_journaled",
    "verify_journal",
]
