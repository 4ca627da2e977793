"""Write-ahead for instrument commands: nothing is sent that is not journaled.

The rule (DESIGN.md, "Journal before acting") is enforced by types rather
than by discipline:

1. The controller asks the journal for an intent::

       intent = journal.command_intent("psu", b"VOLT 5,(@1)\\n", net="VBUS",
                                       quantity="voltage", value=5.0)

   :meth:`~interlock.journal.store.Journal.command_intent` returns only after
   the ``command`` entry is committed (``synchronous=FULL``), and it is the
   only way to make a :class:`DurableIntent`: the constructor demands a token
   private to this package.

2. A driver sends through a :class:`JournaledWriter` (or
   :func:`send_journaled`), which accepts nothing but a :class:`DurableIntent`
   and writes exactly the bytes that were journaled::

       port = JournaledWriter("psu", transport.write)
       port.send(intent)

   Drivers never hand raw bytes to the transport, so a command without a
   durable intent cannot be written. Each intent is good for one write: a
   retry is a new command and gets a new entry.

3. A *pure query* (every message unit a query: ``MEAS:VOLT? (@1,2)``) acts on
   nothing, so it may go out with its entry staged for the next commit:
   :meth:`~interlock.journal.store.Journal.query_intent` returns a
   :class:`QueryIntent`, and refuses any line that sets something.

4. One exception, because failing safe comes first (DESIGN.md, principle 1):
   a line that only turns outputs off (:func:`is_off_only`), sent to reach
   the safe state, goes out even when the journal cannot be written
   (:meth:`~interlock.journal.store.Journal.safe_off_intent`). It is logged
   at once and journaled, flagged ``unjournaled``, as soon as the journal
   writes again. A journal that cannot be written never keeps a supply on.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

from interlock.errors import JournalError

# Only the journal holds this; DurableIntent refuses to be built without it.
_JOURNAL_TOKEN = object()


class DurableIntent:
    """A command whose ``command`` entry is already on disk.

    ``seq`` is the entry's sequence number, ``data`` the exact bytes to send.
    Immutable, and single-use (see :func:`send_journaled`).
    """

    __slots__ = ("_lock", "_sent", "data", "entry_hash", "instrument", "seq")

    seq: int
    instrument: str
    data: bytes
    entry_hash: str

    def __init__(
        self, token: object, *, seq: int, instrument: str, data: bytes, entry_hash: str
    ) -> None:
        if token is not _JOURNAL_TOKEN:
            raise TypeError("a DurableIntent is only made by Journal.command_intent()")
        for name, value in (
            ("seq", seq),
            ("instrument", instrument),
            ("data", bytes(data)),
            ("entry_hash", entry_hash),
        ):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_sent", False)
        object.__setattr__(self, "_lock", threading.Lock())

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a DurableIntent cannot be changed")

    def __repr__(self) -> str:
        return f"DurableIntent(seq={self.seq}, instrument={self.instrument!r}, data={self.data!r})"

    @property
    def sent(self) -> bool:
        return self._sent

    def _claim(self) -> None:
        # Under a lock: two threads sending the same intent must not both win.
        with self._lock:
            if self._sent:
                raise JournalError(
                    f"intent #{self.seq} for {self.instrument} was already sent; "
                    "journal a new command to send again"
                )
            object.__setattr__(self, "_sent", True)


def is_pure_query(data: bytes) -> bool:
    """True if every SCPI message unit in ``data`` is a query (its header ends in ``?``).

    Such a line asks and changes nothing, so its record need not be on disk
    before it goes out: a crash can lose the record of a question, never of an act.
    """
    text = _one_line(data)
    if text is None:
        return False
    units = [unit.strip() for unit in text.split(";")]
    return all(unit and unit.split(None, 1)[0].endswith("?") for unit in units)


_NOT_PRINTABLE = re.compile(rb"[^\x20-\x7e]")  # one scan in C, not a step per byte


def _one_line(data: bytes) -> str | None:
    """The line's text without its final newline, if it is one line of printable ASCII.

    Anything else (a CR or a tab, which some instruments take as a separator, a
    second line, a byte outside ASCII) could hide a second command: not classified.
    """
    if data.endswith(b"\n"):
        data = data[:-1]
    if not data or _NOT_PRINTABLE.search(data) is not None:
        return None
    return data.decode("ascii")


# What an off-only line may hold, unit by unit, in full: "output off" (OUTPut[:STATe]
# OFF|0, optionally for a channel list) or the query of the output state. A unit after
# the first starts at the root (":"), so no header is resolved relative to another.
_CHANNELS = r"\(@\d+(?:[,:]\d+)*\)"
_OFF_UNIT = re.compile(
    rf"OUTP(?:UT)?(?::STAT(?:E)?)? (?:OFF|0)(?:,{_CHANNELS})?"
    rf"|OUTP(?:UT)?(?::STAT(?:E)?)?\?(?: {_CHANNELS})?",
    re.IGNORECASE,
)


def is_off_only(data: bytes) -> bool:
    """True if every SCPI message unit in ``data`` turns an output off or only asks.

    ``OUTP OFF,(@1,2);:OUTP? (@1,2)`` is off-only; ``OUTP ON``, ``VOLT 0``, any
    other query or anything the check does not know are not: the exception it
    allows is kept as narrow as the safe state needs, and each unit is matched
    whole.
    """
    text = _one_line(data)
    if text is None:
        return False
    for i, unit in enumerate(text.split(";")):
        if i == 0:
            unit = unit.removeprefix(":")
        elif not unit.startswith(":"):
            return False
        else:
            unit = unit[1:]
        if not _OFF_UNIT.fullmatch(unit):
            return False
    return True


class QueryIntent(DurableIntent):
    """A pure query, journaled with the next commit rather than before it is sent.

    Made only by :meth:`~interlock.journal.store.Journal.query_intent`, which
    refuses anything that is not a pure query (:func:`is_pure_query`). ``seq``
    is 0 until the entry is written. ``staged_as`` is its entry while staged (for the
    journal to put the answer in its place: :meth:`~interlock.journal.store.Journal.answer`).
    """

    __slots__ = ("staged_as",)

    def __repr__(self) -> str:
        return f"QueryIntent(instrument={self.instrument!r}, data={self.data!r})"


def send_journaled(intent: DurableIntent, write: Callable[[bytes], object]) -> None:
    """Write the intent's exact bytes with ``write``; refuse anything else.

    The intent is marked sent before writing: if the write fails half way,
    the bytes may have gone out, and a resend must be journaled anew.
    """
    if not isinstance(intent, DurableIntent):
        raise JournalError(
            f"refusing to send {type(intent).__name__}: only a DurableIntent from "
            "Journal.command_intent() may be sent"
        )
    intent._claim()
    write(intent.data)


class JournaledWriter:
    """The write side of one instrument's transport, open only to intents."""

    def __init__(self, instrument: str, write: Callable[[bytes], object]) -> None:
        self.instrument = instrument
        self._write = write

    def send(self, intent: DurableIntent) -> None:
        if isinstance(intent, DurableIntent) and intent.instrument != self.instrument:
            raise JournalError(
                f"intent #{intent.seq} is for {intent.instrument!r}, not {self.instrument!r}"
            )
        send_journaled(intent, self._write)
