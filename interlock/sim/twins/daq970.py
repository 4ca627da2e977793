"""The DAQ970A / 34972A twin: a mainframe with a 34903A-class actuator in slot 1 and
nothing in slots 2 and 3, answering the ROUTe and SYSTem lines of its guide.

A channel list naming a channel that does not exist (``(@121)``, or any channel
of an empty slot) is refused whole: -222 queued, nothing switched. ``*RST``
opens every actuator channel. ``ROUT:CLOS?`` answers what was commanded, never
the contacts. Power-on recall is on (``MEM:STAT:REC:AUTO 1``, the factory
setting): :meth:`power_cycle` keeps the relays as they were unless it is off.
"""

from __future__ import annotations

from collections.abc import Mapping

from interlock.sim.instrument import IdentityString, ScpiInstrument
from interlock.sim.scpi import Parameters, ScpiError, parse_bool, parse_channel_list
from interlock.sim.switch import SwitchRelays

SLOT = 1
RELAYS = 20
MODULE = "34903A"


class Daq970Switch(ScpiInstrument):
    def __init__(  # type: ignore[no-untyped-def]
        self,
        name: str,
        identity: IdentityString,
        electrical,
        truth,
        *,
        relays: Mapping[int, str] | None = None,
        rng=None,
        module: str = MODULE,
    ) -> None:
        super().__init__(name, identity, electrical, truth, rng=rng)
        self.relays = SwitchRelays(name, RELAYS, relays or {}, electrical, truth)
        self.module = module
        self.recall_on_power = True
        self.cycles = dict.fromkeys(range(1, RELAYS + 1), 0)
        self._register()

    def _register(self) -> None:
        c = self.commands
        c.command("ROUTe:CLOSe", lambda p: self._switch(p, True))
        c.command("ROUTe:CLOSe:EXCLusive", self._exclusive)
        c.command("ROUTe:OPEN", lambda p: self._switch(p, False))
        c.query("ROUTe:CLOSe", lambda p: self._state(p, True))
        c.query("ROUTe:OPEN", lambda p: self._state(p, False))
        c.query("SYSTem:CTYPe", self._card_type)
        c.query("DIAGnostic:RELay:CYCLes", self._cycles)
        c.command("MEMory:STATe:RECall:AUTO", self._set_recall)
        c.query("MEMory:STATe:RECall:AUTO", lambda p: str(int(self.recall_on_power)))

    def _channels(self, params: Parameters) -> list[int]:
        if len(params) != 1:
            raise ScpiError(-108 if len(params) > 1 else -109)
        valid = [SLOT * 100 + n for n in range(1, RELAYS + 1)] if self.module != "0" else []
        return [c - SLOT * 100 for c in parse_channel_list(params.items[0], valid)]

    def _switch(self, params: Parameters, closed: bool) -> None:
        channels = self._channels(params)  # the whole list checked before anything moves
        for channel in channels:
            if (channel in self.relays.closed) != closed:
                self.cycles[channel] += closed
                self.relays.set(channel, closed)

    def _exclusive(self, params: Parameters) -> None:
        channels = self._channels(params)
        for channel in sorted(self.relays.closed - set(channels)):
            self.relays.set(channel, False)
        self._switch(params, True)

    def _state(self, params: Parameters, closed: bool) -> str:
        return ",".join(
            str(int((c in self.relays.closed) == closed)) for c in self._channels(params)
        )

    def _card_type(self, params: Parameters) -> str:
        if len(params) != 1:
            raise ScpiError(-109)
        try:
            slot = int(params.items[0])
        except ValueError:
            raise ScpiError(-104) from None
        if slot not in (100, 200, 300):
            raise ScpiError(-222)
        if slot == SLOT * 100 and self.module != "0":
            return f"HEWLETT-PACKARD,{self.module},0,1.0"
        return "HEWLETT-PACKARD,0,0,0"

    def _cycles(self, params: Parameters) -> str:
        return ",".join(f"{self.cycles[c]:+d}" for c in self._channels(params))

    def _set_recall(self, params: Parameters) -> None:
        if len(params) != 1:
            raise ScpiError(-109)
        self.recall_on_power = parse_bool(params.items[0])

    def reset(self) -> None:
        for channel in sorted(self.relays.closed):
            self.relays.set(channel, False)

    def power_cycle(self) -> None:
        """Off and on again: the relays as they were if power-on recall is on."""
        if not self.recall_on_power:
            self.reset()
        self.errors.clear()
