"""What every simulated SCPI instrument shares: identity, IEEE 488.2 common
commands, the error queue, measurement noise and the instrument-level faults.

A model (:mod:`interlock.sim.psu`, :mod:`interlock.sim.dmm`) subclasses
:class:`ScpiInstrument`, registers its commands and implements ``reset()``.
``execute(line)`` is what the server calls for each received line; it runs
under the bench's lock, so a command sees one consistent physical state.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass

from interlock.sim.electrical import ElectricalBench
from interlock.sim.scpi import CommandSet, ErrorQueue, Parameters, ScpiError, parse_bool
from interlock.sim.truth import GroundTruth


@dataclass(frozen=True)
class IdentityString:
    """The four fields of an ``*IDN?`` reply."""

    maker: str
    model: str
    serial: str
    firmware: str = "1.0.0"

    def reply(self) -> str:
        return f"{self.maker},{self.model},{self.serial},{self.firmware}"


@dataclass(frozen=True)
class Noise:
    """Gaussian noise on readings: ``absolute`` in the reading's SI unit plus
    ``relative`` times the reading (standard deviations)."""

    absolute: float = 0.0
    relative: float = 0.0

    def sigma(self, value: float) -> float:
        return self.absolute + self.relative * abs(value)


class ScpiInstrument:
    """Base of the simulated instruments."""

    def __init__(
        self,
        name: str,
        identity: IdentityString,
        electrical: ElectricalBench,
        truth: GroundTruth,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.identity = identity
        self.electrical = electrical
        self.truth = truth
        self.lock: threading.RLock = electrical.lock
        self.rng = rng or random.Random()
        self.errors = ErrorQueue()
        self.commands = CommandSet(self.errors)
        # Fault hooks (see interlock.sim.faults): None / False when healthy.
        self.identity_override: IdentityString | None = None
        self.extra_noise: Noise | None = None
        self.ignore_setpoints = False
        self.lie_about_setpoints = False
        # Whether the front panel is locked from the interface (SYST:REM, SYST:RWL).
        self.panel_locked = False
        self._register_common()

    # --- the server's entry point ------------------------------------------

    def execute(self, line: str) -> str | None:
        with self.lock:
            return self.commands.execute(line)

    def reset(self) -> None:
        """*RST: the model's power-on settings (not the error queue)."""

    # --- helpers for models ---------------------------------------------------

    def noisy(self, value: float, noise: Noise) -> float:
        """A reading with the model's own noise plus any injected noise."""
        if not math.isfinite(value):
            return value
        sigma = noise.sigma(value)
        if self.extra_noise is not None:
            sigma += self.extra_noise.sigma(value)
        return value + self.rng.gauss(0.0, sigma) if sigma > 0 else value

    def forget_lies(self) -> None:
        """The fault is cleared: queries tell the truth again (models override)."""

    def accept_setpoint(self, what: str) -> bool:
        """False if a setpoint fault makes the instrument silently keep its old value."""
        if self.ignore_setpoints:
            self.truth.event("setpoint-ignored", f"{self.name}: {what}", instrument=self.name)
            return False
        return True

    # --- IEEE 488.2 common commands and the SYSTem basics --------------------

    def _register_common(self) -> None:
        c = self.commands
        c.query("*IDN", self._idn)
        c.command("*RST", self._rst)
        c.command("*CLS", self._cls)
        c.query("*OPC", _no_params(lambda: "1"))
        c.command("*OPC", _no_params(lambda: None))
        c.command("*WAI", _no_params(lambda: None))
        c.query("*TST", _no_params(lambda: "+0"))
        c.query("*ESR", _no_params(lambda: f"{self.errors.take_event_status():+d}"))
        c.query("SYSTem:ERRor[:NEXT]", _no_params(self.errors.pop))
        c.query("SYSTem:ERRor:COUNt", _no_params(lambda: f"{self.errors.count():+d}"))
        c.query("SYSTem:VERSion", _no_params(lambda: "1999.0"))
        c.command("SYSTem:REMote", _no_params(lambda: self._lock_panel(True)))
        c.command("SYSTem:LOCal", _no_params(lambda: self._lock_panel(False)))
        c.command("SYSTem:RWLock[:STATe]", self._rwlock)

    def _lock_panel(self, locked: bool) -> None:
        self.panel_locked = locked

    def _rwlock(self, params: Parameters) -> None:
        params.at_most(1)
        self._lock_panel(parse_bool(params.items[0]) if len(params) else True)

    def _idn(self, params: Parameters) -> str:
        params.at_most(0)
        return (self.identity_override or self.identity).reply()

    def _rst(self, params: Parameters) -> None:
        params.at_most(0)
        self.reset()
        self.electrical.update()

    def _cls(self, params: Parameters) -> None:
        params.at_most(0)
        self.errors.clear()


def _no_params(action):  # type: ignore[no-untyped-def]
    def handler(params: Parameters):  # type: ignore[no-untyped-def]
        if len(params):
            raise ScpiError(-108)
        return action()

    return handler
