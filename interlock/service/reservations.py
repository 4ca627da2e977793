"""Reservations: who may act on a bench that is a labgrid place (``[service] reservations``).

With ``reservations = "labgrid"`` (and ``coordinator = "HOST:PORT"``; ``place``
defaults to the bench's name), the scripts' and operators' actions (leases,
arming, disarming, resets, setpoints, outputs, relays) are accepted only from
the user who holds the bench's place in labgrid: ``who`` (``X-Interlock-User``)
equal to the place's ``acquired`` or among its ``allowed``, both labgrid's
``host/user``. Reading is open to every role, and anyone may stop the bench.

The decision (:meth:`ReservationGate.decide`) is pure: a dict lookup on what
the coordinator last pushed, no I/O on a request's path. The coordinator is
watched from a thread of its own (:class:`Reservations`, through
:mod:`.placewatch`, imported only when reservations are on):
every change of the place is journaled with its holder, and a lease whose
holder no longer holds the place is lost, as a silent one is (a live or armed
bench trips). While the coordinator cannot be reached, nothing new is
granted and what is live stays under the bench's own lease, limits and
guardian: no network outage may trip or weaken a bench. A coordinator that
restarts drops every acquisition (labgrid issue #947): the place comes back
free and a live bench trips, as for a release.

Both names are self-asserted (labgrid's ``LG_USERNAME``, interlock's
``X-Interlock-User``): reservations keep people off each other's benches by
mistake; the role tokens stay the authentication.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from interlock.errors import AccessDenied, ConfigError, InterlockError, JournalError
from interlock.service.places import CoordinatorUnknown, PlaceInfo, PlaceSource

if TYPE_CHECKING:
    from interlock.service.leases import LeaseManager

log = logging.getLogger(__name__)

#: The rule refusals are journaled under.
RULE = "reservations.labgrid"
#: Operations that need the place: everything a script or an operator changes. The stop,
#: the reads and a lease's own upkeep (heartbeat, watch, release) never do: a lease whose
#: holder lost the place is taken away by the watcher instead.
GATED = frozenset(
    {
        "set_voltage",
        "set_current_limit",
        "set_output",
        "set_relay",
        "acquire_lease",
        "arm",
        "disarm",
        "reset",
    }
)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    holder: str | None = None


class ReservationGate:
    """Whether ``who`` may do ``operation`` on the bench of ``place``, from ``source``."""

    def __init__(self, source: PlaceSource, place: str) -> None:
        self.source = source
        self.place = place

    def decide(self, role: str, who: str, operation: str | None) -> Decision:
        if operation not in GATED or role == "viewer":
            return Decision(True, "not reserved: reading, stopping, or a lease's upkeep")
        try:
            info = self.source.place(self.place)
        except CoordinatorUnknown as error:
            return Decision(False, f"nobody can tell who holds place {self.place}: {error}")
        if info is None:
            return Decision(False, f"there is no place {self.place} on the labgrid coordinator")
        if info.acquired is None:
            return Decision(
                False,
                f"place {self.place} is not acquired in labgrid: "
                f"`labgrid-client -p {self.place} acquire` first",
            )
        if info.held_by(who):
            return Decision(True, f"{who} holds place {self.place}", info.acquired)
        return Decision(
            False,
            f"place {self.place} is held by {info.acquired} in labgrid, not by {who}",
            info.acquired,
        )


class Reservations:
    """The service's side of ``reservations = "labgrid"``: the watcher, the gate, the journal.

    ``source`` replaces the coordinator (tests); by default a
    :class:`~.placewatch.PlaceWatcher` on ``coordinator``.
    """

    def __init__(
        self,
        place: str,
        coordinator: str,
        journal: Any,
        leases: LeaseManager,
        *,
        source: Any = None,
    ) -> None:
        self.place = place
        self.coordinator = coordinator
        self.journal = journal
        self.leases = leases
        self._lock = threading.Lock()
        if source is None:
            source = _watcher(coordinator, place, self._changed, self._connection)
        else:
            source.on_change = self._changed
        self.source = source
        self.gate = ReservationGate(source, place)

    def start(self, wait: float = 2.0) -> Reservations:
        """Watch the coordinator; serve on whether or not it answers within ``wait``."""
        start: Callable[..., Any] = getattr(self.source, "start", lambda **_: None)
        try:
            start(wait=wait)
        except InterlockError as error:
            log.warning("labgrid coordinator %s: %s", self.coordinator, error)
        return self

    def stop(self) -> None:
        stop = getattr(self.source, "stop", None)
        if stop is not None:
            stop()

    # -- what the service asks -----------------------------------------------------------

    def check_lease(self, role: str, who: str, place: str | None) -> None:
        """A lease for ``who`` may be granted (a place lease names this bench's place)."""
        if place is not None and place != self.place:
            raise ReservationRefused(
                f"this bench is place {self.place} in labgrid, not {place}", role=role, holder=None
            )
        decision = self.gate.decide(role, who, "acquire_lease")
        if not decision.allowed:
            raise ReservationRefused(decision.reason, role=role, holder=decision.holder)

    def enforce(self) -> None:
        """The lease held goes if its holder no longer holds the place (after a grant too:
        a release between the check and the grant is acted on here)."""
        try:
            info = self.source.place(self.place)
        except CoordinatorUnknown:
            return  # kept: an outage takes nothing away, and grants nothing
        self._take_back(info, "the place changed while the lease was granted")

    def public(self) -> dict[str, Any]:
        """What the status shows: the place, its holder as last known, the coordinator."""
        try:
            info = self.source.place(self.place)
            holder, reachable = (info.acquired if info else None), True
        except CoordinatorUnknown:
            holder, reachable = None, False
        return {
            "kind": "labgrid",
            "place": self.place,
            "coordinator": self.coordinator,
            "coordinator_reachable": reachable,
            "holder": holder,
        }

    # -- what the coordinator says ---------------------------------------------------------

    def _changed(self, old: PlaceInfo | None, new: PlaceInfo | None) -> None:
        if (new or old) is None or (new or old).name != self.place:  # type: ignore[union-attr]
            return
        if new is None:
            event, holder = "deleted", None
        elif new.acquired is None:
            # A restarted coordinator brings the place back free but its change time
            # untouched; a release touches it.
            restart = old is not None and old.acquired is not None and new.changed == old.changed
            event, holder = ("lost in a coordinator restart" if restart else "released"), None
        else:
            event, holder = "acquired", new.acquired
        self._journal("place", place=self.place, event=event, holder=holder)
        self._take_back(new, f"place {self.place} {event}")

    def _connection(self, up: bool, why: str) -> None:
        self._journal("coordinator", coordinator=self.coordinator, up=up, reason=why[:200])

    def _take_back(self, info: PlaceInfo | None, why: str) -> None:
        with self._lock:
            held = self.leases.holder()
            if held is None or (info is not None and info.held_by(held.who)):
                return
            holder = info.acquired if info is not None else None
            self.leases.take_back(held, f"{why}: now held by {holder}" if holder else why)

    def _journal(self, action: str, **details: Any) -> None:
        with contextlib.suppress(JournalError):
            self.journal.operator("labgrid", action, **details)


class ReservationRefused(AccessDenied):
    """Not the holder of the bench's labgrid place (or nobody can tell); 403, as an
    AccessDenied on the wire."""

    def __init__(self, message: str, *, role: str, holder: str | None) -> None:
        super().__init__(message, role=role, needs="the place")
        self.holder = holder


def _watcher(coordinator: str, place: str, on_change: Callable, on_connection: Callable) -> Any:
    try:
        from interlock.service.placewatch import PlaceWatcher
    except ImportError as error:
        raise ConfigError(
            "bench.toml",
            "service.reservations",
            f'"labgrid" needs the labgrid extra (pip install "interlock[labgrid]"): {error}',
        ) from None
    return PlaceWatcher(
        coordinator, name=f"interlock/{place}", on_change=on_change, on_connection=on_connection
    )
