"""interlock benches as labgrid places (the ``interlock[labgrid]`` extra).

Importing this package registers, in labgrid's ``target_factory``, the
resource :class:`InterlockBench` and the drivers :class:`InterlockClientDriver`
(a connected :class:`interlock.Client` for whoever holds the place) and
:class:`InterlockPowerDriver` (labgrid's ``PowerProtocol`` through every
check of the interlock). An environment YAML names it under ``imports:``
(by its module name only: loaded twice, labgrid refuses the classes).
"""

from interlock.labgrid.drivers import InterlockClientDriver, InterlockPowerDriver, InterlockRefused
from interlock.labgrid.resource import InterlockBench

__all__ = ["InterlockBench", "InterlockClientDriver", "InterlockPowerDriver", "InterlockRefused"]
