"""A labgrid place as the service knows it, and where it learns it from.

The types shared by the reservations (:mod:`.reservations`) and the
coordinator's side of them (:mod:`interlock.labgrid.coordinator`), which
fills them from the coordinator's messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from interlock.errors import InterlockError


@dataclass(frozen=True)
class PlaceInfo:
    """What the service needs to know of a labgrid place."""

    name: str
    acquired: str | None  # "host/user", or None while the place is free
    allowed: frozenset[str] = frozenset()
    changed: float = 0.0  # the coordinator's time of the place's last change

    def held_by(self, who: str) -> bool:
        return self.acquired is not None and (who == self.acquired or who in self.allowed)


class PlaceSource(Protocol):
    def place(self, name: str) -> PlaceInfo | None:
        """The place as last known (None: no such place); CoordinatorUnknown if unknowable."""
        ...


class CoordinatorUnknown(InterlockError):
    """Who holds the place cannot be told: the coordinator is not (yet) reachable."""
