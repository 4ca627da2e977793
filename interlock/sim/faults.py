"""Fault specifications: the one syntax for ``--fault``, ``inject`` and ``clear``.

A SPEC is ``KIND`` or ``KIND:ARGUMENTS``; names of nets, instruments and relays
are the ones of ``bench.toml``::

    short:NET                 the net is shorted to ground (10 mohm)
    open:NET                  the net is open: nothing is connected behind it
    swap:NET1,NET2            miswired break-out box: whatever the bench wires
                              to NET1 (supply and meter) reaches NET2 and back
    stray:NET=VOLTS           a stray voltage sits on the net (a rail back-fed
                              from elsewhere; it sources at most 100 mA)
    wrong-dut[:OHMS]          another board is mounted: its ID resistor reads
                              OHMS (default 4.7 kohm; "4700", "4.7k", "4.7 kohm")
    identity:INSTR=MAKER,MODEL,SERIAL[,FIRMWARE]
                              the instrument answers *IDN? with that identity
    ignore-setpoint:INSTR     the instrument accepts setpoints (VOLT, CURR,
                              VOLT:PROT, APPL) without error and keeps its old
                              values; its queries tell the truth, so only a
                              read-back shows it
    ignore-setpoint:INSTR=lie the same, but its queries echo what was commanded:
                              only a measurement (MEAS:VOLT? once live) shows it
    hang:INSTR                the instrument stops answering (and acting)
    drop:INSTR                its connections are aborted and it refuses new ones
    weld:RELAY                the relay's contact is welded closed (K3 or 3)
    estop                     the E-stop button is pressed
    noise:INSTR=SIGMA         readings get Gaussian noise of SIGMA (in the
                              reading's unit: V, A, ohm), or SIGMA% of the reading

identity also applies to the relay board (another board answers ``ID`` on the
same link); ignore-setpoint, hang, drop and noise apply to the SCPI instruments;
weld and estop to the relay board (through its firmware's inputs, so the
firmware sees and reports them as it would on the real board).

``clear SPEC`` removes the active fault with the same kind and target (the
value does not matter: ``clear noise:dmm``); ``clear`` alone removes them all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from interlock.errors import SimulatorError

KINDS = (
    "short", "open", "swap", "stray", "wrong-dut", "identity", "ignore-setpoint",
    "hang", "drop", "weld", "estop", "noise",
)
# Kinds whose argument is TARGET=VALUE, and those with no target at all.
_VALUED = ("identity", "noise", "stray")
_BARE = ("estop",)
DEFAULT_WRONG_DUT_OHMS = 4700.0

_OHMS = re.compile(r"([0-9]*\.?[0-9]+)\s*([kKmMG]?)\s*(?:ohms?|Ω)?", re.IGNORECASE)
_MULTIPLIERS = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}


@dataclass(frozen=True)
class Fault:
    """One parsed fault: ``kind``, its ``target`` (net, instrument, relay) and ``value``."""

    kind: str
    target: str = ""
    value: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """What ``clear`` matches on."""
        return (self.kind, self.target)

    @property
    def spec(self) -> str:
        if not self.target and not self.value:
            return self.kind
        if self.kind in _VALUED:
            return f"{self.kind}:{self.target}={self.value}"
        if self.kind == "ignore-setpoint" and self.value:
            return f"{self.kind}:{self.target}={self.value}"
        if self.value:
            return f"{self.kind}:{self.value}"
        return f"{self.kind}:{self.target}"

    def __str__(self) -> str:
        return self.spec

    @property
    def nets(self) -> tuple[str, ...]:
        return tuple(self.target.split(",")) if self.kind == "swap" else (self.target,)


def parse_fault(spec: str, *, for_clear: bool = False) -> Fault:
    """Parse a SPEC; for ``clear``, the value part is optional."""
    if not isinstance(spec, str) or not spec.strip():
        raise SimulatorError(f"fault: expected a SPEC like short:VBUS, got {spec!r}")
    text = spec.strip()
    kind, _, argument = text.partition(":")
    kind = kind.strip().lower()
    argument = argument.strip()
    if kind not in KINDS:
        raise SimulatorError(f'fault "{spec}": unknown kind "{kind}" (kinds: {", ".join(KINDS)})')
    if kind in _BARE:
        if argument:
            raise SimulatorError(f'fault "{spec}": {kind} takes no argument')
        return Fault(kind)
    if kind == "wrong-dut":
        if not argument or for_clear:
            return Fault(kind)
        parse_ohms(argument, spec)
        return Fault(kind, "", argument)
    if not argument:
        raise SimulatorError(f'fault "{spec}": {kind} needs a target ({_usage(kind)})')
    if kind == "ignore-setpoint":
        target, _, value = argument.partition("=")
        target, value = target.strip(), value.strip().lower()
        if not target or value not in ("", "lie"):
            raise SimulatorError(f'fault "{spec}": expected {_usage(kind)}')
        return Fault(kind, target, value)
    if kind in _VALUED:
        target, equals, value = argument.partition("=")
        target, value = target.strip(), value.strip()
        if not target or (not for_clear and (not equals or not value)):
            raise SimulatorError(f'fault "{spec}": expected {_usage(kind)}')
        if value and kind == "noise":
            parse_noise(value, spec)
        if value and kind == "stray":
            parse_volts(value, spec)
        if value and kind == "identity" and len([p for p in value.split(",") if p]) not in (3, 4):
            raise SimulatorError(f'fault "{spec}": expected {_usage(kind)}')
        return Fault(kind, target, value)
    if kind == "swap":
        nets = [n.strip() for n in argument.split(",")]
        if len(nets) != 2 or not all(nets) or nets[0] == nets[1]:
            raise SimulatorError(f'fault "{spec}": expected {_usage(kind)}')
        return Fault(kind, ",".join(sorted(nets)))
    if "," in argument or "=" in argument:
        raise SimulatorError(f'fault "{spec}": expected {_usage(kind)}')
    return Fault(kind, argument)


def parse_ohms(text: str, spec: str = "") -> float:
    match = _OHMS.fullmatch(text.strip())
    if not match:
        raise SimulatorError(
            f'fault "{spec or text}": expected a resistance like 4.7k, got "{text}"'
        )
    value = float(match.group(1)) * _MULTIPLIERS[match.group(2)]
    if value <= 0:
        raise SimulatorError(f'fault "{spec or text}": a resistance must be above zero')
    return value


def parse_volts(text: str, spec: str = "") -> float:
    """``"3.3"`` or ``"3.3 V"`` -> 3.3."""
    raw = text.strip().removesuffix("V").removesuffix("v").strip()
    try:
        value = float(raw)
    except ValueError:
        raise SimulatorError(f'fault "{spec or text}": expected a voltage like 3.3, got "{text}"') \
            from None
    if not 0 <= value < 1e3:
        raise SimulatorError(f'fault "{spec or text}": a stray voltage is from 0 V to 1 kV')
    return value


def parse_noise(text: str, spec: str = "") -> tuple[float, float]:
    """``"0.5"`` -> (0.5 absolute, 0); ``"2%"`` -> (0, 0.02 relative)."""
    raw = text.strip()
    relative = raw.endswith("%")
    try:
        sigma = float(raw.rstrip("%").strip())
    except ValueError:
        raise SimulatorError(f'fault "{spec or text}": expected SIGMA or SIGMA%, got "{text}"') \
            from None
    if not sigma >= 0 or sigma == float("inf"):
        raise SimulatorError(f'fault "{spec or text}": SIGMA must be a finite number >= 0')
    return (0.0, sigma / 100) if relative else (sigma, 0.0)


def _usage(kind: str) -> str:
    return {
        "short": "short:NET",
        "open": "open:NET",
        "swap": "swap:NET1,NET2",
        "identity": "identity:INSTR=MAKER,MODEL,SERIAL[,FIRMWARE]",
        "ignore-setpoint": "ignore-setpoint:INSTR or ignore-setpoint:INSTR=lie",
        "hang": "hang:INSTR",
        "drop": "drop:INSTR",
        "weld": "weld:RELAY",
        "noise": "noise:INSTR=SIGMA or noise:INSTR=SIGMA%",
        "stray": "stray:NET=VOLTS",
    }.get(kind, kind)
