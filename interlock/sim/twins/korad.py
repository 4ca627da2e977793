"""The Korad KA/KD twin: the supply's electrical model behind Korad's command table.

Bare ASCII commands, no terminator (the server frames them by silence and
drops one sent within the dialect's gap of the previous, as the real units
do), fixed-width replies (``05.00``, ``0.500``), a binary ``STATUS?`` byte
(bit 0 CV, bit 6 output on), no error reporting: anything it does not know,
or a value beyond its range, is ignored and the setting keeps its old value.
Once ``*IDN?`` has been asked, ``ISET1?`` answers a sixth byte after its five
(libsigrok's "sixth byte from ISET?" workaround; no source gives its value: NUL).
"""

from __future__ import annotations

import re

from interlock.sim.psu import SimulatedSupply
from interlock.sim.scpi import Parameters

_SET = re.compile(r"(VSET|ISET)1:(\d{1,2}(?:\.\d{1,3})?)")
_REPLIES = {
    "VSET1?": lambda out, s: f"{out.voltage:05.2f}",
    "ISET1?": lambda out, s: f"{out.current:05.3f}",
    "VOUT1?": lambda out, s: f"{s.terminal(1).voltage:05.2f}",
    "IOUT1?": lambda out, s: f"{s.terminal(1).current:05.3f}",
}


class KoradSupply(SimulatedSupply):
    """A single-output Korad (or rebadge) answering in its own command table."""

    def _register(self) -> None:
        """No SCPI tree: :meth:`execute` reads Korad's table."""

    def terminal(self, channel: int):  # type: ignore[no-untyped-def]
        return self.electrical.terminal(self.name, channel)

    def execute(self, line: str) -> str | None:
        with self.lock:
            return self._execute(line.strip())

    def _execute(self, command: str) -> str | None:
        out = self.channels[1]
        if command == "*IDN?":
            self.sixth_byte = True
            identity = self.identity_override or self.identity
            serial = f" SN:{identity.serial}" if identity.serial else ""
            return f"{identity.maker} {identity.model} V{identity.firmware}{serial}"
        if command in _REPLIES:
            reply = _REPLIES[command](out, self)
            lie = self.lies.get((1, "voltage" if command == "VSET1?" else "current"))
            if lie is not None and command in ("VSET1?", "ISET1?"):
                reply = f"{lie:05.2f}" if command == "VSET1?" else f"{lie:05.3f}"
            if command == "ISET1?" and self.sixth_byte:
                reply += "\x00"
            return reply
        if command == "STATUS?":
            point = self.terminal(1)
            cv = point.regulation != "CC"
            return chr(int(cv) | int(out.output) << 6)
        match = _SET.fullmatch(command)
        if match is not None:
            attribute = "voltage" if match.group(1) == "VSET" else "current"
            value = float(match.group(2))
            low, high = self._range(out, attribute)
            if low <= value <= high:  # beyond its range: ignored (no error channel)
                if self.accept_setpoint(f"{match.group(1)} {value:g}"):
                    setattr(out, attribute, value)
                    self.lies.pop((1, attribute), None)
                elif self.lie_about_setpoints:
                    self.lies[(1, attribute)] = value
                self.electrical.update()
            return None
        if command in ("OUT1", "OUT0"):
            out.output = command == "OUT1"
            if out.output:  # a trip is cleared by turning the output on again
                out.ovp_tripped = out.ocp_tripped = False
            self.electrical.update()
        elif command in ("OVP1", "OVP0"):
            out.ovp_enabled = command == "OVP1"
        elif command in ("OCP1", "OCP0"):
            out.ocp_enabled = command == "OCP1"
            self.electrical.update()
        elif re.fullmatch(r"RCL[1-5]", command):
            out.output = False  # recalling a memory turns the output off
            self.electrical.update()
        return None

    def reset(self) -> None:
        super().reset()
        self.sixth_byte = False  # ISET1? answers one until *IDN? is asked
        for out in self.channels.values():
            out.ovp_enabled = False  # off until OVP1; its level is the front panel's
            out.ovp = out.rating.max_voltage * 1.1

    def _clear_protection(self, params: Parameters) -> None:  # pragma: no cover - not SCPI
        return None
