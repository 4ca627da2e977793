"""A multi-output SCPI power supply (Keysight E36300 family dialect) over VISA.

Settings are programmed and read back in one exchange (``VOLT 5,(@2);:VOLT?
(@2)``): the readback is what the instrument holds right after the command,
and the pair costs one round trip. Several channels are measured in one
exchange with a channel list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from interlock.drivers.scpi import ScpiDevice


def channel_list(channels: Sequence[int]) -> str:
    return "(@" + ",".join(map(str, channels)) + ")"


@dataclass(frozen=True)
class ChannelSettings:
    voltage: float
    current_limit: float
    output: bool
    ovp: float
    ocp: bool  # over-current protection armed
    tripped: bool  # its over-voltage or over-current protection


class Reading(NamedTuple):
    """What the monitor reads of a live channel."""

    volts: float
    amps: float
    tripped: bool  # its over-voltage or over-current protection
    protected: bool  # over-current protection still armed


class ScpiPowerSupply(ScpiDevice):
    def program_voltage(self, channel: int, volts: float, **context) -> float:
        """Set the voltage setpoint and return what the supply then holds."""
        ch = channel_list((channel,))
        reply = self.set_and_ask(
            f"VOLT {volts:.6g},{ch};:VOLT? {ch}", quantity="voltage", value=volts, **context
        )
        return self.numbers(reply, 1, "VOLT?")[0]

    def program_current_limit(self, channel: int, amps: float, **context) -> float:
        ch = channel_list((channel,))
        reply = self.set_and_ask(
            f"CURR {amps:.6g},{ch};:CURR? {ch}", quantity="current_limit", value=amps, **context
        )
        return self.numbers(reply, 1, "CURR?")[0]

    def program_ovp(self, channel: int, volts: float, **context) -> float:
        ch = channel_list((channel,))
        reply = self.set_and_ask(
            f"VOLT:PROT {volts:.6g},{ch};:VOLT:PROT? {ch}", quantity="ovp", value=volts, **context
        )
        return self.numbers(reply, 1, "VOLT:PROT?")[0]

    def enable_ocp(self, channel: int, **context) -> bool:
        """Arm over-current protection (the output trips off in CC); True if it reads armed.

        The E36300 series trips at the current limit itself: there is no separate level.
        """
        ch = channel_list((channel,))
        reply = self.set_and_ask(
            f"CURR:PROT:STAT ON,{ch};:CURR:PROT:STAT? {ch}", quantity="ocp", value=True, **context
        )
        return self.flags(reply, 1, "CURR:PROT:STAT?")[0]

    def set_output(self, channel: int, on: bool, **context) -> bool:
        ch = channel_list((channel,))
        reply = self.set_and_ask(
            f"OUTP {'ON' if on else 'OFF'},{ch};:OUTP? {ch}", quantity="output", value=on, **context
        )
        return self.flags(reply, 1, "OUTP?")[0]

    def outputs_off(self, channels: Sequence[int], **context) -> list[bool]:
        """Turn several outputs off in one exchange; return their states read back.

        For the safe state: the line goes out even when the journal cannot be
        written (see :meth:`turn_off_and_ask`).
        """
        ch = channel_list(channels)
        reply = self.turn_off_and_ask(
            f"OUTP OFF,{ch};:OUTP? {ch}", quantity="output", value=False, **context
        )
        return self.flags(reply, len(channels), "OUTP?")

    def clear_protection(self, channel: int, **context) -> None:
        self.command(f"OUTP:PROT:CLE {channel_list((channel,))}", **context)

    def measure(self, channels: Sequence[int]) -> list[tuple[float, float]]:
        """Measured (volts, amps) of each channel, in one exchange."""
        ch = channel_list(channels)
        reply = self.ask(f"MEAS:VOLT? {ch};:MEAS:CURR? {ch}")
        volts, amps = self.split_compound(reply, 2, "MEAS?")
        n = len(channels)
        return list(
            zip(
                self.numbers(volts, n, "MEAS:VOLT?"),
                self.numbers(amps, n, "MEAS:CURR?"),
                strict=True,
            )
        )

    def settings(self, channels: Sequence[int]) -> list[ChannelSettings]:
        """Everything the supply holds for these channels, in one exchange."""
        ch = channel_list(channels)
        reply = self.ask(
            f"VOLT? {ch};:CURR? {ch};:OUTP? {ch};:VOLT:PROT? {ch};:CURR:PROT:STAT? {ch};"
            f":VOLT:PROT:TRIP? {ch};:CURR:PROT:TRIP? {ch}"
        )
        volts, amps, outputs, ovps, ocps, ovp_trips, ocp_trips = self.split_compound(
            reply, 7, "settings"
        )
        n = len(channels)
        return [
            ChannelSettings(volt, amp, output, ovp, ocp, ovp_tripped or ocp_tripped)
            for volt, amp, output, ovp, ocp, ovp_tripped, ocp_tripped in zip(
                self.numbers(volts, n, "VOLT?"),
                self.numbers(amps, n, "CURR?"),
                self.flags(outputs, n, "OUTP?"),
                self.numbers(ovps, n, "VOLT:PROT?"),
                self.flags(ocps, n, "CURR:PROT:STAT?"),
                self.flags(ovp_trips, n, "VOLT:PROT:TRIP?"),
                self.flags(ocp_trips, n, "CURR:PROT:TRIP?"),
                strict=True,
            )
        ]

    def poll(self, channels: Sequence[int]) -> list[Reading]:
        """Measured volts, amps and protection state of each channel, in one exchange."""
        ch = channel_list(channels)
        reply = self.ask(
            f"MEAS:VOLT? {ch};:MEAS:CURR? {ch};:VOLT:PROT:TRIP? {ch};:CURR:PROT:TRIP? {ch};"
            f":CURR:PROT:STAT? {ch}"
        )
        volts, amps, ovp, ocp, armed = self.split_compound(reply, 5, "poll")
        n = len(channels)
        return [
            Reading(v, a, ovp_tripped or ocp_tripped, ocp_armed)
            for v, a, ovp_tripped, ocp_tripped, ocp_armed in zip(
                self.numbers(volts, n, "MEAS:VOLT?"),
                self.numbers(amps, n, "MEAS:CURR?"),
                self.flags(ovp, n, "VOLT:PROT:TRIP?"),
                self.flags(ocp, n, "CURR:PROT:TRIP?"),
                self.flags(armed, n, "CURR:PROT:STAT?"),
                strict=True,
            )
        ]
