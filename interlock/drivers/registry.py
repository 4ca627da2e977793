"""The driver registry: drivers found through the ``interlock.drivers`` entry points.

A driver is a class that says what it drives (``kind``: supply, meter or
switch), which protocol it implements (``implements``) and how it is built
from a bench's stanza (``build``). The built-in drivers are registered the
same way as any other package's (pyproject.toml), so a new instrument is a
package that declares an entry point, not an edit of the controller::

    [project.entry-points."interlock.drivers"]
    my-supply = "my_package.driver:MySupply"
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Protocol

from interlock.dialects import DRIVER_GROUP, Dialect, registered_drivers
from interlock.errors import ConfigError
from interlock.journal import Journal
from interlock.protocols import PROTOCOLS

GROUP = DRIVER_GROUP


@dataclass(frozen=True)
class DriverSpec:
    """What a driver is built from: the bench's stanza, resolved."""

    name: str  # the instrument's name in bench.toml
    dialect: Dialect
    resource: str  # VISA resource string or serial port
    journal: Journal
    timeout: float  # s, per exchange
    model: str = ""  # the model bench.toml expects (a switch unit's relay count is its model's)
    terminals: str = ""  # a meter's inputs the bench wires: "front" or "rear" ("": not asked)


class Driver(Protocol):
    kind: str
    implements: type

    @classmethod
    def build(cls, spec: DriverSpec) -> Any: ...


def driver_names() -> frozenset[str]:
    """The registered drivers' names (read from the packages' metadata; nothing imported)."""
    return registered_drivers()


@functools.cache
def driver_class(name: str) -> type:
    """The driver registered as ``name``, checked to say what it drives and implements."""
    found = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not found:
        known = ", ".join(sorted(driver_names()))
        raise ConfigError(GROUP, name, f'no driver "{name}" registered (known: {known})')
    cls = found[0].load()
    kind = getattr(cls, "kind", None)
    if kind not in PROTOCOLS or getattr(cls, "implements", None) is None:
        raise ConfigError(GROUP, name, f'driver "{name}" ({cls!r}) does not say what it drives')
    if PROTOCOLS[kind] not in cls.implements.__mro__:
        raise ConfigError(
            GROUP, name, f'driver "{name}" implements {cls.implements!r}, not a {kind} protocol'
        )
    return cls


def build(driver: str, spec: DriverSpec, *, file: str, key: str) -> Any:
    """The driver ``driver`` built for one instrument; a mismatch is a ConfigError at ``key``."""
    try:
        cls = driver_class(driver)
    except ConfigError as exc:
        raise ConfigError(file, key, exc.problem) from None
    if cls.kind != spec.dialect.kind:
        raise ConfigError(
            file,
            key,
            f'driver "{driver}" drives a {cls.kind}; the {spec.dialect.title} is a '
            f"{spec.dialect.kind}",
        )
    instrument = cls.build(spec)
    if not isinstance(instrument, cls.implements):
        raise ConfigError(file, key, f'driver "{driver}" does not implement {cls.implements}')
    return instrument
