"""Leases: the dead man's switch of the client that drives the bench.

One client at a time holds the bench's lease; only the holder may turn an
output on, and while it holds the lease nobody else may change a setpoint
or a relay (anyone may still turn things off or stop the bench). The holder
proves it is alive by heartbeating; it may also keep a *watch* stream open,
so that a dropped connection is noticed at once instead of after the
timeout.

A lease is *lost* when its heartbeats stop for ``lease_timeout`` or its
watch stream drops without a release. A lost lease while the bench is armed
or live trips the controller (cause ``lease``: outputs off, relays open,
fault latched until an operator resets), journaled with the holder's
identity: a client that vanished mid-test is exactly the doubt that must
end in the safe state. Releasing a lease while a net is still live trips
too: nobody would be watching it any more.

A *place lease* (``place`` set; only with ``[service] reservations =
"labgrid"``, see :mod:`.reservations`) is held for whoever holds the bench's
labgrid place, for as long as they hold it: labgrid's power model, where
``labgrid-client power on`` returns and the DUT stays powered. It needs no
heartbeat and no watch stream; the coordinator saying that the place was
released, or is held by someone else, takes it back (:meth:`LeaseManager.take_back`),
and a live or armed bench trips as for any lost lease. The same holder asking
again gets the same lease (``power off`` is another process than ``power on``).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from interlock.errors import JournalError, StateError

log = logging.getLogger(__name__)

#: Controller states in which a lost lease trips the bench.
TRIP_STATES = frozenset({"armed", "live"})


@dataclass
class Lease:
    id: str
    who: str
    client: str
    role: str
    timeout: float
    granted_at: float
    last_seen: float
    watchers: int = 0
    dropped: bool = field(default=False)
    place: str | None = None  # a place lease: held while its holder holds this labgrid place

    def expires_in(self, now: float) -> float:
        return self.timeout - (now - self.last_seen)

    def public(self, now: float) -> dict[str, object]:
        """What anyone may see of the lease (never its id: the id is the holder's proof)."""
        return {
            "who": self.who,
            "client": self.client,
            "role": self.role,
            "timeout": self.timeout,
            "held_for": round(now - self.granted_at, 3),
            "expires_in": round(max(0.0, self.expires_in(now)), 3),
            "watched": self.watchers > 0,
            "place": self.place,
        }


class LeaseError(StateError):
    """A lease operation that is not allowed (held by another, unknown or expired id)."""


class LeaseManager:
    """Grants the one lease, checks heartbeats in its own thread, trips on loss."""

    def __init__(
        self,
        controller,  # interlock.controller.Controller (not imported: keeps this module light)
        timeout: float,
        *,
        publish: Callable[..., None] = lambda event, **details: None,
        clock: Callable[[], float] = time.monotonic,
        stopping: threading.Event | None = None,
    ) -> None:
        self.controller = controller
        self.journal = controller.journal
        self.timeout = timeout
        self.publish = publish
        self.clock = clock
        self._lock = threading.Lock()
        self._lease: Lease | None = None
        self._stop = threading.Event()
        # Set when the service shuts down: its streams end then, and that is no lost client.
        self.stopping = stopping or threading.Event()
        self._thread: threading.Thread | None = None
        # Fine enough that a lease is declared lost well inside its timeout's margin.
        self.check_period = min(0.05, timeout / 20)

    # -- life cycle ------------------------------------------------------------

    def start(self) -> LeaseManager:
        self._thread = threading.Thread(target=self._run, name="interlock-leases", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # -- the holder's side -----------------------------------------------------------

    def acquire(self, who: str, client: str, role: str, *, place: str | None = None) -> Lease:
        """The lease for ``who``; a place lease (``place``) only once the place is checked."""
        with self._lock:
            now = self.clock()
            held = self._lease
            if held is not None and place is not None and (held.place, held.who) == (place, who):
                return held  # the same holder again: one place lease, whichever process asks
            if held is not None:
                raise LeaseError(
                    f"the bench is leased by {held.who} ({held.client}) for "
                    f"{now - held.granted_at:.1f} s: wait for its release"
                )
            lease = Lease(
                id=secrets.token_urlsafe(18),
                who=who,
                client=client,
                role=role,
                timeout=self.timeout,
                granted_at=now,
                last_seen=now,
                place=place,
            )
            # Journal before the lease exists: a grant nobody recorded must not happen.
            extra = {"place": place} if place is not None else {}
            self.journal.request(
                who, client, "lease", event="granted", timeout=self.timeout, **extra
            )
            self._lease = lease
        self.publish("lease", change="granted", who=who, client=client, timeout=self.timeout)
        return lease

    def heartbeat(self, lease_id: str) -> Lease:
        with self._lock:
            lease = self._current(lease_id)
            lease.last_seen = self.clock()
            return lease

    def release(self, lease_id: str) -> None:
        with self._lock:
            lease = self._current(lease_id)
            self._lease = None
        live = sorted(self.controller.commanded.live_nets)
        self.journal.request(lease.who, lease.client, "lease", event="released", live=live)
        self.publish("lease", change="released", who=lease.who, client=lease.client)
        if live:
            self._trip(lease, f"lease released with {', '.join(live)} still live")

    def check(self, lease_id: str | None) -> Lease:
        """The lease ``lease_id`` names, if it is the one held now; LeaseError otherwise."""
        with self._lock:
            if not lease_id:
                raise LeaseError("turning an output on needs the bench's lease: acquire one first")
            return self._current(lease_id)

    def holder(self) -> Lease | None:
        with self._lock:
            return self._lease

    def require_not_leased_by_other(self, lease_id: str | None) -> None:
        """Refuse a change from anyone but the holder while the bench is leased."""
        with self._lock:
            held = self._lease
            if held is not None and not _same(held.id, lease_id or ""):
                raise LeaseError(
                    f"the bench is leased by {held.who} ({held.client}): only the lease holder "
                    "may change it (anyone may turn outputs off or stop it)"
                )

    def _current(self, lease_id: str) -> Lease:
        held = self._lease
        if held is None or not _same(held.id, lease_id):
            raise LeaseError("no such lease (expired, lost or released)")
        return held

    # -- watch streams ---------------------------------------------------------------

    def watch_opened(self, lease_id: str) -> Lease:
        with self._lock:
            lease = self._current(lease_id)
            lease.watchers += 1
            return lease

    def watch_closed(self, lease: Lease) -> None:
        """A watch stream ended: if its lease is still held, the client is gone."""
        with self._lock:
            lease.watchers -= 1
            # A place lease is kept by the place, not by a connection.
            if self._lease is lease and lease.watchers == 0 and lease.place is None:
                lease.dropped = True

    # -- the watchdog --------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.check_period):
            try:
                self.check_expiry()
            except Exception:  # the watchdog must outlive any one failure
                log.exception("lease check failed")

    def check_expiry(self) -> None:
        with self._lock:
            lease = self._lease
            if lease is None or lease.place is not None or self.stopping.is_set():
                return
            silent = self.clock() - lease.last_seen
            if lease.dropped:
                why = "its connection dropped"
            elif silent > lease.timeout:
                why = f"no heartbeat for {silent:.2f} s (lease timeout {lease.timeout:g} s)"
            else:
                return
            self._lease = None
        self.lose(lease, why)

    def take_back(self, lease: Lease, why: str) -> None:
        """``lease`` is lost, if it is still the one held: its holder no longer holds the
        place (see :mod:`.reservations`)."""
        with self._lock:
            if self._lease is not lease:
                return
            self._lease = None
        self.lose(lease, why)

    def lose(self, lease: Lease, why: str) -> None:
        log.warning("lease of %s (%s) lost: %s", lease.who, lease.client, why)
        self.publish("lease", change="lost", who=lease.who, client=lease.client, reason=why)
        if self.controller.state in TRIP_STATES:
            self._trip(lease, f"lease of {lease.who} ({lease.client}) lost: {why}")
        else:
            with contextlib.suppress(JournalError):
                self.journal.operator(
                    lease.who,
                    "lease-lost",
                    client=lease.client,
                    reason=why,
                    state=self.controller.state,
                )

    def _trip(self, lease: Lease, detail: str) -> None:
        self.controller.trip("lease", detail, who=lease.who)


def _same(known: str, given: str) -> bool:
    """Constant-time comparison of a lease id with whatever a client sent (any characters)."""
    return secrets.compare_digest(known.encode(), given.encode("utf-8", "surrogatepass"))
