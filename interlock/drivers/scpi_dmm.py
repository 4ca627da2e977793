"""A SCPI digital multimeter (34401A/34461A dialect) over VISA."""

from __future__ import annotations

import math

from interlock.drivers.scpi import SCPI_OVERLOAD, ScpiDevice


class ScpiMultimeter(ScpiDevice):
    def measure_voltage(self, **context) -> float:
        return self.numbers(self.ask("MEAS:VOLT:DC?", **context), 1, "MEAS:VOLT:DC?")[0]

    def measure_resistance(self, **context) -> float:
        """Resistance in ohms; an open circuit (overload) is ``inf``."""
        value = self.numbers(self.ask("MEAS:RES?", **context), 1, "MEAS:RES?")[0]
        return math.inf if abs(value) >= SCPI_OVERLOAD / 10 else value
