"""One multimeter driver for every meter dialect (:mod:`interlock.dialects`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

from interlock.drivers.device import DialectDevice, make_link
from interlock.errors import IdentityMismatch, SetupMismatch
from interlock.protocols import Identified, Meter

if TYPE_CHECKING:
    from interlock.dialects import Dialect
    from interlock.drivers.device import Link
    from interlock.drivers.registry import DriverSpec
    from interlock.journal import Journal

# What a SCPI meter answers for an overload (an open circuit on a resistance range).
SCPI_OVERLOAD = 9.9e37
# What ROUT:TERM? answers for each side of a front/rear switch (FRON, REAR).
TERMINAL_WORDS = {"front": "FRON", "rear": "REAR"}


class DialectMeter(DialectDevice):
    """A meter speaking its dialect; implements :class:`~interlock.protocols.Meter`."""

    kind: ClassVar[str] = "meter"
    implements: ClassVar[type] = Meter

    def __init__(
        self, name: str, dialect: Dialect, link: Link, journal: Journal, terminals: str = ""
    ) -> None:
        super().__init__(name, dialect, link, journal)
        self._terminals = terminals  # the inputs bench.toml wires ("": not asked)

    @classmethod
    def build(cls, spec: DriverSpec) -> DialectMeter:
        return cls(spec.name, spec.dialect, make_link(spec), spec.journal, spec.terminals)

    def identify(self) -> Identified:
        """Who it is; first, where the family has several command sets (``command_set?``,
        its true words the set this dialect speaks), that the one in force is that set:
        in another, every reply means something else."""
        check = self.dialect.queries.get("command_set?")
        if check is not None:
            (word,) = self.fields(check, self.ask_query(check), 1)
            if not self.flag(check, word):
                raise IdentityMismatch(
                    self.name, f"the {'/'.join(check.true)} command set", word.strip()
                )
        return super().identify()

    def check_setup(self) -> None:
        """Asked once it is known to be the meter named: that it reads the inputs
        bench.toml wires (see :meth:`_check_terminals`)."""
        self._check_terminals()

    def _check_terminals(self, **context: Any) -> None:
        """SetupMismatch unless the front/rear switch selects the inputs the bench wires:
        on the other side nothing is connected, and a live net reads 0 V and any
        resistance open. Asked before every reading: the switch is a button anyone may
        press between two of them."""
        query = self.dialect.queries.get("terminals?")
        if query is None or not self._terminals:
            return
        (word,) = self.fields(query, self.ask_query(query, **context), 1)
        seen = word.strip().upper()
        wanted = TERMINAL_WORDS[self._terminals]
        if not seen.startswith(wanted):
            raise SetupMismatch(
                self.name,
                f"its front/rear switch selects {seen or 'nothing'}; bench.toml wires its "
                f"{self._terminals} inputs ({query.line()} must answer {wanted}): nothing "
                "it reads now is the bench's",
            )

    def _reading(self, key: str, **context: Any) -> float:
        self._check_terminals(**context)
        query = self.dialect.queries[key]
        (text,) = self.fields(query, self.ask_query(query, **context), 1)
        return self.number(query, text)

    def measure_voltage(self, **context: Any) -> float:
        return self._reading("voltage?", **context)

    def measure_resistance(self, **context: Any) -> float:
        """Resistance in ohms; an open circuit (overload) is ``inf``."""
        value = self._reading("resistance?", **context)
        return math.inf if abs(value) >= SCPI_OVERLOAD / 10 else value
