"""A supply with a general output switch: a channel's terminals are live only when its
own output and the general switch are both on (Keithley 2220/2230, R&S HMP)."""

from __future__ import annotations

from interlock.sim.psu import SimulatedSupply


class GeneralSwitchSupply(SimulatedSupply):
    general = False

    def reset(self) -> None:
        super().reset()
        self.general = False

    def live_outputs(self) -> dict[int, tuple[float, float]]:
        return super().live_outputs() if self.general else {}

    def settings(self) -> dict[int, dict[str, float | bool]]:
        found = super().settings()
        for record in found.values():  # what the terminals see: both switches
            record["output"] = bool(record["output"]) and self.general
        return found
