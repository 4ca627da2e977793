"""The client library: a program's way to the bench, through the controller service.

Two faces on one definition of the operations (:mod:`interlock.service.schema`:
routes, arguments, headers; :mod:`interlock.service.wire`: errors):

- sync, for scripts, sequences and tests: :func:`connect` -> :class:`Client`::

    import interlock

    with interlock.connect() as bench:          # the bench found, role "script"
        with bench.lease():                     # the dead man's switch
            bench.set_current_limit("VLOGIC", 0.3)
            bench.set_voltage("VLOGIC", 5.0)
            bench.output_on("VLOGIC")
            print(bench.measure("VLOGIC"))      # {"voltage": 5.0, "current": 0.15}
            bench.output_off("VLOGIC")

- async, for programs that run an event loop (the operator console):
  :func:`connect_async` -> :class:`AsyncClient`, the same methods to ``await``
  and ``events()`` to ``async for``.

``connect()`` finds the bench as the CLI does: the file given, else the
``INTERLOCK_BENCH`` environment variable, else ``bench.toml`` in the current
directory or the nearest one above it (:mod:`interlock.lookup`). It
reaches the service over the bench's Unix sockets, reading the
role's token from the bench's tokens directory. Setpoints, relays, outputs,
measurements and the status go over the service's command channel (one JSON
line each way, see :mod:`interlock.service.channel`); arming, leases, events
and the emergency stop over its HTTP API (the async face uses HTTP for all).
When nothing answers and the bench is a ``simulation`` bench, ``connect()``
starts a service in the background; a service for real hardware is only
ever started by someone on purpose.

From another machine, ``connect(bench, address="https://bench-07.lab:8443",
ca="lab-ca.pem")`` reaches a service started with ``--tcp`` and a TLS
certificate: the server's certificate must be signed by ``ca`` (a PEM file:
the lab's CA, or the server's own self-signed certificate) and name the
host, or nothing is sent. Everything goes over HTTPS then (the command
channel is local only). ``http://`` is taken only for a loopback address.

The service's refusals come back as the project's own exceptions
(:class:`~interlock.errors.LimitViolation` with ``rule``, ``where`` and
``reason``; :class:`~interlock.errors.StateError`;
:class:`~interlock.errors.FaultLatched`; ...), plus
:class:`~interlock.errors.AccessDenied` and
:class:`~interlock.errors.ServiceUnavailable`.

Units: ``volts`` and ``amps`` are SI numbers; the service refuses anything
outside the pinned limits, it never clamps.
"""

from __future__ import annotations

# Besides the public names (__all__), for the tools that need them: the longest a
# request may take, why a service could not be reached, the header a lease travels in.
from interlock.client._async import AsyncClient, AsyncLease, connect_async
from interlock.client._common import REQUEST_TIMEOUT as REQUEST_TIMEOUT
from interlock.client._common import Measurement
from interlock.client._common import transport_reason as transport_reason
from interlock.client._sync import Client, Lease, connect
from interlock.service.schema import LEASE_HEADER as LEASE_HEADER

__all__ = [
    "AsyncClient",
    "AsyncLease",
    "Client",
    "Lease",
    "Measurement",
    "connect",
    "connect_async",
]
