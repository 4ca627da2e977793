"""Refusals of access: counted as they happen, journaled in aggregate.

A caller without a valid token is nobody the bench answers to. Journaling
each of its refusals durably (one fsync each, where the request is handled)
let anyone grow the journal without bound and slow the emergency stop. So a
refusal only counts, in memory, per source (role, who and client as the
caller says, peer) and reason; a thread of its own journals each source's
count once per :data:`INTERVAL_S`, as one ``request`` (action ``access``,
``count``) and one ``verdict`` (rule ``access``, ``reason``, ``count``,
``seconds`` between the first and the last), all in one commit. A first
refusal is in the journal within about :data:`INTERVAL_S`. At most
:data:`MAX_SOURCES` sources are told apart per interval; refusals beyond
them are counted together under the source ``others``.

The journal write waits at most :data:`FLUSH_WAIT_S` for a busy journal;
what it could not write stays staged and goes with the journal's next
commit, whoever makes it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from interlock.errors import JournalError

log = logging.getLogger(__name__)

#: Seconds between two aggregate journal writes (and so the longest a refusal waits).
INTERVAL_S = 2.0
#: Sources told apart per interval; the rest are counted as one, "others".
MAX_SOURCES = 32
#: The longest an aggregate write waits for a busy journal before leaving its entries staged.
FLUSH_WAIT_S = 0.2


@dataclass(frozen=True)
class RefusalSource:
    """Who was refused, as far as the service can tell (the caller's words are bounded text)."""

    role: str  # "none" without a valid token
    who: str
    client: str
    peer: str  # "unix socket", or the TCP peer's address


OTHERS = RefusalSource(role="others", who="others", client="others", peer="others")


@dataclass
class _Tally:
    count: int
    first: float  # monotonic
    last: float
    where: dict[str, str] = field(default_factory=dict)  # the first refusal's method and path


@dataclass(frozen=True)
class RefusalCount:
    """One source's refusals for one reason over an interval, as journaled."""

    source: RefusalSource
    reason: str
    count: int
    seconds: float
    where: dict[str, str]
    rule: str = "access"


class RefusalLog:
    """Counts refusals and journals them in aggregate from a thread of its own.

    ``journal`` returns the journal to write to (None while there is none:
    the counts wait). The thread starts with the first refusal; :meth:`stop`
    writes what is counted and ends it.
    """

    def __init__(
        self,
        journal: Callable[[], Any],
        *,
        interval: float | None = None,
        max_sources: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._journal = journal
        self.interval = INTERVAL_S if interval is None else interval
        self.max_sources = MAX_SOURCES if max_sources is None else max_sources
        self._clock = clock
        self._lock = threading.Lock()
        self._tallies: dict[tuple[RefusalSource, str, str], _Tally] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.total = 0  # refusals counted since the start

    def record(
        self, source: RefusalSource, reason: str, *, rule: str = "access", **where: str
    ) -> None:
        """Count one refusal: memory only, O(1), nothing waits."""
        now = self._clock()
        with self._lock:
            self.total += 1
            key = (source, rule, reason)
            tally = self._tallies.get(key)
            if tally is None and len(self._tallies) >= self.max_sources:
                key = (OTHERS, "access", "refused")
                tally = self._tallies.get(key)
            if tally is None:
                self._tallies[key] = _Tally(1, now, now, dict(where))
            else:
                tally.count += 1
                tally.last = now
            if self._thread is None and not self._stopping.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="interlock-refusals", daemon=True
                )
                self._thread.start()

    def _take(self) -> list[RefusalCount]:
        with self._lock:
            tallies, self._tallies = self._tallies, {}
        return [
            RefusalCount(source, reason, t.count, t.last - t.first, t.where, rule)
            for (source, rule, reason), t in tallies.items()
        ]

    def flush(self) -> list[RefusalCount]:
        """Journal what is counted now (one request and verdict per source); return it."""
        counts = self._take()
        journal = self._journal()
        if not counts:
            return counts
        if journal is None:
            log.warning("%d refusal counts dropped: no journal", len(counts))
            return counts
        for refused in counts:
            source = refused.source
            try:
                request = journal.request(
                    source.who,
                    source.client,
                    "access",
                    durable=False,
                    **refused.where,
                    role=source.role,
                    peer=source.peer,
                    count=refused.count,
                )
                journal.verdict(
                    False,
                    request=request,
                    rule=refused.rule,
                    where="service",
                    reason=refused.reason,
                    count=refused.count,
                    seconds=round(refused.seconds, 3),
                    durable=False,
                )
            except JournalError as error:  # text the journal cannot hold: the others still go
                log.warning("%d refusals of %s not journaled: %s", refused.count, source, error)
        try:
            with journal.waiting_at_most(FLUSH_WAIT_S):
                journal.flush()
        except JournalError as error:
            # Staged entries go with the journal's next commit.
            log.warning("refusal counts not journaled yet: %s", error)
        return counts

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.flush()
            except Exception:  # a bug: keep counting, keep the trace
                log.exception("journaling refusal counts")

    def stop(self) -> None:
        """Journal what is counted, end the thread. Later refusals are still counted."""
        self._stopping.set()
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=self.interval + 5)
        try:
            self.flush()
        except Exception:
            log.exception("journaling refusal counts")
