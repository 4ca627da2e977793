"""What a script may do to the bench, with the service's own checks around the controller's
(and the emergency stop, which anyone may).

One implementation for both ways in: the HTTP routes (:mod:`.app`) and the
command channel (:mod:`.channel`) call these, so a check cannot be present
on one and missing on the other. The service adds to the controller's
checks only what it alone knows:

- the lease: while a client holds it, changes from anyone else are refused
  (turning an output off never is), and turning an output on needs it;
- NaN and infinities are refused here, journaled, under the engine's rule
  name: the journal cannot hold them as the controller's request would.

Every refusal is journaled (request, then verdict) before it is raised.
"""

from __future__ import annotations

from typing import Any

from interlock.controller import Controller
from interlock.limits import check_finite
from interlock.service.access import Identity
from interlock.service.leases import LeaseError


class ScriptActions:
    """The script role's actions on one service's bench."""

    def __init__(self, service: Any) -> None:
        self.service = service

    def _controller(self) -> Controller:  # InterlockError while the service is down
        return self.service.require_controller()

    # -- the actions ------------------------------------------------------------------

    def set_voltage(
        self, who: Identity, lease_id: str | None, net: str, volts: float, measure: bool = False
    ) -> dict[str, float] | None:
        """The setpoint; with ``measure``, then the net's measurement, in one request."""
        self._finite(who, net, "voltage", volts)
        self._holder_only(who, lease_id, "set", net=net, quantity="voltage", value=volts)
        controller = self._controller()
        controller.set_voltage(net, volts, who=who.who, client=who.client)
        return controller.measure(net) if measure else None

    def set_current_limit(self, who: Identity, lease_id: str | None, net: str, amps: float) -> None:
        self._finite(who, net, "current_limit", amps)
        self._holder_only(who, lease_id, "set", net=net, quantity="current_limit", value=amps)
        self._controller().set_current_limit(net, amps, who=who.who, client=who.client)

    def set_relay(self, who: Identity, lease_id: str | None, relay: str, closed: bool) -> None:
        self._holder_only(who, lease_id, "set", relay=relay, quantity="relay", value=closed)
        self._controller().set_relay(relay, closed, who=who.who, client=who.client)

    def set_output(self, who: Identity, lease_id: str | None, net: str, on: bool) -> None:
        """Off: anyone with the script role, always. On: the lease holder only."""
        controller = self._controller()
        if not on:
            controller.output_off(net, who=who.who, client=who.client)
            return
        leases = self.service.leases
        try:
            leases.check(lease_id)
        except LeaseError as error:
            self._refuse_for_lease(who, "output", error, net=net, quantity="output", value=True)
        controller.output_on(net, who=who.who, client=who.client)
        try:
            leases.check(lease_id)
        except LeaseError:
            # Lost while the net came up: nobody would be watching it.
            controller.trip(
                "lease", f"lease of {who.who} ({who.client}) lost while {net} came up", who=who.who
            )
            raise

    def note(self, who: Identity, lease_id: str | None, text: str, step: int | None) -> None:
        """A marker in the run's journal (a step begun, say), for the post-mortem.

        From the lease holder only while one is held: one run's record is its own.
        """
        details: dict[str, Any] = {"text": text} if step is None else {"step": step, "text": text}
        self._holder_only(who, lease_id, "note", **details)
        self.service.journal.request(who.who, who.client, "note", durable=False, **details)

    def estop(self, who: Identity) -> dict[str, Any]:
        """Anyone may stop: the emergency stop, then the bench's status after it."""
        self._controller().emergency_stop(who.who, client=who.client)
        return self.service.status()

    def heartbeat(self, lease_id: str) -> dict[str, float]:
        """Keep the lease ``lease_id`` (LeaseError if it is not the one held)."""
        return {"expires_in": self.service.leases.heartbeat(lease_id).timeout}

    def measure(self, net: str) -> dict[str, float]:
        return self._controller().measure(net)

    def status(self, who: Identity) -> dict[str, Any]:
        """The bench's status, and who is asking (as the service knows them)."""
        return {**self.service.status(), "you": who.public()}

    # -- the service's own checks ---------------------------------------------------------

    def _refuse_for_lease(
        self, who: Identity, action: str, error: LeaseError, **details: Any
    ) -> None:
        journal = self.service.journal
        entry = journal.request(who.who, who.client, action, **details)
        journal.verdict(False, request=entry.seq, rule="lease", where="service", reason=str(error))
        raise error

    def _holder_only(
        self, who: Identity, lease_id: str | None, action: str, **details: Any
    ) -> None:
        try:
            self.service.leases.require_not_leased_by_other(lease_id)
        except LeaseError as error:
            self._refuse_for_lease(who, action, error, **details)

    def _finite(self, who: Identity, net: str, quantity: str, value: float) -> None:
        """Refuse NaN and infinities here, by the engine's rule, but journaled.

        Controller.set_voltage() journals the request with the raw value first, and the
        journal cannot hold a non-finite number: the request would fail as a journal
        error, unrecorded, instead of being refused by its rule.
        """
        verdict = check_finite(net, quantity, value)
        if verdict.allowed:
            return
        journal = self.service.journal
        entry = journal.request(
            who.who, who.client, "set", net=net, quantity=quantity, value=repr(value)
        )
        journal.verdict(
            False, request=entry.seq, rule=verdict.rule, where=verdict.where, reason=verdict.reason
        )
        verdict.raise_if_refused()
