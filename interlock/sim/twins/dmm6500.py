"""The Keithley DMM6500 twin: the meter's model behind its SCPI command set.

``*IDN?`` names the model with the word MODEL (``KEITHLEY INSTRUMENTS,MODEL
DMM6500,...``); functions are shown as ``"VOLT:DC"``; numbers as ``5.000000E+00``
and an overload as ``9.900000E+37``; integration times 0.0005 to 15 NPLC, 1 after
``*RST``; the front terminals in use. A query it cannot answer gets no reply at all
(the error waits in ``:SYST:ERR?``). ``*LANG`` chooses the command set for the next
power-up only (:meth:`power_cycle`); in any set but SCPI it answers ``*LANG?`` and
``*IDN?`` and nothing else, as a unit left in TSP answers no SCPI query.
"""

from __future__ import annotations

from typing import ClassVar

from interlock.sim.dmm import FUNCTIONS, Function, SimulatedMeter
from interlock.sim.scpi import Parameters, ScpiError, parse_number

LANGUAGES = ("SCPI", "TSP", "SCPI2000", "SCPI34401")
NPLC = (0.0005, 15.0)  # 60 Hz line
_SHOWN = {"VOLT": "VOLT:DC", "CURR": "CURR:DC", "RES": "RES", "FRES": "FRES"}
_ANY_LANGUAGE = ("*LANG?", "*IDN?")


def _with_ranges(function: Function, ranges: tuple[float, ...]) -> Function:
    return Function(
        function.name, function.unit, ranges, function.noise, function.default_resolution
    )


class Dmm6500Meter(SimulatedMeter):
    functions: ClassVar[dict[str, Function]] = {
        **FUNCTIONS,
        "CURR": _with_ranges(FUNCTIONS["CURR"], (1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 3.0)),
        "RES": _with_ranges(FUNCTIONS["RES"], (10.0, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8)),
    }

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.language = "SCPI"  # the set in force
        self.next_language = "SCPI"  # the set the next power-up brings
        super().__init__(*args, **kwargs)

    def number_text(self, value: float) -> str:
        return f"{value:.6E}"

    def reset(self) -> None:
        super().reset()
        self.nplc = 1.0

    def power_cycle(self) -> None:
        """Off and on again: the command set chosen by ``*LANG`` takes effect."""
        with self.lock:
            self.language = self.next_language
            self.reset()
            self.errors.clear()

    def _register(self) -> None:
        # Registered before the shared table: the first pattern that matches answers.
        c = self.commands
        c.query("*LANG", lambda p: (p.at_most(0), self.language)[1])
        c.command("*LANG", self._set_language)
        c.query(
            "[SENSe:]FUNCtion[:ON]",
            lambda p: (p.at_most(0), f'"{_SHOWN[self.function.name]}"')[1],
        )
        super()._register()

    def _idn(self, params: Parameters) -> str:
        params.at_most(0)
        who = self.identity_override or self.identity
        return f"{who.maker},MODEL {who.model},{who.serial},{who.firmware}"

    def execute(self, line: str) -> str | None:
        with self.lock:
            if self.language != "SCPI" and line.strip().upper() not in _ANY_LANGUAGE:
                return None  # another language's parser: no SCPI reply
            return self.commands.execute(line)

    def _set_language(self, params: Parameters) -> None:
        if len(params) != 1:
            raise ScpiError(-109 if len(params) == 0 else -108)
        word = params.items[0].strip().upper()
        if word not in LANGUAGES:
            raise ScpiError(-224)
        self.next_language = word

    def _set_nplc(self, params: Parameters) -> None:
        if len(params) == 0:
            raise ScpiError(-109)
        params.at_most(1)
        value = parse_number(params.items[0], "", {"MIN": NPLC[0], "MAX": NPLC[1], "DEF": 1.0})
        if not NPLC[0] <= value <= NPLC[1]:
            raise ScpiError(-222)
        self.nplc = value
