"""The Rigol DP800 twin: the supply's electrical model behind Rigol's command table.

The channel goes in the header (``:SOUR2:VOLT 5``) or as a parameter
(``:OUTP CH2,ON``, ``:MEAS:ALL? CH2``); left out, it is the channel chosen by
``:INST``. Flags answer ``ON``/``OFF`` and trips ``YES``/``NO``; numbers come
with fixed decimals (``5.000``, ``1.0000``). OVP and OCP are off after
``*RST``, each with a level of its own, and trip the output off;
``:OUTP:OVP:CLEAR`` clears the trip only, while ``:SOUR<n>:VOLT:PROT:CLE``
clears it and turns the output back on, as the programming guide warns.
Unknown headers queue ``-113,"Undefined header;keyword cannot be found"``.
"""

from __future__ import annotations

from interlock.sim.dut import Operating
from interlock.sim.electrical import Trip
from interlock.sim.psu import CURRENT_NOISE, VOLTAGE_NOISE, OutputChannel, SimulatedSupply
from interlock.sim.scpi import Parameters, ScpiError, parse_bool, parse_choice, parse_number

# (quantity, the channel's attribute, its enable flag, its trip flag, unit, decimals)
_PROTECTIONS = {
    "OVP": ("ovp", "ovp_enabled", "ovp_tripped", "V", 3),
    "OCP": ("ocp", "ocp_enabled", "ocp_tripped", "A", 3),
}


# The channels that can track each other, per model (programming guide 2-36).
_TRACKING_PAIRS = {"DP832": (1, 2), "DP832A": (1, 2), "DP831": (2, 3), "DP831A": (2, 3)}


class RigolSupply(SimulatedSupply):
    """A DP800 (any model of the rigol-dp800 dialect) answering in Rigol's commands."""

    def reset(self) -> None:
        super().reset()
        # :OUTP:TRAC per channel, where the model has a tracking pair (off after *RST). The
        # twin keeps and answers the state; it does not couple the setpoints.
        self.tracking = dict.fromkeys(_TRACKING_PAIRS.get(self.model.model, ()), False)
        self.ocp: dict[int, float] = {}
        for number, out in self.channels.items():
            out.ovp_enabled = out.ocp_enabled = False  # both off after *RST
            self.ocp[number] = out.rating.max_current * 1.1
        self.errors.clear()  # *RST clears the error queue on a DP800

    def protect(self, channel: int, point: Operating) -> Trip | None:
        out = self.channels[channel]
        if not out.output:
            return None
        if out.ovp_enabled and point.voltage > out.ovp:
            out.output, out.ovp_tripped = False, True
            return Trip("OVP", min(out.voltage, out.ovp), out.current)
        level = self.ocp[channel]
        at_level = point.current > level or (point.regulation == "CC" and out.current >= level)
        if out.ocp_enabled and at_level:
            out.output, out.ocp_tripped = False, True
            return Trip("OCP", out.voltage, out.current)
        return None

    # --- channels ------------------------------------------------------------

    def _by_suffix(self, params: Parameters) -> OutputChannel:
        number = params.suffixes[0] if params.suffixes else None
        if number is None:
            return self.channels[self.selected]
        if number not in self.channels:
            raise ScpiError(-114)
        return self.channels[number]

    def _by_name(self, text: str | None) -> OutputChannel:
        if text is None:
            return self.channels[self.selected]
        names = [f"CH{n}" for n in self.channels]
        return self.channels[int(parse_choice(text, names)[2:])]

    def _named(self, params: Parameters, extra: int = 0) -> tuple[OutputChannel, list[str]]:
        """``[CHn,]value...``: the channel named first (else the chosen one), the rest."""
        items = list(params.items)
        params.at_most(1 + extra)
        if items and items[0].strip().upper().startswith("CH"):
            return self._by_name(items[0]), items[1:]
        if len(items) > extra:
            raise ScpiError(-108)
        return self._by_name(None), items

    # --- values ----------------------------------------------------------------

    def _store(self, out: OutputChannel, attribute: str, text: str, unit: str, what: str) -> None:
        low, high = self._range(out, attribute)
        if attribute == "ocp":
            low, high = 0.001, out.rating.max_current * 1.1
        value = parse_number(text, unit, {"MIN": low, "MAX": high, "DEF": low})
        if not low <= value <= high:
            raise ScpiError(-222)
        if attribute == "ocp":
            self.ocp[out.number] = value
        elif self.accept_setpoint(f"{what} {value:g} CH{out.number}"):
            setattr(out, attribute, value)
            self.lies.pop((out.number, attribute), None)
        elif self.lie_about_setpoints:
            self.lies[(out.number, attribute)] = value
        self.electrical.update()

    def _held(self, out: OutputChannel, attribute: str) -> float:
        return self.lies.get((out.number, attribute), getattr(out, attribute))

    def _source_set(self, params: Parameters, attribute: str, unit: str) -> None:
        if len(params) == 0:
            raise ScpiError(-109)
        params.at_most(1)
        self._store(self._by_suffix(params), attribute, params.items[0], unit, attribute)

    def _source_get(self, params: Parameters, attribute: str, decimals: int) -> str:
        params.at_most(1)
        out = self._by_suffix(params)
        if len(params):
            low, high = self._range(out, attribute)
            value = parse_number(params.items[0], "", {"MIN": low, "MAX": high})
        else:
            value = self._held(out, attribute)
        return f"{value:.{decimals}f}"

    # --- commands ------------------------------------------------------------

    def _register(self) -> None:
        c = self.commands
        c.undefined_detail = "keyword cannot be found"
        c.command("INSTrument[:SELect]", self._select)
        c.query("INSTrument[:SELect]", self._selected_rating)
        c.command("INSTrument:NSELect", self._nselect)
        c.query("INSTrument:NSELect", lambda p: f"{self.selected}")
        c.command("APPLy", self._apply)
        c.query("APPLy", self._applied)
        for quantity, attribute, unit, decimals in (
            ("VOLTage", "voltage", "V", 3),
            ("CURRent", "current", "A", 4),
        ):
            level = f"[SOURce#:]{quantity}[:LEVel][:IMMediate][:AMPLitude]"
            c.command(level, lambda p, a=attribute, u=unit: self._source_set(p, a, u))
            c.query(level, lambda p, a=attribute, d=decimals: self._source_get(p, a, d))
        for quantity, name in (("VOLTage", "OVP"), ("CURRent", "OCP")):
            attribute, enabled, tripped, unit, decimals = _PROTECTIONS[name]
            prot = f"[SOURce#:]{quantity}:PROTection"
            if name == "OVP":
                c.command(f"{prot}[:LEVel]", lambda p, u=unit: self._source_set(p, "ovp", u))
                c.query(f"{prot}[:LEVel]", lambda p: self._source_get(p, "ovp", 3))
            else:
                c.command(f"{prot}[:LEVel]", lambda p: self._prot_level_by_suffix(p))
                c.query(f"{prot}[:LEVel]", lambda p: f"{self.ocp[self._by_suffix(p).number]:.3f}")
            c.command(f"{prot}:STATe", lambda p, e=enabled: self._prot_state_by_suffix(p, e))
            c.query(f"{prot}:STATe", lambda p, e=enabled: _word(getattr(self._by_suffix(p), e)))
            c.query(f"{prot}:TRIP", lambda p, t=tripped: _yes(getattr(self._by_suffix(p), t)))
            # Clears the trip and turns the output back on (programming guide 2-86, 2-93).
            c.command(f"{prot}:CLEar", lambda p: self._clear_and_restore(self._by_suffix(p)))
            out = f"OUTPut:{name}"
            c.command(f"{out}[:STATe]", lambda p, e=enabled: self._output_flag(p, e))
            c.query(f"{out}[:STATe]", lambda p, e=enabled: self._named_word(p, e))
            c.command(f"{out}:VALue", lambda p, n=name: self._output_level(p, n))
            c.query(f"{out}:VALue", lambda p, n=name: self._output_level_query(p, n))
            for node in ("QUEStion", "ALARm"):
                c.query(f"{out}:{node}", lambda p, t=tripped: self._named_yes(p, t))
            c.command(f"{out}:CLEar", lambda p: self._clear_label(p))
        c.command("OUTPut[:STATe]", self._output)
        c.query("OUTPut[:STATe]", lambda p: self._named_word(p, "output"))
        c.command("OUTPut:TRACk[:STATe]", self._track)
        c.query("OUTPut:TRACk[:STATe]", self._tracked)
        c.query("OUTPut:MODE", self._mode)
        c.query("OUTPut:CVCC", self._mode)
        c.query("MEASure[:VOLTage][:DC]", lambda p: self._read(p, "voltage"))
        c.query("MEASure:CURRent[:DC]", lambda p: self._read(p, "current"))
        c.query("MEASure:POWEr[:DC]", lambda p: self._read(p, "power"))
        c.query("MEASure:ALL[:DC]", lambda p: self._read(p, "all"))
        c.query("STATus:QUEStionable:INSTrument:ISUMmary#:CONDition", self._isum)
        c.command("SYSTem:KLOCk:STATe", self._rwlock)
        c.query("SYSTem:KLOCk:STATe", lambda p: _word(self.panel_locked))
        c.query("SYSTem:RWLock[:STATe]", lambda p: _word(self.panel_locked))

    def _select(self, params: Parameters) -> None:
        if len(params) == 0:
            raise ScpiError(-109)
        params.at_most(1)
        self.selected = self._by_name(params.items[0]).number

    def _selected_rating(self, params: Parameters) -> str:
        params.at_most(0)
        return _rating(self.channels[self.selected])

    def _apply(self, params: Parameters) -> None:
        # :APPL CH1,5[,1]: both values checked before either is set
        if len(params) < 2:
            raise ScpiError(-109)
        params.at_most(3)
        out = self._by_name(params.items[0])
        v_low, v_high = self._range(out, "voltage")
        i_low, i_high = self._range(out, "current")
        volts = parse_number(params.items[1], "V", {"MIN": v_low, "MAX": v_high})
        amps = out.current
        if len(params) == 3:
            amps = parse_number(params.items[2], "A", {"MIN": i_low, "MAX": i_high})
        if not (v_low <= volts <= v_high and i_low <= amps <= i_high):
            raise ScpiError(-222)
        self._store(out, "voltage", params.items[1], "V", "APPL")
        if len(params) == 3:
            self._store(out, "current", params.items[2], "A", "APPL")

    def _applied(self, params: Parameters) -> str:
        out, rest = self._named(params, extra=1)
        volts, amps = self._held(out, "voltage"), self._held(out, "current")
        if rest:
            which = parse_choice(rest[0], ["VOLTage", "CURRent"])
            return f"{volts:.3f}" if which == "VOLTAGE" else f"{amps:.4f}"
        return f"{_rating(out)},{volts:.3f},{amps:.4f}"

    def _output(self, params: Parameters) -> None:
        out, rest = self._named(params, extra=1)
        if not rest:
            raise ScpiError(-109)
        on = parse_bool(rest[0])
        if on and (out.ovp_tripped or out.ocp_tripped):
            raise ScpiError(-221)  # a tripped output stays off until its trip is cleared
        out.output = on
        self.electrical.update()

    def _track(self, params: Parameters) -> None:
        out, rest = self._named(params, extra=1)
        if not rest:
            raise ScpiError(-109)
        if out.number not in self.tracking:
            raise ScpiError(-221)  # no tracking on this channel: settings conflict
        self.tracking[out.number] = parse_bool(rest[0])

    def _tracked(self, params: Parameters) -> str:
        out, _ = self._named(params)
        if out.number not in self.tracking:
            return "NONE"
        return _word(self.tracking[out.number])

    def _named_word(self, params: Parameters, attribute: str) -> str:
        out, _ = self._named(params)
        return _word(getattr(out, attribute))

    def _named_yes(self, params: Parameters, attribute: str) -> str:
        out, _ = self._named(params)
        return _yes(getattr(out, attribute))

    def _output_flag(self, params: Parameters, attribute: str) -> None:
        out, rest = self._named(params, extra=1)
        if not rest:
            raise ScpiError(-109)
        setattr(out, attribute, parse_bool(rest[0]))
        self.electrical.update()

    def _output_level(self, params: Parameters, name: str) -> None:
        out, rest = self._named(params, extra=1)
        if not rest:
            raise ScpiError(-109)
        attribute, _, _, unit, _ = _PROTECTIONS[name]
        self._store(out, attribute, rest[0], unit, f"OUTP:{name}:VAL")

    def _output_level_query(self, params: Parameters, name: str) -> str:
        out, _ = self._named(params)
        decimals = _PROTECTIONS[name][4]
        value = out.ovp if name == "OVP" else self.ocp[out.number]
        return f"{value:.{decimals}f}"

    def _prot_level_by_suffix(self, params: Parameters) -> None:
        if len(params) == 0:
            raise ScpiError(-109)
        params.at_most(1)
        self._store(self._by_suffix(params), "ocp", params.items[0], "A", "CURR:PROT")

    def _prot_state_by_suffix(self, params: Parameters, attribute: str) -> None:
        if len(params) == 0:
            raise ScpiError(-109)
        params.at_most(1)
        setattr(self._by_suffix(params), attribute, parse_bool(params.items[0]))
        self.electrical.update()

    def _clear_label(self, params: Parameters) -> None:
        out, _ = self._named(params)
        out.ovp_tripped = out.ocp_tripped = False
        self.electrical.update()

    def _clear_and_restore(self, out: OutputChannel) -> None:
        if out.ovp_tripped or out.ocp_tripped:
            out.ovp_tripped = out.ocp_tripped = False
            out.output = True
        self.electrical.update()

    def _mode(self, params: Parameters) -> str:
        out, _ = self._named(params)
        if not out.output:
            return "CV"  # a DP800 says CV for an output that is off
        return self.electrical.terminal(self.name, out.number).regulation

    def _read(self, params: Parameters, what: str) -> str:
        out, _ = self._named(params)
        point = self.electrical.terminal(self.name, out.number)
        volts = self.noisy(point.voltage, VOLTAGE_NOISE)
        amps = self.noisy(point.current, CURRENT_NOISE)
        if what == "voltage":
            return f"{volts:.4f}"
        if what == "current":
            return f"{amps:.4f}"
        if what == "power":
            return f"{volts * amps:.3f}"
        return f"{volts:.4f},{amps:.4f},{volts * amps:.3f}"

    def _isum(self, params: Parameters) -> str:
        # bit 0: CC, bit 1: CV; neither while the output is off
        params.at_most(0)
        out = self._by_suffix(params)
        if not out.output:
            return "0"
        regulation = self.electrical.terminal(self.name, out.number).regulation
        return "1" if regulation == "CC" else "2"


def _word(state: bool) -> str:
    return "ON" if state else "OFF"


def _yes(state: bool) -> str:
    return "YES" if state else "NO"


def _rating(out: OutputChannel) -> str:
    return f"CH{out.number}:{out.rating.max_voltage:g}V/{out.rating.max_current:g}A"
