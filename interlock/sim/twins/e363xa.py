"""The Keysight (HP/Agilent) E3631A, E3632A and E3633A twins, over RS-232 on a pty.

Both listen to the serial line only in remote: before ``SYST:REM`` (or ``SYST:RWL``)
every line is refused with error 550 ("Command not allowed in local") and nothing is
answered; ``SYST:LOC`` returns to local. Numbers read ``+5.00000000E+00``; ``APPL?``
answers a quoted pair (``"5.000000,1.000000"``). A value beyond the programming range
(103 % of the rating) is refused with -222, the setting kept.

- E3631A: outputs P6V, P25V and N25V (1, 2, 3; N25V takes negative volts), one
  selected at a time (``INST:NSEL``, ``INST P25V``, ``APPL``), one output switch for
  all three (``OUTP``), no OVP or OCP, ``OUTP:TRAC`` coupling N25V to P25V.
- E3632A/E3633A: one output in a LOW or HIGH range (``VOLT:RANG``, LOW after ``*RST``),
  OVP and OCP at levels of their own, both on after ``*RST``; a trip turns the output
  off, and clearing it (``VOLT:PROT:CLE``, ``CURR:PROT:CLE``) turns it back on, as the
  guide says the output is restored to its state before the trip.
"""

from __future__ import annotations

import re

from interlock.sim.dut import Operating
from interlock.sim.electrical import Trip
from interlock.sim.psu import CURRENT_NOISE, VOLTAGE_NOISE, OutputChannel, SimulatedSupply
from interlock.sim.scpi import (
    Parameters,
    ScpiError,
    format_number,
    parse_bool,
    parse_choice,
    parse_number,
)

_REMOTE = re.compile(r":?SYST(?:EM)?:(?:REM(?:OTE)?|RWL(?:OCK)?)", re.IGNORECASE)
_LOCAL = re.compile(r":?SYST(?:EM)?:LOC(?:AL)?", re.IGNORECASE)
NOT_IN_LOCAL = 550
OVER_PROGRAMMING = 1.03  # the programming range goes 3 % beyond the rating


class _SerialRemote(SimulatedSupply):
    """What both share: remote only after SYST:REM, numbers in Keysight's format."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.remote = False  # power-on: front panel in charge
        super().__init__(*args, **kwargs)

    def execute(self, line: str) -> str | None:
        text = line.strip()
        with self.lock:
            if _REMOTE.fullmatch(text):
                self.remote = True
                self.panel_locked = text.upper().endswith(("RWL", "RWLOCK"))
                return None
            if not self.remote:
                self.errors.push(NOT_IN_LOCAL)
                return None
            if _LOCAL.fullmatch(text):
                self.remote = self.panel_locked = False
                return None
            return self.commands.execute(line)

    def _range(self, out: OutputChannel, attribute: str) -> tuple[float, float]:
        rating = out.rating
        if attribute == "voltage":
            return rating.min_voltage * OVER_PROGRAMMING, rating.max_voltage * OVER_PROGRAMMING
        if attribute == "current":
            return 0.0, rating.max_current * OVER_PROGRAMMING
        return 0.0, rating.max_ovp

    def _measured(self, out: OutputChannel, quantity: str) -> str:
        point = self.electrical.terminal(self.name, out.number)
        if quantity == "voltage":
            return format_number(self.noisy(point.voltage, VOLTAGE_NOISE))
        return format_number(self.noisy(point.current, CURRENT_NOISE))

    def _setting(self, params: Parameters, attribute: str) -> str:
        params.at_most(1)
        out = self.channels[self.selected]
        if len(params):  # VOLT? MAX: the programming range's end
            low, high = self._range(out, attribute)
            return format_number(parse_number(params.items[0], "", {"MIN": low, "MAX": high}))
        return format_number(self.lies.get((out.number, attribute), getattr(out, attribute)))

    def _levels(self) -> None:
        c = self.commands
        for quantity, attribute, unit in (("VOLTage", "voltage", "V"), ("CURRent", "current", "A")):
            level = f"[SOURce:]{quantity}[:LEVel][:IMMediate][:AMPLitude]"
            c.command(level, lambda p, a=attribute, u=unit, q=quantity: self._set_value(p, a, u, q))
            c.query(level, lambda p, a=attribute: self._setting(p, a))


class E3631aSupply(_SerialRemote):
    """An E3631A: three outputs, one selected at a time, one switch for all."""

    NAMES = ("P6V", "P25V", "N25V")

    def reset(self) -> None:
        super().reset()
        self.tracking = False
        for out in self.channels.values():
            out.ovp_enabled = False  # no protection to trip
            out.ovp = max(abs(out.rating.min_voltage), out.rating.max_voltage) * 2

    def protect(self, channel: int, point: Operating) -> Trip | None:
        return None  # nothing to trip: no OVP, no OCP

    def _register(self) -> None:
        c = self.commands
        c.command("INSTrument[:SELect]", self._select_name)
        c.query("INSTrument[:SELect]", lambda p: self.NAMES[self.selected - 1])
        c.command("INSTrument:NSELect", self._nselect)
        c.query("INSTrument:NSELect", lambda p: str(self.selected))
        c.command("APPLy", self._apply)
        c.query("APPLy", self._applied)
        self._levels()
        c.command("OUTPut[:STATe]", self._output_all)
        c.query("OUTPut[:STATe]", lambda p: str(int(self.channels[1].output)))
        c.command("OUTPut:TRACk[:STATe]", self._track)
        c.query("OUTPut:TRACk[:STATe]", lambda p: str(int(self.tracking)))
        c.query("MEASure[:SCALar]:VOLTage[:DC]", lambda p: self._measure_named(p, "voltage"))
        c.query("MEASure[:SCALar]:CURRent[:DC]", lambda p: self._measure_named(p, "current"))

    def _named(self, item: str) -> OutputChannel:
        return self.channels[self.NAMES.index(parse_choice(item, list(self.NAMES))) + 1]

    def _select_name(self, params: Parameters) -> None:
        if len(params) == 0:
            raise ScpiError(-109)
        params.at_most(1)
        self.selected = self._named(params.items[0]).number

    def _apply(self, params: Parameters) -> None:
        # APPL P25V[,volts[,amps]]: select, then set what is given
        if len(params) == 0:
            raise ScpiError(-109)
        params.at_most(3)
        out = self._named(params.items[0])
        v_low, v_high = self._range(out, "voltage")
        i_low, i_high = self._range(out, "current")
        voltage, current = out.voltage, out.current
        if len(params) > 1:
            voltage = parse_number(params.items[1], "V", {"MIN": 0.0, "MAX": v_high, "DEF": 0.0})
        if len(params) > 2:
            current = parse_number(params.items[2], "A", {"MIN": 0.0, "MAX": i_high})
        if not (v_low <= voltage <= v_high and i_low <= current <= i_high):
            raise ScpiError(-222)
        self.selected = out.number
        if len(params) > 1 and self.accept_setpoint(f"APPL {out.number} {voltage:g},{current:g}"):
            out.voltage, out.current = voltage, current
        self.electrical.update()

    def _applied(self, params: Parameters) -> str:
        params.at_most(1)
        out = self._named(params.items[0]) if len(params) else self.channels[self.selected]
        return f'"{out.voltage:.6f},{out.current:.6f}"'

    def _output_all(self, params: Parameters) -> None:
        if len(params) == 0:
            raise ScpiError(-109)
        params.at_most(1)
        state = parse_bool(params.items[0])
        for out in self.channels.values():  # one switch: every output at once
            out.output = state
        self.electrical.update()

    def _track(self, params: Parameters) -> None:
        if len(params) == 0:
            raise ScpiError(-109)
        params.at_most(1)
        self.tracking = parse_bool(params.items[0])
        if self.tracking:  # N25V follows P25V
            self.channels[3].voltage = -self.channels[2].voltage
            self.electrical.update()

    def _measure_named(self, params: Parameters, quantity: str) -> str:
        params.at_most(1)
        out = self._named(params.items[0]) if len(params) else self.channels[self.selected]
        return self._measured(out, quantity)


# model -> (LOW range V, A), (HIGH range V, A)
_RANGES = {"E3632A": ((15.0, 7.0), (30.0, 4.0)), "E3633A": ((8.0, 20.0), (20.0, 10.0))}
# model -> the OCP level after *RST, also the highest it takes (its range is not known)
_OCP = {"E3632A": 7.5, "E3633A": 22.0}
_RANGE_NAMES = {"E3632A": ("P15V", "P30V"), "E3633A": ("P8V", "P20V")}


class E3632aSupply(_SerialRemote):
    """An E3632A or E3633A: one output, two ranges, OVP and OCP at levels of their own."""

    def reset(self) -> None:
        super().reset()
        self.high = False  # *RST: the LOW range
        out = self.channels[1]
        out.current = _RANGES[self.model.model][0][1]
        out.ovp = out.rating.max_ovp
        out.ovp_enabled = out.ocp_enabled = True
        self.ocp_level = _OCP[self.model.model]
        self.before_trip = False  # the output's state when it tripped

    def _range(self, out: OutputChannel, attribute: str) -> tuple[float, float]:
        volts, amps = _RANGES[self.model.model][int(self.high)]
        if attribute == "voltage":
            return 0.0, volts * OVER_PROGRAMMING
        if attribute == "current":
            return 0.0, amps * OVER_PROGRAMMING
        if attribute == "ocp":
            return 0.0, _OCP[self.model.model]
        return 0.0, out.rating.max_ovp

    def protect(self, channel: int, point: Operating) -> Trip | None:
        out = self.channels[channel]
        if not out.output:
            return None
        if out.ovp_enabled and point.voltage > out.ovp:
            out.output, out.ovp_tripped, self.before_trip = False, True, True
            return Trip("OVP", min(out.voltage, out.ovp), out.current)
        over = point.current >= self.ocp_level
        if out.ocp_enabled and (
            over or (point.regulation == "CC" and out.current >= self.ocp_level)
        ):
            out.output, out.ocp_tripped, self.before_trip = False, True, True
            return Trip("OCP", out.voltage, out.current)
        return None

    def settings(self) -> dict[int, dict[str, float | bool]]:
        found = super().settings()
        found[1]["ocp_level"] = self.ocp_level
        return found

    def _register(self) -> None:
        c = self.commands
        self._levels()
        c.command("APPLy", self._apply)
        c.query(
            "APPLy", lambda p: f'"{self.channels[1].voltage:.5f},{self.channels[1].current:.5f}"'
        )
        c.command("[SOURce:]VOLTage:RANGe", self._set_range)
        c.query("[SOURce:]VOLTage:RANGe", lambda p: _RANGE_NAMES[self.model.model][self.high])
        c.command(
            "[SOURce:]VOLTage:PROTection[:LEVel]",
            lambda p: self._set_value(p, "ovp", "V", "VOLT:PROT"),
        )
        c.query("[SOURce:]VOLTage:PROTection[:LEVel]", lambda p: self._setting(p, "ovp"))
        c.command("[SOURce:]CURRent:PROTection[:LEVel]", self._set_ocp)
        c.query("[SOURce:]CURRent:PROTection[:LEVel]", lambda p: format_number(self.ocp_level))
        for quantity, enabled, tripped in (
            ("VOLTage", "ovp_enabled", "ovp_tripped"),
            ("CURRent", "ocp_enabled", "ocp_tripped"),
        ):
            state = f"[SOURce:]{quantity}:PROTection:STATe"
            c.command(state, lambda p, a=enabled: self._set_flag(p, a))
            c.query(state, lambda p, a=enabled: self._flags(p, a))
            c.query(
                f"[SOURce:]{quantity}:PROTection:TRIPped", lambda p, a=tripped: self._flags(p, a)
            )
            c.command(
                f"[SOURce:]{quantity}:PROTection:CLEar", lambda p, a=tripped: self._clear(p, a)
            )
        c.command("OUTPut[:STATe]", self._output)
        c.query("OUTPut[:STATe]", lambda p: self._flags(p, "output"))
        c.query(
            "MEASure[:SCALar]:VOLTage[:DC]", lambda p: self._measured(self.channels[1], "voltage")
        )
        c.query(
            "MEASure[:SCALar]:CURRent[:DC]", lambda p: self._measured(self.channels[1], "current")
        )
        c.query("STATus:QUEStionable:CONDition", lambda p: self._regulation())

    def _set_range(self, params: Parameters) -> None:
        if len(params) == 0:
            raise ScpiError(-109)
        params.at_most(1)
        low, high = _RANGE_NAMES[self.model.model]
        choice = parse_choice(params.items[0], [low, high, "LOW", "HIGH"])
        self.high = choice in (high, "HIGH")
        out = self.channels[1]
        v_max, i_max = (r * OVER_PROGRAMMING for r in _RANGES[self.model.model][self.high])
        out.voltage, out.current = min(out.voltage, v_max), min(out.current, i_max)
        self.electrical.update()

    def _set_ocp(self, params: Parameters) -> None:
        if len(params) == 0:
            raise ScpiError(-109)
        params.at_most(1)
        low, high = self._range(self.channels[1], "ocp")
        value = parse_number(params.items[0], "A", {"MIN": low, "MAX": high})
        if not low <= value <= high:
            raise ScpiError(-222)
        self.ocp_level = value
        self.electrical.update()

    def _apply(self, params: Parameters) -> None:
        if len(params) == 0:
            raise ScpiError(-109)
        params.at_most(2)
        out = self.channels[1]
        v_low, v_high = self._range(out, "voltage")
        i_low, i_high = self._range(out, "current")
        voltage = parse_number(params.items[0], "V", {"MIN": v_low, "MAX": v_high})
        current = out.current
        if len(params) > 1:
            current = parse_number(params.items[1], "A", {"MIN": i_low, "MAX": i_high})
        if not (v_low <= voltage <= v_high and i_low <= current <= i_high):
            raise ScpiError(-222)
        if self.accept_setpoint(f"APPL {voltage:g},{current:g}"):
            out.voltage, out.current = voltage, current
        self.electrical.update()

    def _clear(self, params: Parameters, tripped: str) -> None:
        params.at_most(0)
        out = self.channels[1]
        if getattr(out, tripped):
            setattr(out, tripped, False)
            if not (out.ovp_tripped or out.ocp_tripped):
                out.output, self.before_trip = self.before_trip, False  # back as it was
                if out.output:
                    self.truth.event(
                        "output-restored",
                        f"{self.name}: a protection clear turned the output back on at "
                        f"{out.voltage:g} V",
                        instrument=self.name,
                        volts=out.voltage,
                    )
        self.electrical.update()

    def _regulation(self) -> str:
        # 0 off or unregulated, 1 CC, 2 CV (the guide's STAT:QUES:COND?)
        if not self.channels[1].output:
            return "0"
        point = self.electrical.terminal(self.name, 1)
        return {"CC": "1", "CV": "2"}.get(point.regulation, "0")
