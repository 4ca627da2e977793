"""The controller service: the controller behind a local HTTP/JSON API.

The service owns the bench's instruments; clients (scripts, the pytest
plugin, the operator CLI, sequences) talk to it, never to an instrument, so
none of them can bypass the interlock. Pieces, one module each:

- :mod:`.tokens`: one secret token per role, in owner-only files.
- :mod:`.access`: who is calling (role from the token) and what each role may do.
- :mod:`.refusals`: refusals of access, counted and journaled in aggregate.
- :mod:`.guard`: in front of the HTTP API: the token before any body, bodies bounded.
- :mod:`.protocol`: uvicorn's h11 protocol with a deadline on each request's head.
- :mod:`.leases`: the dead man's switch of a client that makes a net live.
- :mod:`.events`: state changes, faults, refusals and lease news, fanned out to streams.
- :mod:`.runtime`: the running parts (simulated bench, journal, controller, leases).
- :mod:`.schema`: each operation once: name, least role, route, arguments (pydantic).
- :mod:`.actions`: the script actions with the service's own checks (both ways in).
- :mod:`.app`: the FastAPI application (routes, error mapping, OpenAPI schema).
- :mod:`.channel`: the command channel (script actions as JSON lines, local only).
- :mod:`.server`: uvicorn on a Unix socket (and TCP when asked), and the channel.
- :mod:`.tcp`: where TCP is served and how (TLS beyond loopback).
- :mod:`.wire`: the error format and channel constants shared with :mod:`interlock.client`.
- :mod:`.background`: starting a service detached, and telling whether one answers.

This package's ``__init__`` imports nothing heavy: :mod:`interlock.client`
needs only :mod:`.schema`, :mod:`.wire`, :mod:`.tokens` and :mod:`.background`,
no web framework.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ROLES", "Service", "ServiceThread", "create_app", "serve"]

_LAZY = {
    "ROLES": "interlock.service.tokens",
    "Service": "interlock.service.runtime",
    "create_app": "interlock.service.app",
    "ServiceThread": "interlock.service.server",
    "serve": "interlock.service.server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
