"""The Siglent SPD3303X twin: the supply's electrical model behind Siglent's commands.

``CH1:VOLT 25``, ``OUTP CH1,ON``, ``MEAS:VOLT? CH1``: SCPI-like words with the channel
in the header or as a parameter, which the SCPI tree parser does not take, so the
lines are read here by a table of patterns. Replies carry three decimals (``25.000``);
output states live in one hex status word (``SYST:STAT?`` -> ``0x0014``). There is no
programmable protection and no error reporting: a value beyond the range, or a line
the unit does not know, changes nothing. A line that comes sooner than half the
dialect's gap after the previous one is dropped unanswered (the guide is silent; the
reference drivers wait 100 ms because the unit then "won't respond").
"""

from __future__ import annotations

import re
import time

from interlock.sim.psu import CURRENT_NOISE, VOLTAGE_NOISE, SimulatedSupply

_NUMBER = r"([+-]?(?:\d+\.?\d*|\.\d+))"
_SET = re.compile(rf"CH([12]):(VOLT|CURR) {_NUMBER}")
_SETPOINT = re.compile(r"CH([12]):(VOLT|CURR)\?")
_OUTPUT = re.compile(r"OUTP CH([123]),(ON|OFF)")
_MEASURE = re.compile(r"MEAS:(VOLT|CURR|POWE)\? CH([12])")
_SELECT = re.compile(r"INST CH([12])")
VERSION = "1.01.01.02.05"
HARDWARE = "V3.0"
# Bits 3..2 of the status word: the channels' coupling, set at the front panel.
MODE_INDEPENDENT, MODE_PARALLEL, MODE_SERIES = 1, 2, 3


class SiglentSupply(SimulatedSupply):
    """An SPD3303X or SPD3303X-E (CH1 and CH2) answering in Siglent's own lines."""

    gap = 0.05  # s: half the dialect's 100 ms, as the serial twins drop

    def _register(self) -> None:
        """No SCPI tree: :meth:`execute` reads Siglent's table."""

    def reset(self) -> None:
        super().reset()
        self._last = -1e9
        self.mode = MODE_INDEPENDENT
        for out in self.channels.values():
            out.ovp_enabled = False  # no over-voltage protection to trip
            out.ovp = out.rating.max_voltage

    def execute(self, line: str) -> str | None:
        with self.lock:
            now = time.monotonic()
            too_soon = now - self._last < self.gap
            self._last = now
            if too_soon:
                self.truth.event(
                    "command-dropped",
                    f"{self.name}: {line!r} sent within the gap",
                    instrument=self.name,
                )
                return None
            # The gap runs from each line's arrival, as the host keeps it from its sending:
            # the twin's own time answering must not count against the host.
            return self._execute(" ".join(line.strip().upper().split()))

    def _execute(self, command: str) -> str | None:
        if command == "*IDN?":
            i = self.identity_override or self.identity
            return f"{i.maker},{i.model},{i.serial},{i.firmware},{HARDWARE}"
        if command == "SYST:STAT?":
            return f"0x{self._status():04X}"
        if command == "SYST:VERS?":
            return VERSION
        if command == "SYST:ERR?":
            return "0  No Error"
        if command == "INST?":
            return f"CH{self.selected}"
        if command == "DHCP?":
            return "DHCP:OFF"
        if (match := _SETPOINT.fullmatch(command)) is not None:
            attribute = "voltage" if match.group(2) == "VOLT" else "current"
            out = self.channels[int(match.group(1))]
            value = self.lies.get((out.number, attribute), getattr(out, attribute))
            return f"{value:.3f}"
        if (match := _MEASURE.fullmatch(command)) is not None:
            point = self.electrical.terminal(self.name, int(match.group(2)))
            volts = self.noisy(point.voltage, VOLTAGE_NOISE)
            amps = self.noisy(point.current, CURRENT_NOISE)
            value = {"VOLT": volts, "CURR": amps, "POWE": volts * amps}[match.group(1)]
            return f"{value:.3f}"
        if (match := _SET.fullmatch(command)) is not None:
            self._set(int(match.group(1)), match.group(2), float(match.group(3)))
        elif (match := _OUTPUT.fullmatch(command)) is not None:
            number = int(match.group(1))
            if number in self.channels:  # CH3 (fixed 2.5/3.3/5 V) is not modelled
                self.channels[number].output = match.group(2) == "ON"
                self.electrical.update()
        elif (match := _SELECT.fullmatch(command)) is not None:
            self.selected = int(match.group(1))
        return None  # anything else: nothing happens, nothing is reported

    def _set(self, number: int, which: str, value: float) -> None:
        attribute = "voltage" if which == "VOLT" else "current"
        out = self.channels[number]
        low, high = self._range(out, attribute)
        if not low <= value <= high:
            return  # beyond its range: the setting is kept
        value = round(value, 3)  # 1 mV / 1 mA steps
        if self.accept_setpoint(f"CH{number}:{which} {value:g}"):
            setattr(out, attribute, value)
            self.lies.pop((number, attribute), None)
        elif self.lie_about_setpoints:
            self.lies[(number, attribute)] = value
        self.electrical.update()

    def _status(self) -> int:
        word = self.mode << 2
        for number, out in self.channels.items():
            point = self.electrical.terminal(self.name, number)
            if out.output and point.regulation == "CC":
                word |= 1 << (number - 1)
            if out.output:
                word |= 1 << (number + 3)
        return word
