"""The labgrid resource of one interlock bench: where its service listens, its name, its class.

Exporters publish it from their YAML as a class they do not know: labgrid's
stock exporter then sends the parameters verbatim, always available (or
``interlock-labgrid-exporter``, whose export class follows the service's
port). A client builds the resource from the class *name* the coordinator
hands it, so the class must be registered in the client's process before a
place is expanded: an environment YAML's ``imports: [interlock.labgrid]``.

Parameters cross the coordinator as scalars only (text, numbers, booleans):
which nets to switch, and at what setpoints, lives in the driver's
configuration (the environment YAML), never here.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import attr
from labgrid.factory import target_factory
from labgrid.resource.common import Resource

from interlock.errors import InvalidArgument

ENVIRONMENTS = ("simulation", "engineering", "flight")


def _service_address(instance: object, attribute: object, value: str) -> None:
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("https", "http") or not parts.hostname or port is None:
        raise InvalidArgument(
            f'InterlockBench.address: expected "https://HOST:PORT", got {value!r}'
        )


@target_factory.reg_resource
@attr.s(eq=False)
class InterlockBench(Resource):
    """One bench's interlock service.

    Args:
        address (str): the service's TCP address, ``https://HOST:PORT`` (TLS; ``http://``
            only on loopback, as the client library takes it)
        bench (str): the bench's name as its bench.toml says: checked against the
            service's own answer before anything is sent (right target first)
        environment (str): simulation, engineering or flight: checked the same way
    """

    address = attr.ib(validator=[attr.validators.instance_of(str), _service_address])
    bench = attr.ib(validator=attr.validators.instance_of(str))
    environment = attr.ib(validator=attr.validators.in_(ENVIRONMENTS))
