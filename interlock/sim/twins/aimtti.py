"""The Aim-TTi PL-P/QL-P twin: the supply's electrical model behind TTi's mnemonics.

No SCPI tree: the output's number is in the header (``V1 5``, ``OP2 1``, ``V1O?``).
Setting queries echo a prefix (``V1 5.000``, ``I1 0.500``, ``VP1 12.00``, ``CP1
1.000``), readbacks carry a unit (``5.000V``, ``0.123A``); replies end ``\\r\\n``
(the server's terminator). OVP and OCP are always armed at their own levels; a trip
turns the output off, which stays off until ``TRIPRST`` (and off after it), and sets
bit 2 (OVP) or 3 (OCP) of the limit event status register: ``LSR<n>?`` reads and
clears it, so each trip is told once. Nothing is answered to a line it does not know (``*ESR?``
bit 5) or to a value out of range (bit 4, ``EER?`` 100, the setting kept).
"""

from __future__ import annotations

import re

from interlock.sim.dut import Operating
from interlock.sim.electrical import Trip
from interlock.sim.psu import CURRENT_NOISE, VOLTAGE_NOISE, OutputChannel, SimulatedSupply
from interlock.sim.scpi import Parameters

_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
_SET = re.compile(rf"(V|I|OVP|OCP)(\d)(V?) {_NUMBER}")
_ASK = re.compile(r"(V|I|OVP|OCP|OP|LSR|IRANGE)(\d)(O?)\?")
_SWITCH = re.compile(r"(OP|IRANGE)(\d) ([0-9])")
_PREFIX = {"V": "V", "I": "I", "OVP": "VP", "OCP": "CP"}
_ATTRIBUTE = {"V": "voltage", "I": "current", "OVP": "ovp", "OCP": "ocp"}
_FORMAT = {"V": "{:.3f}", "I": "{:.3f}", "OVP": "{:.2f}", "OCP": "{:.3f}"}
ESR_EXECUTION = 16
ESR_COMMAND = 32
RANGE_ERROR = 100  # EER?: a numeric value beyond what the setting takes (TTi sister manuals)
OVP_BIT, OCP_BIT = 2, 3  # LSR<n>? (QL series II layout)


def _unsigned(reading: float) -> float:
    return 0.0 if reading < 0 else reading  # NaN (an injected fault) passes as it is


class AimTtiSupply(SimulatedSupply):
    """A PL-P or QL-P answering in TTi's own command language."""

    def reset(self) -> None:
        super().reset()
        self.ocp_levels = {n: out.rating.max_current * 1.1 for n, out in self.channels.items()}
        self.ranges = {n: 2 for n in self.channels}
        for out in self.channels.values():
            out.ovp_enabled = out.ocp_enabled = True  # no switch: armed at their levels
        self.esr = self.eer = 0
        self.limit_events = dict.fromkeys(self.channels, 0)  # LSR<n>?: read and cleared
        self.interface_locked = False

    def _register(self) -> None:
        """No SCPI tree: :meth:`execute` reads TTi's lines."""

    def _clear_protection(self, params: Parameters) -> None:  # pragma: no cover - not SCPI
        return None

    def protect(self, channel: int, point: Operating) -> Trip | None:
        out = self.channels[channel]
        if not out.output:
            return None
        if point.voltage > out.ovp:
            out.output, out.ovp_tripped = False, True
            self.limit_events[channel] |= 1 << OVP_BIT
            return Trip("OVP", min(out.voltage, out.ovp), out.current)
        level = self.ocp_levels[channel]
        if point.current >= level or (point.regulation == "CC" and out.current >= level):
            out.output, out.ocp_tripped = False, True
            self.limit_events[channel] |= 1 << OCP_BIT
            return Trip("OCP", out.voltage, out.current)
        return None

    def settings(self) -> dict[int, dict[str, float | bool]]:
        found = super().settings()
        for number, record in found.items():
            record["ocp_level"] = self.ocp_levels[number]
        return found

    # --- lines -----------------------------------------------------------------

    def execute(self, line: str) -> str | None:
        with self.lock:
            return self._execute(line.strip())

    def _execute(self, command: str) -> str | None:
        common = self._common(command)
        if common is not None:
            return common or None
        for pattern, handler in ((_SET, self._set), (_ASK, self._ask), (_SWITCH, self._switch)):
            match = pattern.fullmatch(command)
            if match is not None:
                if int(match.group(2)) not in self.channels:
                    break  # no such output: a command error
                return handler(match)
        self.esr |= ESR_COMMAND
        return None

    def _common(self, command: str) -> str | None:
        """The lines that name no output; "" for one that answers nothing."""
        if command == "*IDN?":
            i = self.identity_override or self.identity
            return f"{i.maker}, {i.model}, {i.serial}, {i.firmware}"
        if command == "*OPC?":
            return "1"
        if command == "*RST":
            self.reset()
            self.electrical.update()
            return ""
        if command == "*CLS":
            self.esr = self.eer = 0
            return ""
        if command in ("*ESR?", "EER?"):
            value = self.esr if command == "*ESR?" else self.eer
            if command == "*ESR?":
                self.esr = 0
            else:
                self.eer = 0
            return str(value)
        if command == "TRIPRST":
            for out in self.channels.values():
                out.ovp_tripped = out.ocp_tripped = False  # the outputs stay off
            return ""
        if command in ("OPALL 0", "OPALL 1"):
            on = command.endswith("1")
            for out in self.channels.values():
                out.output = on and not (out.ovp_tripped or out.ocp_tripped)
            self.electrical.update()
            return ""
        if command == "IFLOCK":
            self.interface_locked = True
            return "1"
        if command == "IFLOCK?":
            return str(int(self.interface_locked))
        if command == "IFUNLOCK":
            self.interface_locked = False
            return "0"
        return None

    def _set(self, match: re.Match[str]) -> None:
        key, number = match.group(1), int(match.group(2))
        out = self.channels[number]
        attribute = _ATTRIBUTE[key]
        value = float(match.group(4))
        low, high = self._limits(out, attribute)
        if not low <= value <= high:
            self.esr |= ESR_EXECUTION
            self.eer = RANGE_ERROR
            return None
        if attribute == "ocp":
            self.ocp_levels[number] = value
        elif attribute == "ovp":
            out.ovp = value
        elif self.accept_setpoint(f"{key}{number} {value:g}"):
            setattr(out, attribute, value)
            self.lies.pop((number, attribute), None)
        elif self.lie_about_setpoints:
            self.lies[(number, attribute)] = value
        self.electrical.update()
        return None

    def _limits(self, out: OutputChannel, attribute: str) -> tuple[float, float]:
        if attribute == "ocp":
            return 0.01, out.rating.max_current * 1.1
        if attribute == "ovp":
            return 1.0, out.rating.max_ovp
        return self._range(out, attribute)

    def _ask(self, match: re.Match[str]) -> str | None:
        key, number, measured = match.group(1), int(match.group(2)), match.group(3)
        out = self.channels[number]
        if measured:
            if key not in ("V", "I"):
                self.esr |= ESR_COMMAND
                return None
            point = self.electrical.terminal(self.name, number)
            # The display's digits, never below zero (no "-0.000V" from the meter's noise).
            if key == "V":
                return f"{_unsigned(self.noisy(point.voltage, VOLTAGE_NOISE)):.3f}V"
            return f"{_unsigned(self.noisy(point.current, CURRENT_NOISE)):.3f}A"
        if key == "OP":
            return str(int(out.output))
        if key == "IRANGE":
            return str(self.ranges[number])
        if key == "LSR":
            events, self.limit_events[number] = self.limit_events[number], 0
            return str(events)
        attribute = _ATTRIBUTE[key]
        if attribute == "ocp":
            value = self.ocp_levels[number]
        else:
            value = self.lies.get((number, attribute), getattr(out, attribute))
        return f"{_PREFIX[key]}{number} {_FORMAT[key].format(value)}"

    def _switch(self, match: re.Match[str]) -> None:
        key, number, state = match.group(1), int(match.group(2)), int(match.group(3))
        out = self.channels[number]
        if key == "IRANGE":
            if out.output or state not in (1, 2):  # the range changes with the output off
                self.esr |= ESR_EXECUTION
                return None
            self.ranges[number] = state
            return None
        if state not in (0, 1):
            self.esr |= ESR_COMMAND
            return None
        if state and (out.ovp_tripped or out.ocp_tripped):
            self.esr |= ESR_EXECUTION  # a tripped output stays off until TRIPRST
            return None
        out.output = bool(state)
        self.electrical.update()
        return None
