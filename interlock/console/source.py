"""Where the console's data comes from: the bench's service, and its journal file.

:class:`ServiceSource` follows the service's event stream (``GET /events``)
over the bench's Unix socket and yields :class:`Status`, :class:`Event` and
:class:`Disconnected` updates. When the stream cannot be opened, breaks, or
goes quiet for longer than a few status periods (a service that hangs),
it yields :class:`Disconnected` and tries again, for ever: a console is
started before, and outlives, any one run of the service. Nothing here is
needed for the bench to be safe; the service is safe without a console.

The journal tail is read from the journal file, read-only (the service has
no route for it): the console runs on the bench's own machine, where the
file is. Measurements, commands and readbacks are left out of the tail;
they are many per second while a net is live and say nothing to an
operator that a fault entry would not.

Actions (:meth:`ServiceSource.estop` and the operator's ones) are plain
requests; the service journals and decides them. Everything goes through
the client library's async face (:class:`~interlock.client.AsyncClient`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from interlock.client import AsyncClient, transport_reason
from interlock.client._common import Remote, RemoteBench
from interlock.config import Bench
from interlock.errors import InterlockError, JournalError, ServiceUnavailable
from interlock.journal.db import ENTRY_COLUMNS, connect, row_to_entry
from interlock.journal.render import describe
from interlock.service.tokens import read_token

from .model import JournalLine

log = logging.getLogger(__name__)

#: Seconds between the status lines the service sends on the stream.
STATUS_PERIOD = 0.25
#: First and longest wait between connection attempts.
RETRY_FIRST, RETRY_MAX = 0.25, 2.0
#: Journal kinds left out of the tail (see the module docstring).
QUIET_KINDS = ("measurement", "command", "readback")
#: Room for the slowest action: arming identifies every instrument and the DUT.
ACTION_TIMEOUT = 60.0
#: A service on this machine that does not accept within this is not there.
CONNECT_TIMEOUT = 2.0


@dataclass(frozen=True)
class Status:
    """The service's whole status (``GET /status``), connected."""

    status: dict[str, Any]


@dataclass(frozen=True)
class Event:
    """One event of the stream: state, fault, refused, lease, overflow."""

    event: dict[str, Any]


@dataclass(frozen=True)
class Disconnected:
    reason: str


Update = Status | Event | Disconnected


class Source(Protocol):
    """What the console needs of a bench; the tests of the screen give it a fixed one."""

    bench: Bench
    role: str

    def follow(self) -> AsyncIterator[Update]: ...

    async def journal_tail(self, limit: int) -> list[JournalLine]: ...

    async def estop(self) -> dict[str, Any]: ...

    async def arm(self, confirm: str | None) -> dict[str, Any]: ...

    async def disarm(self) -> dict[str, Any]: ...

    async def reset(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class ServiceSource:
    """The bench's service, reached over its Unix socket with the token of ``role``, or at
    ``remote`` (a bench of a lab: its journal is on its own host, and not shown here)."""

    def __init__(
        self,
        bench: Bench | RemoteBench,
        role: str,
        *,
        token: str | None = None,
        who: str | None = None,
        period: float = STATUS_PERIOD,
        remote: Remote | None = None,
    ) -> None:
        self.bench = bench
        self.role = role
        self.period = period
        self._token = token
        self._who = who
        self._remote = remote
        self._actions: AsyncClient | None = None
        self._journal = JournalTail(bench.service.journal) if isinstance(bench, Bench) else None

    # -- plumbing -------------------------------------------------------------------

    def _client(self, timeout: float) -> AsyncClient:
        # The token is read each time: a service starting for the first time creates it.
        return AsyncClient(
            self.bench,
            role=self.role,
            token=self._token or read_token(self.bench.service.tokens, self.role),
            who=self._who,
            remote=self._remote,
            program=f"console pid {os.getpid()}",
            timeout=timeout,
            connect_timeout=CONNECT_TIMEOUT,
        )

    async def _act(self, action: str, *args: Any) -> dict[str, Any]:
        if self._actions is None:
            self._actions = self._client(ACTION_TIMEOUT)
        try:
            return await getattr(self._actions, action)(*args)
        except ServiceUnavailable:
            # A client broken by a service restart is not reused.
            await self._drop_actions()
            raise

    async def _drop_actions(self) -> None:
        actions, self._actions = self._actions, None
        if actions is not None:
            await actions.aclose()

    # -- following --------------------------------------------------------------------

    async def follow(self) -> AsyncIterator[Update]:
        """Status and events for as long as the caller reads, reconnecting as needed."""
        wait = RETRY_FIRST
        while True:
            try:
                async for update in self._follow_once():
                    wait = RETRY_FIRST
                    yield update
                reason = "the service closed the event stream (stopping?)"
            except Exception as exc:  # whatever broke the stream, the console follows on
                if not isinstance(exc, InterlockError | OSError | ValueError):
                    log.warning("console event stream failed", exc_info=True)
                reason = transport_reason(exc)
            log.info("console disconnected from %s: %s", self.bench.name, reason)
            await self._drop_actions()
            yield Disconnected(reason)
            await asyncio.sleep(wait)
            wait = min(RETRY_MAX, wait * 2)

    async def _follow_once(self) -> AsyncIterator[Update]:
        # Silence this long means a service that hangs: the stream says something every period.
        quiet = max(2.0, 4 * self.period)
        async with self._client(quiet) as client:
            # The status first: it says which role the service gave our token ("you").
            yield Status(await client.status())
            async for item in client.events(self.period, quiet=quiet):
                if item.get("event") == "status":
                    item.pop("event")
                    yield Status(item)
                    continue
                yield Event(item)
                if item.get("event") in ("state", "fault", "lease"):
                    # Shown at once, not at the next periodic status.
                    yield Status(await client.status())

    # -- actions ------------------------------------------------------------------------

    async def estop(self) -> dict[str, Any]:
        try:
            return await self._act("estop")
        except ServiceUnavailable:
            # Once more on a fresh connection: the pooled one may be a restarted service's.
            return await self._act("estop")

    async def arm(self, confirm: str | None) -> dict[str, Any]:
        return await self._act("arm", confirm)

    async def disarm(self) -> dict[str, Any]:
        return await self._act("disarm")

    async def reset(self) -> dict[str, Any]:
        return await self._act("reset")

    async def journal_tail(self, limit: int) -> list[JournalLine]:
        if self._journal is None:
            return []
        return await asyncio.to_thread(self._journal.tail, limit)

    async def close(self) -> None:
        await self._drop_actions()
        if self._journal is not None:
            # In a thread: it waits for a tail still being read (at most its busy timeout).
            await asyncio.to_thread(self._journal.close)


class JournalTail:
    """The newest entries of the journal file, read-only, leaving out the chatty kinds."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn = None
        # Reads run in worker threads and close on the event loop: closing a
        # connection another thread is reading through crashes the interpreter.
        self._lock = threading.Lock()

    def tail(self, limit: int) -> list[JournalLine]:
        """Oldest first; empty while there is no journal yet."""
        with self._lock:
            return self._tail(limit)

    def _tail(self, limit: int) -> list[JournalLine]:
        if self._conn is None:
            if not self.path.exists():
                return []
            # Short busy timeout: a tail is redrawn at the next refresh anyway.
            self._conn = connect(self.path, create=False, busy_timeout=0.5)
        marks = ", ".join("?" for _ in QUIET_KINDS)
        try:
            rows = self._conn.execute(
                f"SELECT {ENTRY_COLUMNS} FROM entries WHERE kind NOT IN ({marks}) "
                "ORDER BY seq DESC LIMIT ?",
                (*QUIET_KINDS, int(limit)),
            ).fetchall()
        except sqlite3.Error as exc:
            self._close()  # opened again at the next read (a pruned or replaced file)
            raise JournalError(f"{self.path}: cannot read the journal: {exc}") from exc
        lines = []
        for row in reversed(rows):
            entry = row_to_entry(row)
            lines.append(
                JournalLine(entry.seq, entry.wall_time, entry.kind, entry.actor, describe(entry))
            )
        return lines

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
