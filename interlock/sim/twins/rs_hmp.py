"""The R&S HMP twin: the supply's electrical model behind the HMP's SCPI tree.

One channel is selected at a time (``INST:NSEL 2``, ``INST OUT2``); ``VOLT``, ``CURR``,
``VOLT:PROT``, ``FUSE`` and ``OUTP:SEL`` act on it. A channel is live only while it is
armed (``OUTP:SEL ON``) and the general output (``OUTP:GEN ON``) is on. OVP is always
armed; the fuse, once on, switches its channel off when it goes into current limit
(this twin has no fuse delay). ``VOLT:PROT:CLE`` clears an OVP trip and the channel
stays off until armed again; arming it again also clears a fuse trip. Replies are
plain decimals; a value beyond the range is refused with -222, the setting kept.
"""

from __future__ import annotations

from interlock.sim.psu import CURRENT_NOISE, VOLTAGE_NOISE
from interlock.sim.scpi import Parameters, ScpiError, parse_bool, parse_choice, parse_number
from interlock.sim.twins.general import GeneralSwitchSupply


class HmpSupply(GeneralSwitchSupply):
    """An HMP2020, HMP2030, HMP4030 or HMP4040 answering in its command tree."""

    def _register(self) -> None:
        c = self.commands
        c.command("INSTrument:NSELect", self._nselect)
        c.query("INSTrument:NSELect", lambda p: str(self.selected))
        c.command("INSTrument[:SELect]", self._select_output)
        c.query("INSTrument[:SELect]", lambda p: f"OUT{self.selected}")
        for quantity, attribute, unit in (
            ("VOLTage", "voltage", "V"),
            ("CURRent", "current", "A"),
            ("VOLTage:PROTection", "ovp", "V"),
        ):
            level = f"[SOURce:]{quantity}[:LEVel][:IMMediate][:AMPLitude]"
            c.command(level, lambda p, a=attribute, u=unit, q=quantity: self._set_value(p, a, u, q))
            c.query(level, lambda p, a=attribute: self._setting(p, a))
        c.query("[SOURce:]VOLTage:PROTection:TRIPped", lambda p: self._flag(p, "ovp_tripped"))
        c.command("[SOURce:]VOLTage:PROTection:CLEar", self._clear_ovp)
        c.command("FUSE[:STATe]", lambda p: self._set_flag(p, "ocp_enabled"))
        c.query("FUSE[:STATe]", lambda p: self._flag(p, "ocp_enabled"))
        c.query("FUSE:TRIPped", lambda p: self._flag(p, "ocp_tripped"))
        c.command("OUTPut:SELect", self._arm)
        c.query("OUTPut:SELect", lambda p: self._flag(p, "output"))
        c.command("OUTPut:GENeral", self._general_output)
        c.query("OUTPut:GENeral", lambda p: str(int(self.general)))
        c.query("MEASure[:SCALar]:VOLTage[:DC]", lambda p: self._measured(p, "voltage"))
        c.query("MEASure[:SCALar]:CURRent[:DC]", lambda p: self._measured(p, "current"))

    def _select_output(self, params: Parameters) -> None:
        if len(params) == 0:
            raise ScpiError(-109)
        params.at_most(1)
        names = [f"OUT{n}" for n in self.channels]
        self.selected = int(parse_choice(params.items[0], names)[-1])

    def _setting(self, params: Parameters, attribute: str) -> str:
        params.at_most(1)
        out = self.channels[self.selected]
        if len(params):  # VOLT? MAX: the range's end
            low, high = self._range(out, attribute)
            value = parse_number(params.items[0], "", {"MIN": low, "MAX": high})
        else:
            value = self.lies.get((out.number, attribute), getattr(out, attribute))
        return f"{value:.3f}"

    def _flag(self, params: Parameters, attribute: str) -> str:
        params.at_most(0)
        return str(int(getattr(self.channels[self.selected], attribute)))

    def _clear_ovp(self, params: Parameters) -> None:
        params.at_most(0)
        self.channels[self.selected].ovp_tripped = False  # the channel stays off

    def _arm(self, params: Parameters) -> None:
        if len(params) == 0:
            raise ScpiError(-109)
        params.at_most(1)
        out = self.channels[self.selected]
        state = parse_bool(params.items[0])
        if state and out.ovp_tripped:
            raise ScpiError(-221)  # an OVP trip is cleared first (VOLT:PROT:CLE)
        if state:
            out.ocp_tripped = False  # arming again is how a fuse trip is reset
        out.output = state
        self.electrical.update()

    def _general_output(self, params: Parameters) -> None:
        if len(params) == 0:
            raise ScpiError(-109)
        params.at_most(1)
        self.general = parse_bool(params.items[0])
        self.electrical.update()

    def _measured(self, params: Parameters, quantity: str) -> str:
        params.at_most(0)
        point = self.electrical.terminal(self.name, self.selected)
        if quantity == "voltage":
            return f"{self.noisy(point.voltage, VOLTAGE_NOISE):.4f}"
        return f"{self.noisy(point.current, CURRENT_NOISE):.4f}"
