"""The HP / Agilent 34401A twin: the meter's model behind its RS-232 behaviour.

Served on a pty (newline in, ``\\r\\n`` out). At power-on it is in local: every line
but ``SYST:REM`` (or ``SYST:RWL``) is ignored, unanswered, until the host puts it in
remote, and ``SYST:LOC`` returns it to local. Its ranges are the 34401A's (3 A the
highest current range), integration times only 0.02, 0.2, 1, 10 and 100 NPLC
(others refused with -222), and ``INP:IMP:AUTO`` off after ``*RST``. A line it
cannot parse answers nothing; the error waits in ``SYST:ERR?``.
"""

from __future__ import annotations

import re
from typing import ClassVar

from interlock.sim.dmm import FUNCTIONS, Function, SimulatedMeter
from interlock.sim.scpi import Parameters, ScpiError, parse_bool, parse_number

_REMOTE = re.compile(r":?SYST(?:EM)?:(?:REM(?:OTE)?|RWL(?:OCK)?)", re.IGNORECASE)
_LOCAL = re.compile(r":?SYST(?:EM)?:LOC(?:AL)?", re.IGNORECASE)
NPLC = (0.02, 0.2, 1.0, 10.0, 100.0)


def _with_ranges(function: Function, ranges: tuple[float, ...]) -> Function:
    return Function(
        function.name, function.unit, ranges, function.noise, function.default_resolution
    )


class Hp34401aMeter(SimulatedMeter):
    functions: ClassVar[dict[str, Function]] = {
        **FUNCTIONS,
        "CURR": _with_ranges(FUNCTIONS["CURR"], (0.01, 0.1, 1.0, 3.0)),
    }

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.remote = False  # power-on: front panel in charge
        self.auto_impedance = False
        super().__init__(*args, **kwargs)

    def reset(self) -> None:
        super().reset()
        self.auto_impedance = False

    def _register(self) -> None:
        super()._register()
        c = self.commands
        c.command("INPut:IMPedance:AUTO", self._set_impedance)
        c.query(
            "INPut:IMPedance:AUTO", lambda p: (p.at_most(0), "1" if self.auto_impedance else "0")[1]
        )

    def execute(self, line: str) -> str | None:
        text = line.strip()
        with self.lock:
            if _REMOTE.fullmatch(text):
                self.remote = True
                return None
            if not self.remote:  # in local: the RS-232 line is not listened to
                return None
            if _LOCAL.fullmatch(text):
                self.remote = False
                return None
            return self.commands.execute(line)

    def _set_impedance(self, params: Parameters) -> None:
        if len(params) == 0:
            raise ScpiError(-109)
        params.at_most(1)
        self.auto_impedance = parse_bool(params.items[0])

    def _set_nplc(self, params: Parameters) -> None:
        if len(params) == 0:
            raise ScpiError(-109)
        params.at_most(1)
        value = parse_number(params.items[0], "", {"MIN": NPLC[0], "MAX": NPLC[-1], "DEF": 10.0})
        if value not in NPLC:
            raise ScpiError(-222)
        self.nplc = value
