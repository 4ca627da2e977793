"""A triple-output bench supply modelled on the Keysight E36312A.

Ranges come from :data:`interlock.catalog.SUPPLIES` (one source of truth for
what the model can deliver). A value outside them is refused with -222 and the
setting keeps its old value, as on the real instrument.

Commands take an optional channel list (``VOLT 5,(@1)``, ``MEAS:VOLT? (@1:3)``);
without one they act on the channel chosen by ``INST:NSEL``/``INST CHn``.
Queries over a list answer with comma-separated values in list order.

Over-voltage protection is always armed on the E36312A; ``VOLT:PROT:STAT``
is accepted so drivers written for supplies that can disarm it work too.
When the output voltage exceeds the OVP level the output turns off and stays
off, tripped, until ``VOLT:PROT:CLE`` / ``OUTP:PROT:CLE``; the same holds
for over-current protection (``CURR:PROT:STAT ON``) once the output goes
into CC.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from interlock.catalog import SUPPLIES, SupplyChannel
from interlock.sim.dut import Operating
from interlock.sim.electrical import ElectricalBench, Trip
from interlock.sim.instrument import IdentityString, Noise, ScpiInstrument
from interlock.sim.scpi import (
    Parameters,
    ScpiError,
    format_number,
    parse_bool,
    parse_channel_list,
    parse_choice,
    parse_number,
)
from interlock.sim.truth import GroundTruth

# Readback noise of the supply's own meter (1 sigma).
VOLTAGE_NOISE = Noise(absolute=0.2e-3, relative=20e-6)
CURRENT_NOISE = Noise(absolute=20e-6, relative=50e-6)


@dataclass
class OutputChannel:
    number: int
    rating: SupplyChannel
    voltage: float = 0.0
    current: float = 0.0
    ovp: float = 0.0
    ovp_enabled: bool = True
    ocp_enabled: bool = False
    output: bool = False
    ovp_tripped: bool = False
    ocp_tripped: bool = False

    def settings(self) -> dict[str, float | bool]:
        """What the channel holds, as the ground truth records it."""
        return {
            "output": self.output,
            "setpoint": self.voltage,
            "current_limit": self.current,
            "ovp": self.ovp,
            "ovp_enabled": self.ovp_enabled,
            "ocp_enabled": self.ocp_enabled,
            "ovp_tripped": self.ovp_tripped,
            "ocp_tripped": self.ocp_tripped,
        }

    def reset(self) -> None:
        self.voltage = 0.0
        self.current = self.rating.max_current
        self.ovp = self.rating.max_ovp
        self.ovp_enabled = True
        self.ocp_enabled = False
        self.output = False
        self.ovp_tripped = False
        self.ocp_tripped = False


class SimulatedSupply(ScpiInstrument):
    """The E36312A family (any model of the catalogue's ``SUPPLIES``)."""

    def __init__(
        self,
        name: str,
        identity: IdentityString,
        electrical: ElectricalBench,
        truth: GroundTruth,
        model: str = "E36312A",
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(name, identity, electrical, truth, rng)
        self.model = SUPPLIES[model]
        self.channels = {
            number: OutputChannel(number, rating)
            for number, rating in self.model.channels.items()
        }
        self.selected = min(self.channels)
        # ignore-setpoint=lie: what queries answer instead of the held value
        self.lies: dict[tuple[int, str], float] = {}
        self.reset()
        self._register()
        electrical.attach_supply(name, self)

    def reset(self) -> None:
        for channel in self.channels.values():
            channel.reset()
        self.selected = min(self.channels)
        self.forget_lies()

    def forget_lies(self) -> None:
        self.lies = {}

    # --- what the electrical facade asks -------------------------------------

    def live_outputs(self) -> dict[int, tuple[float, float]]:
        return {
            number: (channel.voltage, channel.current)
            for number, channel in self.channels.items()
            if channel.output
        }

    def settings(self) -> dict[int, dict[str, float | bool]]:
        return {number: channel.settings() for number, channel in self.channels.items()}

    def protect(self, channel: int, point: Operating) -> Trip | None:
        out = self.channels[channel]
        if not out.output:
            return None
        if out.ovp_enabled and point.voltage > out.ovp:
            out.output = False
            out.ovp_tripped = True
            return Trip("OVP", min(out.voltage, out.ovp), out.current)
        if out.ocp_enabled and point.regulation == "CC":
            out.output = False
            out.ocp_tripped = True
            return Trip("OCP", out.voltage, out.current)
        return None

    # --- command helpers -------------------------------------------------------

    def _targets(self, channel_list: str | None) -> list[OutputChannel]:
        if channel_list is None:
            return [self.channels[self.selected]]
        return [self.channels[n] for n in parse_channel_list(channel_list, self.channels)]

    def _set_value(self, params: Parameters, attribute: str, unit: str, what: str) -> None:
        values, channel_list = params.split_channels()
        if len(values) == 0:
            raise ScpiError(-109)
        values.at_most(1)
        targets = self._targets(channel_list)
        for out in targets:
            low, high = self._range(out, attribute)
            value = parse_number(values.items[0], unit, {"MIN": low, "MAX": high, "DEF": low})
            if not low <= value <= high:
                raise ScpiError(-222)
        for out in targets:
            low, high = self._range(out, attribute)
            value = parse_number(values.items[0], unit, {"MIN": low, "MAX": high, "DEF": low})
            if self.accept_setpoint(f"{what} {value:g} CH{out.number}"):
                setattr(out, attribute, value)
                self.lies.pop((out.number, attribute), None)
            elif self.lie_about_setpoints:
                self.lies[(out.number, attribute)] = value
        self.electrical.update()

    def _query_value(self, params: Parameters, attribute: str) -> str:
        values, channel_list = params.split_channels()
        values.at_most(1)
        targets = self._targets(channel_list)
        answers = []
        for out in targets:
            if len(values):
                low, high = self._range(out, attribute)
                answers.append(parse_number(values.items[0], "", {"MIN": low, "MAX": high}))
            else:
                answers.append(self.lies.get((out.number, attribute), getattr(out, attribute)))
        return ",".join(format_number(v) for v in answers)

    @staticmethod
    def _range(out: OutputChannel, attribute: str) -> tuple[float, float]:
        if attribute == "voltage":
            return 0.0, out.rating.max_voltage
        if attribute == "current":
            # A supply cannot regulate at zero amperes: the catalogue says how low it goes.
            return out.rating.min_current, out.rating.max_current
        return 0.0, out.rating.max_ovp  # ovp

    def _flags(self, params: Parameters, attribute: str) -> str:
        values, channel_list = params.split_channels()
        values.at_most(0)
        return ",".join(str(int(getattr(out, attribute))) for out in self._targets(channel_list))

    def _set_flag(self, params: Parameters, attribute: str) -> None:
        values, channel_list = params.split_channels()
        if len(values) == 0:
            raise ScpiError(-109)
        values.at_most(1)
        state = parse_bool(values.items[0])
        for out in self._targets(channel_list):
            setattr(out, attribute, state)
        self.electrical.update()

    # --- commands ------------------------------------------------------------

    def _register(self) -> None:
        c = self.commands
        c.command("INSTrument[:SELect]", self._select)
        c.query("INSTrument[:SELect]", self._selected)
        c.command("INSTrument:NSELect", self._nselect)
        c.query("INSTrument:NSELect", self._nselected)
        c.command("APPLy", self._apply)
        c.query("APPLy", self._applied)
        for quantity, attribute, unit in (("VOLTage", "voltage", "V"), ("CURRent", "current", "A")):
            level = f"[SOURce:]{quantity}[:LEVel][:IMMediate][:AMPLitude]"
            c.command(level, lambda p, a=attribute, u=unit, q=quantity: self._set_value(p, a, u, q))
            c.query(level, lambda p, a=attribute: self._query_value(p, a))
        ovp = "[SOURce:]VOLTage:PROTection[:LEVel]"
        c.command(ovp, lambda p: self._set_value(p, "ovp", "V", "VOLT:PROT"))
        c.query(ovp, lambda p: self._query_value(p, "ovp"))
        for quantity, enabled, tripped in (
            ("VOLTage", "ovp_enabled", "ovp_tripped"),
            ("CURRent", "ocp_enabled", "ocp_tripped"),
        ):
            state = f"[SOURce:]{quantity}:PROTection:STATe"
            c.command(state, lambda p, a=enabled: self._set_flag(p, a))
            c.query(state, lambda p, a=enabled: self._flags(p, a))
            c.query(f"[SOURce:]{quantity}:PROTection:TRIPped",
                    lambda p, a=tripped: self._flags(p, a))
            c.command(f"[SOURce:]{quantity}:PROTection:CLEar", self._clear_protection)
        c.command("OUTPut:PROTection:CLEar", self._clear_protection)
        c.command("OUTPut[:STATe]", self._output)
        c.query("OUTPut[:STATe]", lambda p: self._flags(p, "output"))
        c.query("MEASure[:SCALar]:VOLTage[:DC]", lambda p: self._measure(p, "voltage"))
        c.query("MEASure[:SCALar]:CURRent[:DC]", lambda p: self._measure(p, "current"))
        c.query("STATus:QUEStionable[:EVENt]", lambda p: self._questionable(p))
        c.query("STATus:QUEStionable:CONDition", lambda p: self._questionable(p))

    def _select(self, params: Parameters) -> None:
        if len(params) == 0:
            raise ScpiError(-109)
        params.at_most(1)
        names = [f"CH{n}" for n in self.channels] + [f"OUTPut{n}" for n in self.channels]
        choice = parse_choice(params.items[0], names)
        self.selected = int(choice[-1])

    def _selected(self, params: Parameters) -> str:
        params.at_most(0)
        return f"CH{self.selected}"

    def _nselect(self, params: Parameters) -> None:
        if len(params) == 0:
            raise ScpiError(-109)
        params.at_most(1)
        value = parse_number(params.items[0], "", {"MIN": min(self.channels),
                                                     "MAX": max(self.channels)})
        if value != int(value) or int(value) not in self.channels:
            raise ScpiError(-222)
        self.selected = int(value)

    def _nselected(self, params: Parameters) -> str:
        params.at_most(0)
        return f"{self.selected:+d}"

    def _apply(self, params: Parameters) -> None:
        # APPLy CH1,5[,0.5]: select, then voltage and (optionally) current
        if len(params) < 2:
            raise ScpiError(-109)
        params.at_most(3)
        names = [f"CH{n}" for n in self.channels]
        out = self.channels[int(parse_choice(params.items[0], names)[-1])]
        v_low, v_high = self._range(out, "voltage")
        i_low, i_high = self._range(out, "current")
        voltage = parse_number(params.items[1], "V", {"MIN": v_low, "MAX": v_high, "DEF": v_low})
        current = out.current
        if len(params) == 3:
            current = parse_number(params.items[2], "A",
                                   {"MIN": i_low, "MAX": i_high, "DEF": i_high})
        if not (v_low <= voltage <= v_high and i_low <= current <= i_high):
            raise ScpiError(-222)
        self.selected = out.number
        if self.accept_setpoint(f"APPL {voltage:g},{current:g} CH{out.number}"):
            out.voltage, out.current = voltage, current
            self.lies.pop((out.number, "voltage"), None)
            self.lies.pop((out.number, "current"), None)
        elif self.lie_about_setpoints:
            self.lies[(out.number, "voltage")] = voltage
            self.lies[(out.number, "current")] = current
        self.electrical.update()

    def _applied(self, params: Parameters) -> str:
        params.at_most(1)
        out = self.channels[self.selected]
        if len(params):
            names = [f"CH{n}" for n in self.channels]
            out = self.channels[int(parse_choice(params.items[0], names)[-1])]
        voltage = self.lies.get((out.number, "voltage"), out.voltage)
        current = self.lies.get((out.number, "current"), out.current)
        return f'"{format_number(voltage)},{format_number(current)}"'

    def _output(self, params: Parameters) -> None:
        values, channel_list = params.split_channels()
        if len(values) == 0:
            raise ScpiError(-109)
        values.at_most(1)
        state = parse_bool(values.items[0])
        targets = self._targets(channel_list)
        if state and any(out.ovp_tripped or out.ocp_tripped for out in targets):
            # a tripped output stays off until its protection is cleared
            raise ScpiError(-221)
        for out in targets:
            out.output = state
        self.electrical.update()

    def _clear_protection(self, params: Parameters) -> None:
        values, channel_list = params.split_channels()
        values.at_most(0)
        for out in self._targets(channel_list):
            out.ovp_tripped = out.ocp_tripped = False
        self.electrical.update()

    def _measure(self, params: Parameters, quantity: str) -> str:
        values, channel_list = params.split_channels()
        values.at_most(0)
        readings = []
        for out in self._targets(channel_list):
            point = self.electrical.terminal(self.name, out.number)
            if quantity == "voltage":
                readings.append(self.noisy(point.voltage, VOLTAGE_NOISE))
            else:
                readings.append(self.noisy(point.current, CURRENT_NOISE))
        return ",".join(format_number(v) for v in readings)

    def _questionable(self, params: Parameters) -> str:
        # Bit 0: over-voltage tripped, bit 1: over-current tripped (E36300 layout).
        values, channel_list = params.split_channels()
        values.at_most(0)
        words = []
        for out in self._targets(channel_list):
            words.append(str(int(out.ovp_tripped) | int(out.ocp_tripped) << 1))
        return ",".join(words)
