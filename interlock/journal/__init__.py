"""The bench's flight recorder: a durable, hash-chained journal in SQLite.

The controller holds a :class:`Journal` and records every request, verdict,
command, readback, measurement, state change, fault, operator action,
identity check and the configuration pinned at arming. Commands are sent
only through a :class:`DurableIntent` (write-ahead, see
:mod:`interlock.journal.intent`). Entry kinds and payload conventions are in
:mod:`interlock.journal.entries`; the chain check in
:mod:`interlock.journal.verify`.
"""

from interlock.journal.entries import GENESIS_HASH, KINDS, Entry, Kind
from interlock.journal.intent import DurableIntent, JournaledWriter, send_journaled
from interlock.journal.reader import JournalReader, RunSummary
from interlock.journal.store import Clock, Journal, SystemClock
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
    "RunSummary",
    "SystemClock",
    "VerifyReport",
    "send_journaled",
    "verify_journal",
]
