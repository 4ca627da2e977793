"""The running parts of a service: simulated bench (if any), journal, controller, leases.

:class:`Service` is opened once (by the app's lifespan) and closed once.
For a ``simulation`` bench it uses the bench's simulator, a process of its
own (:mod:`interlock.sim.process`), starting one if none answers, and hands
its resources to the controller: nothing else has to be started first. The
simulator outlives the service, as real instruments would. ``resources``
lets a caller point the controller at instruments of its own choosing (the
tests use it to put a non-simulation bench file in front of simulated
instruments). With ``[service] reservations = "labgrid"`` it also watches the
bench's labgrid place (:mod:`.reservations`; ``places`` stands in for the
coordinator in tests).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from interlock.config import Configuration, load_configuration
from interlock.controller import Controller
from interlock.errors import InterlockError, StateError
from interlock.guardian import Guardian
from interlock.journal import Journal
from interlock.journal.files import JournalAccess
from interlock.journal.startup import ChainGuard, check_at_start
from interlock.service.access import Identity
from interlock.service.events import EventHub
from interlock.service.leases import Lease, LeaseManager
from interlock.service.reservations import Reservations
from interlock.service.tokens import TokenStore

log = logging.getLogger(__name__)


class Service:
    def __init__(
        self,
        bench: str | Path | Configuration,
        *,
        resources: dict[str, str] | None = None,
        guardian: bool = False,
        places: Any = None,
    ) -> None:
        self.configuration = (
            bench if isinstance(bench, Configuration) else load_configuration(bench)
        )
        self.bench = self.configuration.bench
        self.settings = self.bench.service
        self.tokens = TokenStore(self.settings.tokens)
        self.events = EventHub()
        self.stopping = threading.Event()
        self._resources = resources
        self.simulator: Any = None
        self.journal: Journal | None = None
        self.controller: Controller | None = None
        self.leases: LeaseManager | None = None
        self.reservations: Reservations | None = None
        self._places = places
        self.connect_error: str | None = None
        self._want_guardian = guardian
        self.guardian: Guardian | None = None

    # -- life cycle ------------------------------------------------------------

    def open(self) -> None:
        """Tokens, journal, instruments (simulated or not), controller, lease watchdog."""
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        # The journal first: its directory is made owner-only (or the journal group's).
        self.journal = Journal(
            self.settings.journal,
            bench=self.bench.name,
            access=JournalAccess(self.settings.journal_group),
        )
        chain = ChainGuard(self.journal, check_at_start(self.journal))
        self.tokens.ensure()
        resources = self._resources
        if resources is None and self.bench.environment == "simulation":
            from interlock.sim.process import ensure_simulator

            self.simulator = ensure_simulator(self.bench)
            resources = self.simulator.resources
        if self._want_guardian:
            # Spawned now, armed before the service serves: it starts while we connect.
            log_file = self.settings.socket.parent / "guardian.log"
            self.guardian = Guardian(self.bench.path, resources, log_file).spawn()
        self.controller = Controller(self.configuration, self.journal, resources=resources)
        self.controller.add_listener(self._on_controller_event)
        try:
            self.controller.connect()
        except InterlockError as error:
            # Serve on: an operator must be able to see why, and anyone to stop the bench.
            self.connect_error = f"{type(error).__name__}: {error}"
            log.error("controller did not connect: %s", self.connect_error)
        # A broken chain is a latched fault; the operator's reset acknowledges it.
        self.controller.before_reset.append(chain.before_reset)
        chain.latch(self.controller.trip)
        if self.guardian is not None:
            self.guardian.wait_ready()
            self.guardian.watch(self._guardian_died)
        self.leases = LeaseManager(
            self.controller,
            self.settings.lease_timeout,
            publish=self.events.publish,
            stopping=self.stopping,
        ).start()
        if self.settings.reservations == "labgrid":
            self.reservations = Reservations(
                self.settings.place or self.bench.name,
                self.settings.coordinator or "",
                self.journal,
                self.leases,
                source=self._places,
            ).start()
        log.info(
            "service for bench %s [%s] up, controller %s",
            self.bench.name,
            self.bench.environment,
            self.controller.state,
        )

    def close(self) -> None:
        """Stop watching leases, drive the bench safe, close everything; never raises."""
        self.stopping.set()
        if self.reservations is not None:
            self.reservations.stop()
        if self.leases is not None:
            self.leases.stop()
        if self.controller is not None:
            try:
                self.controller.close()
            except InterlockError:
                log.exception("closing the controller")
        if self.guardian is not None:
            # Only once the bench is safe: until then a death must still find it armed.
            self.guardian.stand_down()
        if self.journal is not None:
            self.journal.close()
        # The simulator is left running: it is the bench's instruments, not the service's.
        self.leases = self.controller = self.journal = self.simulator = self.guardian = None
        self.reservations = None

    def _guardian_died(self) -> None:
        controller = self.controller
        if controller is not None and not self.stopping.is_set():
            log.error("the guardian process ended: a death of the service would leave supplies on")
            controller.trip(
                "guardian",
                "the guardian process ended: nothing would turn the supplies off "
                "if the service died; restart the service",
            )

    def _on_controller_event(self, event: str, details: dict[str, Any]) -> None:
        self.events.publish(event, **details)

    # -- what the API shows -------------------------------------------------------

    def status(self) -> dict[str, Any]:
        controller = self.require_controller()
        status = controller.status()
        holder = self.leases.holder() if self.leases else None
        status["lease"] = holder.public(self.leases.clock()) if holder else None
        status["service"] = {
            "pid": os.getpid(),
            "lease_timeout": self.settings.lease_timeout,
            "connect_error": self.connect_error,
            "simulated": self.simulator is not None,
            "guardian": self.guardian.pid if self.guardian is not None else None,
        }
        # What a client reaching the bench by address alone needs to switch it in order.
        profile = self.configuration.profile
        status["power"] = {"on": list(profile.power_on), "off": list(profile.power_off)}
        reservations = self.reservations
        status["reservations"] = reservations.public() if reservations else None
        return status

    def acquire_lease(self, who: Identity, place: str | None) -> Lease:
        """The bench's lease for ``who``; a place lease only with labgrid reservations."""
        leases = self.leases
        if leases is None:
            raise InterlockError("the service is not running")
        reservations = self.reservations
        if place is not None and reservations is None:
            raise StateError(
                f'place leases need [service] reservations = "labgrid" '
                f"({self.bench.shown_path}): bench {self.bench.name} is no labgrid place"
            )
        if reservations is not None:
            reservations.check_lease(who.role, who.who, place)
        lease = leases.acquire(who.who, who.client, who.role, place=place)
        if reservations is not None:
            reservations.enforce()  # a release between the check and the grant
            if leases.holder() is not lease:
                raise StateError(f"place {reservations.place} changed while the lease was granted")
        return lease

    def require_controller(self) -> Controller:
        if self.controller is None:
            raise InterlockError("the service is not running")
        return self.controller
