"""A digital multimeter modelled on the Keysight 34461A / 34410A family.

The meter's HI/LO input reaches DUT nets through the bench's sense relays
(see :class:`interlock.sim.electrical.ElectricalBench.meter_input`). Its
current input (the separate "I" terminal) is not wired to the DUT on this
bench, so DC current readings are the meter's own offset noise.

Supported: ``MEAS:VOLT:DC?``, ``MEAS:RES?`` / ``MEAS:FRES?``,
``MEAS:CURR:DC?`` (each with optional range and resolution), the matching
``CONF:...``, ``CONF?``, ``READ?``, ``INIT`` + ``FETC?``, ``SAMP:COUN`` and
``[SENS:]FUNC``. Readings above 120 % of the range (or an open circuit on
resistance) answer ``+9.90000000E+37`` like the real meter.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import ClassVar

from interlock.sim.electrical import ElectricalBench
from interlock.sim.instrument import IdentityString, Noise, ScpiInstrument
from interlock.sim.scpi import (
    OVERLOAD,
    Parameters,
    ScpiError,
    format_number,
    parse_bool,
    parse_number,
    parse_string,
)
from interlock.sim.truth import GroundTruth


@dataclass(frozen=True)
class Function:
    name: str  # as CONF? shows it
    unit: str  # SCPI suffix family
    ranges: tuple[float, ...]
    noise: Noise
    default_resolution: float  # as a fraction of the range


FUNCTIONS = {
    "VOLT": Function("VOLT", "V", (0.1, 1.0, 10.0, 100.0, 1000.0),
                     Noise(absolute=5e-6, relative=10e-6), 3e-7),
    "CURR": Function("CURR", "A", (1e-4, 1e-3, 1e-2, 0.1, 1.0, 3.0, 10.0),
                     Noise(absolute=2e-9, relative=50e-6), 3e-7),
    "RES": Function("RES", "OHM", (1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8),
                    Noise(absolute=1e-3, relative=10e-6), 3e-7),
    "FRES": Function("FRES", "OHM", (1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8),
                     Noise(absolute=1e-4, relative=10e-6), 3e-7),
}
OVER_RANGE = 1.2  # readings up to 120 % of a range are shown
AUTO = -1.0  # range "AUTO"
MAX_SAMPLES = 100


class SimulatedMeter(ScpiInstrument):
    """34461A-like DMM."""

    # A family's twin gives its own ranges (the 34401A's current ranges differ).
    functions: ClassVar[dict[str, Function]] = FUNCTIONS

    def __init__(
        self,
        name: str,
        identity: IdentityString,
        electrical: ElectricalBench,
        truth: GroundTruth,
        rng: random.Random | None = None,
        terminals: str = "front",
    ) -> None:
        super().__init__(name, identity, electrical, truth, rng)
        self.function = self.functions["VOLT"]
        self.range = AUTO
        self.resolution = 0.0
        self.samples = 1
        self.nplc = 10.0
        self.fetched: list[float] | None = None
        # The front/rear switch, a button *RST leaves alone, and the inputs the bench
        # wires (bench.toml's terminals): the switch starts on them.
        self.wired = "REAR" if terminals == "rear" else "FRON"
        self.terminals = self.wired
        self.reset()
        self._register()

    def number_text(self, value: float) -> str:
        """A reading or setting as the family writes numbers (Keysight: ``+5.00000000E+00``)."""
        return format_number(value)

    def reset(self) -> None:
        self.function = self.functions["VOLT"]
        self.range = AUTO
        self.resolution = 0.0
        self.samples = 1
        self.nplc = 10.0
        self.fetched = None

    def _register(self) -> None:
        c = self.commands
        forms = (("VOLTage[:DC]", "VOLT"), ("CURRent[:DC]", "CURR"),
                 ("RESistance", "RES"), ("FRESistance", "FRES"))
        for node, key in forms:
            c.query(f"MEASure[:SCALar]:{node}", lambda p, k=key: self._measure(p, k))
            c.command(f"CONFigure[:SCALar]:{node}", lambda p, k=key: self._configure(p, k))
        c.query("CONFigure", self._configuration)
        c.query("ROUTe:TERMinals", lambda p: (p.at_most(0), self.terminals)[1])
        c.query("READ", self._read)
        c.command("INITiate[:IMMediate]", self._initiate)
        c.query("FETCh", self._fetch)
        c.command("SAMPle:COUNt", self._sample_count)
        c.query("SAMPle:COUNt", lambda p: (p.at_most(0), f"{self.samples:+d}")[1])
        c.command("[SENSe:]FUNCtion[:ON]", self._set_function)
        c.query("[SENSe:]FUNCtion[:ON]", lambda p: (p.at_most(0), f'"{self.function.name}"')[1])
        c.command("TRIGger:SOURce", lambda p: p.at_most(1))
        for node, key in (("VOLTage[:DC]", "VOLT"), ("CURRent[:DC]", "CURR"),
                          ("RESistance", "RES"), ("FRESistance", "FRES")):
            c.command(f"[SENSe:]{node}:RANGe[:UPPer]", lambda p, k=key: self._set_range(p, k))
            c.query(f"[SENSe:]{node}:RANGe[:UPPer]", lambda p, k=key: self._range_of(p, k))
            c.command(f"[SENSe:]{node}:RANGe:AUTO", lambda p, k=key: self._set_auto(p, k))
            c.query(f"[SENSe:]{node}:RANGe:AUTO", lambda p, k=key: self._auto_of(p, k))
            # integration time: accepted and shown, it changes nothing here
            c.command(f"[SENSe:]{node}:NPLCycles", self._set_nplc)
            c.query(f"[SENSe:]{node}:NPLCycles", lambda p: (p.at_most(0),
                                                            self.number_text(self.nplc))[1])

    # --- configuration ---------------------------------------------------------

    def _parse_setup(self, params: Parameters, function: Function) -> tuple[float, float]:
        params.at_most(2)
        low, high = function.ranges[0], function.ranges[-1]
        span = AUTO
        if len(params) >= 1:
            requested = parse_number(params.items[0], function.unit,
                                     {"AUTO": AUTO, "DEF": AUTO, "MIN": low, "MAX": high})
            if requested != AUTO:
                if not 0 <= requested <= high * OVER_RANGE:
                    raise ScpiError(-222)
                span = next((r for r in function.ranges if r >= requested), high)
        resolution = 0.0
        if len(params) == 2:
            resolution = parse_number(params.items[1], function.unit,
                                      {"DEF": 0.0, "MIN": 0.0, "MAX": high * 3e-6 * 10})
            if resolution < 0:
                raise ScpiError(-222)
        return span, resolution

    def _configure(self, params: Parameters, key: str) -> None:
        function = self.functions[key]
        span, resolution = self._parse_setup(params, function)
        self.function, self.range, self.resolution = function, span, resolution
        self.samples = 1  # CONFigure (and so MEASure) resets the sample count, as the 34461A does
        self.fetched = None

    def _configuration(self, params: Parameters) -> str:
        params.at_most(0)
        span = self._effective_range(self._true_value())
        resolution = self.resolution or span * self.function.default_resolution
        return f'"{self.function.name} {self.number_text(span)},{self.number_text(resolution)}"'

    def _set_function(self, params: Parameters) -> None:
        if len(params) == 0:
            raise ScpiError(-109)
        params.at_most(1)
        text = parse_string(params.items[0]).strip().upper()
        aliases = {"VOLT": "VOLT", "VOLT:DC": "VOLT", "VOLTAGE": "VOLT", "VOLTAGE:DC": "VOLT",
                   "CURR": "CURR", "CURR:DC": "CURR", "CURRENT": "CURR", "CURRENT:DC": "CURR",
                   "RES": "RES", "RESISTANCE": "RES", "FRES": "FRES", "FRESISTANCE": "FRES"}
        if text not in aliases:
            raise ScpiError(-224)
        self.function = self.functions[aliases[text]]
        self.range = AUTO

    # The SENSe settings below belong to the function being configured; like
    # the real meter, setting a range of another function does not switch to it.
    def _set_range(self, params: Parameters, key: str) -> None:
        if len(params) == 0:
            raise ScpiError(-109)
        span, _ = self._parse_setup(params, self.functions[key])
        if self.function.name == key:
            self.range = span

    def _range_of(self, params: Parameters, key: str) -> str:
        params.at_most(0)
        if self.function.name != key:
            return self.number_text(self.functions[key].ranges[2])  # that function's power-on range
        return self.number_text(self._effective_range(self._true_value()))

    def _set_auto(self, params: Parameters, key: str) -> None:
        if len(params) == 0:
            raise ScpiError(-109)
        params.at_most(1)
        auto = parse_bool(params.items[0])
        if self.function.name == key:
            self.range = AUTO if auto else self._effective_range(self._true_value())

    def _auto_of(self, params: Parameters, key: str) -> str:
        params.at_most(0)
        return "1" if self.function.name != key or self.range == AUTO else "0"

    def _set_nplc(self, params: Parameters) -> None:
        if len(params) == 0:
            raise ScpiError(-109)
        params.at_most(1)
        value = parse_number(params.items[0], "", {"MIN": 0.02, "MAX": 100.0, "DEF": 10.0})
        if not 0.02 <= value <= 100.0:
            raise ScpiError(-222)
        self.nplc = value

    def _sample_count(self, params: Parameters) -> None:
        if len(params) == 0:
            raise ScpiError(-109)
        params.at_most(1)
        value = parse_number(params.items[0], "", {"MIN": 1, "MAX": MAX_SAMPLES, "DEF": 1})
        if value != int(value) or not 1 <= value <= MAX_SAMPLES:
            raise ScpiError(-222)
        self.samples = int(value)

    # --- measuring -----------------------------------------------------------

    def _true_value(self) -> float:
        if self.terminals != self.wired:  # nothing is wired to the other inputs
            return math.inf if self.function.name in ("RES", "FRES") else 0.0
        seen = self.electrical.meter_input()
        if self.function.name == "VOLT":
            return seen.voltage
        if self.function.name == "CURR":
            return 0.0  # the current terminal is not wired to the DUT
        return seen.resistance

    def _effective_range(self, value: float) -> float:
        if self.range != AUTO:
            return self.range
        for span in self.function.ranges:
            if abs(value) <= span * OVER_RANGE:
                return span
        return self.function.ranges[-1]

    def _reading(self) -> float:
        value = self._true_value()
        if not math.isfinite(value) or abs(value) > self._effective_range(value) * OVER_RANGE:
            return OVERLOAD if value >= 0 else -OVERLOAD
        return self.noisy(value, self.function.noise)

    def _readings(self) -> list[float]:
        return [self._reading() for _ in range(self.samples)]

    def _measure(self, params: Parameters, key: str) -> str:
        self._configure(params, key)
        return ",".join(self.number_text(v) for v in self._readings())

    def _read(self, params: Parameters) -> str:
        params.at_most(0)
        return ",".join(self.number_text(v) for v in self._readings())

    def _initiate(self, params: Parameters) -> None:
        params.at_most(0)
        self.fetched = self._readings()

    def _fetch(self, params: Parameters) -> str:
        params.at_most(0)
        if self.fetched is None:
            raise ScpiError(-221)  # nothing measured since the last configuration
        return ",".join(self.number_text(v) for v in self.fetched)
