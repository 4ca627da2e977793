"""labgrid drivers bound to an :class:`~.resource.InterlockBench`.

- :class:`InterlockClientDriver`: a connected :class:`interlock.Client` acting
  for whoever holds the place (``who``: labgrid's own ``host/user``), once the
  service has said it *is* the bench and the place the target names. It
  takes the bench's *place lease* (``[service] reservations = "labgrid"`` on
  the bench host), held there for as long as the caller holds the place, so
  that ``labgrid-client power on`` may exit and the DUT stays powered.
- :class:`InterlockPowerDriver`: labgrid's ``PowerProtocol`` (``on``, ``off``,
  ``cycle``; ``get`` for ``labgrid-client power get``) by arming and switching
  a configured set of nets in the profile's power-on and power-off order,
  through every check of the interlock.

A refusal is an :class:`InterlockRefused`, a labgrid ``UserError`` (so
``labgrid-client`` prints it as one line, exit 1) and an
:class:`~interlock.errors.InterlockError`, with the interlock's own exception
as its ``__cause__`` (``rule``, ``where``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any, ClassVar

import attr
from labgrid.driver.common import Driver
from labgrid.driver.powerdriver import PowerResetMixin
from labgrid.factory import target_factory
from labgrid.protocol import PowerProtocol
from labgrid.remote.client import UserError
from labgrid.step import step

from interlock.errors import InterlockError
from interlock.labgrid.coordinator import labgrid_identity

log = logging.getLogger(__name__)

#: Where a user keeps each bench's role tokens, ``{bench}`` its name (``<role>.token``).
DEFAULT_TOKENS = "~/.config/interlock/benches/{bench}"


class InterlockRefused(UserError, InterlockError):
    """The interlock said no, or could not be asked; ``__cause__`` is its own exception."""


def _refused(error: BaseException, doing: str) -> InterlockRefused:
    refused = InterlockRefused(
        f"refused by the interlock: {doing}: {type(error).__name__}: {error}"
    )
    refused.__cause__ = error
    return refused


def token_directory(template: str, bench: str) -> Path:
    return Path(template.replace("{bench}", bench)).expanduser()


@target_factory.reg_driver
@attr.s(eq=False)
class InterlockClientDriver(Driver):
    """A client of the bench's interlock service, for the holder of the place.

    Args:
        role (str): viewer, script or operator (whose token)
        ca (str): PEM file of the CA that signed the service's certificate
        tokens (str): directory of ``<role>.token``, ``{bench}`` replaced by the bench's
            name (default ``~/.config/interlock/benches/{bench}``)
        who (str): who the journal names (default: labgrid's "host/user" of this process)
    """

    bindings: ClassVar[dict[str, str]] = {"bench": "InterlockBench"}

    role = attr.ib(
        default="operator", validator=attr.validators.in_(("viewer", "script", "operator"))
    )
    ca = attr.ib(default=None, validator=attr.validators.optional(attr.validators.instance_of(str)))
    tokens = attr.ib(default=DEFAULT_TOKENS, validator=attr.validators.instance_of(str))
    who = attr.ib(
        default=None, validator=attr.validators.optional(attr.validators.instance_of(str))
    )

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.client: Any = None
        self.status_at_start: dict[str, Any] = {}

    def on_activate(self) -> None:
        import interlock
        from interlock.service.tokens import read_token

        env = self.target.env
        ca = env.config.resolve_path(self.ca) if env and self.ca else self.ca
        who = self.who or labgrid_identity()
        doing = f"bench {self.bench.bench} on {self.bench.address}"
        try:
            token = read_token(token_directory(self.tokens, self.bench.bench), self.role)
            client = interlock.connect(
                None, role=self.role, token=token, who=who, address=self.bench.address, ca=ca
            )
        except InterlockError as error:
            raise _refused(error, doing) from error
        try:
            status = client.status()
            self._check_target(status)
            if self.role != "viewer":
                self._take_place_lease(client, status)
        except InterlockError as error:
            client.close()
            raise _refused(error, doing) from error
        except BaseException:
            client.close()
            raise
        self.status_at_start = status
        self.client = client

    def _check_target(self, status: dict[str, Any]) -> None:
        """Right target first: the service is the bench, and the place, the target names."""
        said = (status["bench"], status["environment"])
        if said != (self.bench.bench, self.bench.environment):
            raise InterlockRefused(
                f"{self.bench.address} is bench {said[0]} [{said[1]}], but the place names "
                f"{self.bench.bench} [{self.bench.environment}]: nothing sent"
            )
        place = _remote_place(self.target)
        reservations = status.get("reservations") or {}
        if place is not None and reservations and reservations.get("place") != place:
            raise InterlockRefused(
                f"bench {said[0]} is labgrid place {reservations.get('place')}, "
                f"not {place}: nothing sent"
            )

    def _take_place_lease(self, client: Any, status: dict[str, Any]) -> None:
        reservations = status.get("reservations")
        if not reservations:
            raise InterlockRefused(
                f"bench {status['bench']} takes no place leases ([service] reservations is not "
                '"labgrid" on its host): a power on would end with this process'
            )
        client.place_lease(reservations["place"])

    def on_deactivate(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.close()  # the place lease stays with the place's holder

    @Driver.check_active
    def status(self) -> dict[str, Any]:
        return self.client.status()


def _remote_place(target: Any) -> str | None:
    """The name of the labgrid place the target was built from, if any."""
    from labgrid.resource.remote import RemotePlace

    for resource in getattr(target, "resources", []):
        if isinstance(resource, RemotePlace):
            return resource.name
    return None


def _nets_config(instance: object, attribute: object, value: Any) -> None:
    from interlock.errors import InvalidArgument

    if not isinstance(value, dict) or not value:
        raise InvalidArgument(
            "InterlockPowerDriver.nets: a table of nets, e.g. "
            "{VLOGIC: {voltage: 5 V, current_limit: 250 mA}}"
        )
    for net, spec in value.items():
        if not isinstance(spec, dict) or not {"voltage", "current_limit"} <= spec.keys():
            raise InvalidArgument(
                f"InterlockPowerDriver.nets.{net}: needs voltage and current_limit"
            )
        unknown = spec.keys() - {"voltage", "current_limit", "start"}
        if unknown:
            raise InvalidArgument(
                f"InterlockPowerDriver.nets.{net}: unknown keys {sorted(unknown)}"
            )


@target_factory.reg_driver
@attr.s(eq=False)
class InterlockPowerDriver(Driver, PowerResetMixin, PowerProtocol):
    """PowerProtocol through the interlock.

    Args:
        nets (dict): per net ``voltage``, ``current_limit`` and optionally ``start`` (the
            level the output goes on at, ramped to ``voltage`` at the profile's slew: for
            nets whose largest step forbids switching on at full voltage)
        delay (float): seconds between off and on in ``cycle`` (labgrid-client -t sets it)
        confirm (str): the bench's name, typed: what arming a flight bench needs
    """

    bindings: ClassVar[dict[str, str]] = {"interlock": "InterlockClientDriver"}

    nets = attr.ib(validator=_nets_config)
    delay = attr.ib(default=1.0, converter=float)
    confirm = attr.ib(
        default=None, validator=attr.validators.optional(attr.validators.instance_of(str))
    )

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._setpoints: dict[str, tuple[float, float, float | None]] = {}
        self._on_order: tuple[str, ...] = ()
        self._off_order: tuple[str, ...] = ()

    def on_activate(self) -> None:
        from interlock.units import CURRENT, VOLTAGE, parse_quantity

        # Units are explicit: "5 V", "250 mA"; a bare number is refused here, as everywhere.
        setpoints = {}
        for net, spec in self.nets.items():
            try:
                setpoints[net] = (
                    parse_quantity(spec["voltage"], VOLTAGE),
                    parse_quantity(spec["current_limit"], CURRENT),
                    parse_quantity(spec["start"], VOLTAGE) if "start" in spec else None,
                )
            except InterlockError as error:
                raise _refused(error, f"InterlockPowerDriver.nets.{net}") from error
        # The order is the bench's pinned profile's, as its service says it.
        power = self.interlock.status_at_start["power"]
        unknown = sorted(set(setpoints) - set(power["on"]))
        if unknown:
            raise InterlockRefused(f"nets {unknown} are not in the profile's power-on order")
        self._setpoints = setpoints
        self._on_order = tuple(n for n in power["on"] if n in setpoints)
        self._off_order = tuple(n for n in power["off"] if n in setpoints)

    @property
    def _client(self) -> Any:
        return self.interlock.client

    @Driver.check_active
    @step()
    def on(self) -> None:
        client = self._client
        turned_on: list[str] = []
        try:
            status = client.status()
            if status["state"] == "fault":
                raise InterlockRefused(
                    f"bench {client.name} has a latched fault: {status['fault']}"
                )
            if status["state"] == "safe":
                client.arm(confirm=self.confirm)
                status = client.status()
            for net in self._on_order:
                if status["nets"][net]["output"]:
                    continue
                volts, amps, start = self._setpoints[net]
                client.set_current_limit(net, amps)
                client.set_voltage(net, start if start is not None else volts)
                client.output_on(net)  # safe-to-mate, readback, settle, window
                turned_on.append(net)
                if start is not None:
                    client.set_voltage(net, volts)  # live: ramped at the profile's slew
        except InterlockError as error:
            self._undo(turned_on)
            if isinstance(error, InterlockRefused):
                raise
            raise _refused(error, f"power on of bench {client.name}") from error
        except BaseException:
            self._undo(turned_on)
            raise

    def _undo(self, turned_on: list[str]) -> None:
        """What this call turned on goes off again, in the power-off order (best effort)."""
        for net in self._off_order:
            if net in turned_on:
                # A fault has already driven it safe, or the service does so on a lost lease.
                with contextlib.suppress(InterlockError):
                    self._client.output_off(net)

    @Driver.check_active
    @step()
    def off(self) -> None:
        client = self._client
        try:
            status = client.status()
            if status["state"] not in ("armed", "live"):
                return
            for net in self._off_order:
                if status["nets"][net]["output"]:
                    client.output_off(net)
            status = client.status()
            if not any(net["output"] for net in status["nets"].values()):
                if self.interlock.role == "operator":
                    client.disarm()  # opens every relay, verifies the safe state
                else:
                    for relay, closed in status["relays"].items():
                        if closed:
                            client.set_relay(relay, False)
        except InterlockError as error:
            raise _refused(error, f"power off of bench {client.name}") from error

    @Driver.check_active
    @step()
    def cycle(self) -> None:
        self.off()
        time.sleep(self.delay)
        self.on()

    @Driver.check_active
    def get(self) -> bool:
        """On when any of the driver's nets is live (labgrid-client power get)."""
        status = self._client.status()
        return any(status["nets"][net]["output"] for net in self._on_order)
