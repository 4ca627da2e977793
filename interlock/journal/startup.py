"""The service's check of its journal at start, and an operator's acknowledgement of a break.

At start, :func:`check_at_start` verifies the chain from the checkpoint its
witness records (where the last check ended) to the head, and the witness
itself, and journals what it found (a ``journal`` entry, ``"action":
"check"``). When nothing is broken the witness is made durable first (the
entry says so: ``"witnessed"``) and its checkpoint moves to where the check
ended, so the next start reads only what was written since. ``interlock
journal verify`` checks the whole chain.

:class:`ChainGuard` latches a break nobody has acknowledged as a controller
fault (cause ``journal-chain``, naming the first bad entry), so nothing can be
armed. The operator's reset is the acknowledgement: before the fault clears,
an entry (``"action": "acknowledge"``, the operator as actor) lists each
break with its mark. Checks go on past those breaks, and verification
reports each with its acknowledgement. A witness that held what the
database no longer has (a cut, a wipe), or that was missing, is re-anchored
at that entry. :func:`adopt` does the same for a journal from before
witnesses, from the command line (``"action": "adopt"``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from interlock.errors import FaultLatched, JournalCorrupt, JournalError
from interlock.journal.entries import Entry
from interlock.journal.putback import saved_copies
from interlock.journal.store import Journal
from interlock.journal.verify import Acknowledged, ChainBreak, Inspection, inspect_file

log = logging.getLogger(__name__)

CAUSE = "journal-chain"


@dataclass(frozen=True)
class StartCheck:
    after: int  # the check began after this seq (0: the whole chain)
    entries: int  # entries checked
    last_seq: int | None
    breaks: tuple[ChainBreak, ...]  # not acknowledged
    acknowledged: tuple[Acknowledged, ...]
    seconds: float
    entry: int | None  # the journal entry that records the check (None: not written)
    saved: tuple[str, ...] = ()  # copies saved beside it when its files went (their names)

    @property
    def ok(self) -> bool:
        return not self.breaks


def describe(breaks: Sequence[ChainBreak]) -> str:
    """The first break, and how many more."""
    more = len(breaks) - 1
    return breaks[0].problem + (f" (and {more} more break(s))" if more > 0 else "")


def _with_saved(text: str, saved: Sequence[str]) -> str:
    """``text``, and where the record may be whole when a break follows files that went."""
    if not saved:
        return text
    return f"{text}; saved beside it when its files went: {', '.join(saved)}"


def _listed(breaks: Sequence[ChainBreak]) -> list[dict[str, Any]]:
    return [{"seq": b.seq, "problem": b.problem, "mark": b.mark} for b in breaks]


def check_at_start(journal: Journal) -> StartCheck:
    """Verify ``journal`` from its witness's checkpoint and journal the result."""
    started = time.monotonic()
    try:
        found: Inspection | None = inspect_file(journal.path, from_checkpoint=True)
        breaks = tuple(found.unacknowledged)
    except JournalError as error:
        found = None
        breaks = (ChainBreak(None, f"the journal cannot be checked: {error}", "unchecked"),)
    seconds = time.monotonic() - started
    payload: dict[str, Any] = {"action": "check", "seconds": round(seconds, 6)}
    if found is not None:
        payload.update(
            after=found.after.seq,
            entries=found.report.entries,
            last=found.end.seq,
            acknowledged=[{"seq": a.brk.seq, "entry": a.entry} for a in found.report.acknowledged],
        )
    saved = tuple(saved_copies(journal.path))
    if saved:
        payload["saved"] = list(saved)
    if breaks:
        payload["breaks"] = _listed(breaks)
        log.critical("journal %s: %s", journal.path, _with_saved(describe(breaks), saved))
    elif saved:
        log.warning("journal %s: copies saved beside it: %s", journal.path, ", ".join(saved))
    try:
        entry: Entry | None = journal.upkeep(
            payload,
            checked=found.end if found is not None and not breaks else None,
            claim_witness=not breaks,
        )
    except JournalError as error:
        # Not a break of the chain: the journal cannot be written, which the
        # controller finds out at its first write.
        log.error("journal %s: the start-up check could not be journaled: %s", journal.path, error)
        entry = None
    return StartCheck(
        after=found.after.seq if found is not None else 0,
        entries=found.report.entries if found is not None else 0,
        last_seq=found.report.last_seq if found is not None else None,
        breaks=breaks,
        acknowledged=found.report.acknowledged if found is not None else (),
        seconds=seconds,
        entry=entry.seq if entry is not None else None,
        saved=saved,
    )


def acknowledge(
    journal: Journal,
    found: Inspection,
    actor: str,
    *,
    action: str = "acknowledge",
    shown: Sequence[ChainBreak] = (),
    **details: Any,
) -> Entry:
    """Journal ``actor``'s acknowledgement of every break ``found`` holds that is not
    acknowledged yet (each as it was ``shown``, if it was); a witness that was part
    of one is re-anchored at this entry."""
    as_shown = {b.mark: b for b in shown}
    breaks = [as_shown.get(b.mark, b) for b in found.unacknowledged]
    return journal.upkeep(
        {**details, "action": action, "breaks": _listed(breaks)},
        actor=actor,
        checked=found.end,
        reanchor_witness=any(b.mark.startswith("witness") for b in breaks),
    )


def adopt(journal: Journal, actor: str) -> Entry:
    """Anchor a journal that has no witness (one from before witnesses) at its head.

    The whole chain is verified first: only a journal whose one break is its
    missing witness is adopted.
    """
    found = inspect_file(journal.path)
    breaks = found.unacknowledged
    others = [b for b in breaks if b.mark != "witness-missing"]
    if others:
        raise JournalCorrupt(others[0].seq, f"{others[0].problem} (only a whole chain is adopted)")
    if not breaks:
        raise JournalError(f"{journal.path}: nothing to adopt: the journal has its witness")
    return acknowledge(journal, found, actor, action="adopt")


class ChainGuard:
    """Holds the start-up check's breaks as a latched fault until an operator's
    reset acknowledges them (the controller calls :meth:`before_reset`)."""

    def __init__(self, journal: Journal, check: StartCheck) -> None:
        self._journal = journal
        self._pending = check.breaks
        self._saved = check.saved
        self._shown = False  # the operator has been told of the breaks
        self._lock = threading.Lock()

    @property
    def pending(self) -> tuple[ChainBreak, ...]:
        return self._pending

    def latch(self, trip: Callable[[str, str], object]) -> None:
        """Trip with cause ``journal-chain`` if a break is waiting for its acknowledgement."""
        if self._pending:
            trip(CAUSE, _with_saved(describe(self._pending), self._saved))

    def before_reset(self, operator: str, fault: str | None) -> None:
        """Journal ``operator``'s acknowledgement of the pending breaks before a reset
        clears the fault; raise (and so refuse the reset) when the operator has
        not been shown what they would acknowledge."""
        with self._lock:
            if not self._pending:
                return
            if not self._shown and not (fault or "").startswith(f"{CAUSE}:"):
                self._shown = True
                raise FaultLatched(
                    f"the journal's chain is broken too: {describe(self._pending)}; "
                    "a reset acknowledges it: reset again to do so"
                )
            found = inspect_file(self._journal.path, from_checkpoint=True)
            now = found.unacknowledged
            marks = {b.mark for b in self._pending}
            seqs = {b.seq for b in self._pending}
            new = [b for b in now if b.mark not in marks and b.seq not in seqs]
            if new:
                self._pending = tuple(now)
                self._shown = True
                raise JournalCorrupt(
                    new[0].seq,
                    f"reset refused: the journal broke again since the fault: {describe(new)}; "
                    "reset again to acknowledge it",
                )
            if now:
                entry = acknowledge(
                    self._journal, found, operator, shown=self._pending, fault=fault
                )
                log.warning(
                    "journal %s: %s acknowledged at entry %d: %s",
                    self._journal.path,
                    operator,
                    entry.seq,
                    describe(self._pending),
                )
            self._pending = ()
