"""One multimeter driver for every meter dialect (:mod:`interlock.dialects`)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from interlock.drivers.device import DialectDevice
from interlock.errors import IdentityMismatch
from interlock.protocols import Identified, Meter

# What a SCPI meter answers for an overload (an open circuit on a resistance range).
SCPI_OVERLOAD = 9.9e37


class DialectMeter(DialectDevice):
    """A meter speaking its dialect; implements :class:`~interlock.protocols.Meter`."""

    kind: ClassVar[str] = "meter"
    implements: ClassVar[type] = Meter

    def identify(self) -> Identified:
        """Who it is; first, where the family has several command sets (``command_set?``,
        its true words the set this dialect speaks), that the one in force is that set:
        in another, every reply means something else."""
        check = self.dialect.queries.get("command_set?")
        if check is not None:
            (word,) = self.fields(check, self.ask(check.line()), 1)
            if not self.flag(check, word):
                raise IdentityMismatch(
                    self.name, f"the {'/'.join(check.true)} command set", word.strip()
                )
        return super().identify()

    def _reading(self, key: str, **context: Any) -> float:
        query = self.dialect.queries[key]
        (text,) = self.fields(query, self.ask(query.line(), query.width, **context), 1)
        return self.number(query, text)

    def measure_voltage(self, **context: Any) -> float:
        return self._reading("voltage?", **context)

    def measure_resistance(self, **context: Any) -> float:
        """Resistance in ohms; an open circuit (overload) is ``inf``."""
        value = self._reading("resistance?", **context)
        return math.inf if abs(value) >= SCPI_OVERLOAD / 10 else value
