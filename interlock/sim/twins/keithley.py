"""The Keithley 2220/2230 twin: the supply's electrical model behind Keithley's SCPI tree.

One channel is selected at a time (``INST:SEL CH2``); ``VOLT``, ``CURR`` and
``CHAN:OUTP`` act on it. ``OUTP`` is the general switch: an output is live only when
its own switch and the general one are both on. Replies are plain decimals (``1.456``,
``0``/``1``). A value beyond a channel's range is refused with an error in the queue
and the setting kept (the manual's code 116; this twin queues SCPI's -222).
"""

from __future__ import annotations

from interlock.sim.psu import CURRENT_NOISE, VOLTAGE_NOISE
from interlock.sim.scpi import Parameters, ScpiError, parse_bool, parse_choice
from interlock.sim.twins.general import GeneralSwitchSupply


class KeithleySupply(GeneralSwitchSupply):
    """A 2220 (two outputs) or 2230 (three) answering in Keithley's command tree."""

    def reset(self) -> None:
        super().reset()
        for out in self.channels.values():
            out.ovp_enabled = False  # no over-voltage protection to trip
            out.ovp = out.rating.max_voltage

    def _register(self) -> None:
        c = self.commands
        c.command("INSTrument[:SELect]", self._select)
        c.query("INSTrument[:SELect]", self._selected)
        for quantity, attribute, unit in (("VOLTage", "voltage", "V"), ("CURRent", "current", "A")):
            level = f"[SOURce:]{quantity}[:LEVel][:IMMediate][:AMPLitude]"
            c.command(level, lambda p, a=attribute, u=unit, q=quantity: self._set_value(p, a, u, q))
            c.query(level, lambda p, a=attribute: self._setting(p, a))
        c.command("[SOURce:]CHANnel:OUTPut[:STATe]", self._channel_output)
        c.query("[SOURce:]CHANnel:OUTPut[:STATe]", self._channel_output_state)
        c.command("OUTPut[:STATe]", self._general_output)
        c.query("OUTPut[:STATe]", lambda p: str(int(self.general)))
        c.query("MEASure[:SCALar]:VOLTage[:DC]", lambda p: self._measured(p, "voltage"))
        c.query("MEASure[:SCALar]:CURRent[:DC]", lambda p: self._measured(p, "current"))

    def _setting(self, params: Parameters, attribute: str) -> str:
        params.at_most(0)
        out = self.channels[self.selected]
        return f"{self.lies.get((out.number, attribute), getattr(out, attribute)):.3f}"

    def _channel_output(self, params: Parameters) -> None:
        if len(params) == 0:
            raise ScpiError(-109)
        params.at_most(1)
        self.channels[self.selected].output = parse_bool(params.items[0])
        self.electrical.update()

    def _channel_output_state(self, params: Parameters) -> str:
        params.at_most(0)
        return str(int(self.channels[self.selected].output))

    def _general_output(self, params: Parameters) -> None:
        if len(params) == 0:
            raise ScpiError(-109)
        params.at_most(1)
        self.general = parse_bool(params.items[0])
        self.electrical.update()

    def _measured(self, params: Parameters, quantity: str) -> str:
        params.at_most(1)
        number = self.selected
        if len(params):
            number = int(parse_choice(params.items[0], [f"CH{n}" for n in self.channels])[-1])
        point = self.electrical.terminal(self.name, number)
        if quantity == "voltage":
            return f"{self.noisy(point.voltage, VOLTAGE_NOISE):.4f}"
        return f"{self.noisy(point.current, CURRENT_NOISE):.4f}"

    def _idn(self, params: Parameters) -> str:
        params.at_most(0)
        i = self.identity_override or self.identity
        return f"{i.maker}, {i.model}, {i.serial}, {i.firmware}"
