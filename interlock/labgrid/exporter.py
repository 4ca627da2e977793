"""``interlock-labgrid-exporter``: labgrid's exporter, with an export class for InterlockBench.

labgrid's exporter has no plugin hook: it looks an export class up in the
module-level dict ``labgrid.remote.exporter.exports`` and publishes a class
it does not find there verbatim, always available. This command adds one
entry to that dict, then runs labgrid's own ``main()`` with the same
arguments as ``labgrid-exporter``. What the export class adds:

- ``avail`` follows the bench's service: a thread connects to its port every
  :data:`PROBE_PERIOD` seconds (the exporter's own poll, on its event loop,
  only reads the flag); a place whose service is down is unavailable, and
  ``labgrid-client resources`` leaves it out;
- the resource's parameters are checked as a client will check them: a bad
  entry is published as broken, with its reason, and the host's other
  benches are still exported.

Nothing safety-related hangs on the exporter: it restarts itself whenever it
loses the coordinator. The plain ``labgrid-exporter`` serves as well.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

import attr
from labgrid.remote import exporter as lg_exporter
from labgrid.remote.exporter import ResourceExport

from interlock.errors import InterlockError
from interlock.labgrid.resource import InterlockBench

log = logging.getLogger(__name__)

PROBE_PERIOD = 2.0
PROBE_TIMEOUT = 1.0


class _ServiceProbe:
    """The export's ``local`` side: does the service's port accept connections?"""

    def __init__(self, **params: Any) -> None:
        InterlockBench(target=None, name=None, **params)  # the client's checks, here
        parts = urlsplit(params["address"])
        self.host, self.port = parts.hostname, parts.port
        self.avail = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="interlock-probe", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with socket.create_connection((self.host, self.port), timeout=PROBE_TIMEOUT):
                    self.avail = True
            except OSError:
                self.avail = False
            self._stop.wait(PROBE_PERIOD)

    def poll(self) -> None:
        pass  # the thread keeps avail current


class _Unavailable:
    avail = False

    def poll(self) -> None:
        pass


@attr.s(eq=False)
class InterlockBenchExport(ResourceExport):
    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        try:
            self.local = _ServiceProbe(**self.local_params)
        except (TypeError, ValueError, InterlockError) as error:
            # One bad bench must not take the host's other exports down.
            self.local = _Unavailable()
            self.broken = f"invalid InterlockBench: {error}"[:200]

    def _get_params(self) -> dict[str, Any]:
        return dict(self.local_params)


def register() -> None:
    lg_exporter.exports["InterlockBench"] = InterlockBenchExport


def main() -> None:
    register()
    lg_exporter.main()
