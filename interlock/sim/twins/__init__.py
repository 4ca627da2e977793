"""Simulated twins: for every dialect, an instrument that answers in it.

A twin is the same electrical model (:class:`~interlock.sim.psu.SimulatedSupply`'s
outputs and protections, :class:`~interlock.sim.dmm.SimulatedMeter`) behind a
command table of its dialect's own, served over the dialect's transport: a
TCP socket for a VISA socket link, a pseudo-terminal at the dialect's framing
for a serial one (:mod:`interlock.sim.serial_server`). ``TWINS`` maps a
dialect's name to the class of its twin; a family's twin registers here.
"""

from __future__ import annotations

from interlock.sim.dmm import SimulatedMeter
from interlock.sim.psu import SimulatedSupply
from interlock.sim.twins.aimtti import AimTtiSupply
from interlock.sim.twins.daq970 import Daq970Switch
from interlock.sim.twins.dmm6500 import Dmm6500Meter
from interlock.sim.twins.e363xa import E3631aSupply, E3632aSupply
from interlock.sim.twins.hp34401a import Hp34401aMeter
from interlock.sim.twins.keithley import KeithleySupply
from interlock.sim.twins.korad import KoradSupply
from interlock.sim.twins.numato import NumatoRelays
from interlock.sim.twins.rigol import RigolSupply
from interlock.sim.twins.rs_hmp import HmpSupply
from interlock.sim.twins.siglent import SiglentSupply

# dialect name -> twin class (constructed as SimulatedSupply / SimulatedMeter are; a
# switch unit's with ``relays``, its channels' relay names)
TWINS: dict[str, type] = {
    "keysight-e36300": SimulatedSupply,
    "keysight-truevolt": SimulatedMeter,
    "keithley-2230": KeithleySupply,
    "korad-ka": KoradSupply,
    "rigol-dp800": RigolSupply,
    "rs-hmp": HmpSupply,
    "siglent-spd3303x": SiglentSupply,
    "keysight-daq970": Daq970Switch,
    "numato-relay": NumatoRelays,
    "hp-34401a": Hp34401aMeter,
    "keithley-dmm6500": Dmm6500Meter,
    "aimtti-plp": AimTtiSupply,
    "keysight-e3631a": E3631aSupply,
    "keysight-e3632a": E3632aSupply,
}

__all__ = ["TWINS"]
