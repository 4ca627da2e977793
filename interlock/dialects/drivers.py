"""The names of the registered drivers, read from the packages' metadata.

The configuration checks a bench's ``driver`` against these without importing
any driver; :mod:`interlock.drivers.registry` loads them when a bench is built.
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points

# The entry point group drivers register in.
DRIVER_GROUP = "interlock.drivers"


@functools.cache
def registered_drivers() -> frozenset[str]:
    """The names of the registered drivers (nothing imported)."""
    return frozenset(ep.name for ep in entry_points(group=DRIVER_GROUP))
