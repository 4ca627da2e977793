"""The fleet: every interlock place of a labgrid coordinator, with its bench's own status.

From the coordinator, one short session (:func:`~.coordinator.snapshot`): the
places and the resources; an interlock place is one that matches an
``InterlockBench`` resource. Then every bench's service is asked for its
status (``GET /status`` with a viewer token, over TLS), all at once, each
bounded by ``timeout``: a bench that does not answer is shown unreachable
and delays nothing else.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from fnmatch import fnmatchcase
from typing import Any

import httpx

from interlock.client._common import Remote, identity_headers
from interlock.errors import InterlockError
from interlock.labgrid.coordinator import PlaceView, ResourceInfo, snapshot
from interlock.labgrid.drivers import DEFAULT_TOKENS, token_directory
from interlock.service.tokens import read_token
from interlock.service.wire import result_of

#: The longest one bench's answer is waited for.
STATUS_TIMEOUT = 2.0
#: Benches asked at once.
MAX_WORKERS = 32


@dataclass(frozen=True)
class PlaceBench:
    """An interlock place and the bench its resource names."""

    place: str
    holder: str | None  # who holds the place in labgrid
    bench: str
    environment: str
    address: str
    exported: bool  # the exporter says the resource is available


@dataclass(frozen=True)
class FleetRow:
    place: str
    bench: str
    environment: str
    address: str
    state: str  # the bench's state, or "unreachable"
    lease_holder: str | None
    fault: str | None
    place_holder: str | None
    exported: bool
    error: str | None = None

    def public(self) -> dict[str, Any]:
        return asdict(self)


def interlock_places(coordinator: str, timeout: float = 5.0) -> list[PlaceBench]:
    """Every place matching an InterlockBench resource, by name."""
    places, resources = snapshot(coordinator, timeout)
    benches = [r for r in resources.values() if r.cls == "InterlockBench"]
    found = []
    for view in sorted(places.values(), key=lambda v: v.info.name):
        for resource in benches:
            if _matches(view, resource):
                params = resource.params
                found.append(
                    PlaceBench(
                        place=view.info.name,
                        holder=view.info.acquired,
                        bench=str(params.get("bench", "?")),
                        environment=str(params.get("environment", "?")),
                        address=str(params.get("address", "")),
                        exported=resource.avail,
                    )
                )
    return found


def find_place(coordinator: str, place: str) -> PlaceBench:
    for found in interlock_places(coordinator):
        if found.place == place:
            return found
    raise InterlockError(f"no interlock place {place} on the labgrid coordinator {coordinator}")


def _matches(view: PlaceView, resource: ResourceInfo) -> bool:
    # labgrid's own rule: "exporter/group/cls[/name]" patterns, fnmatch on each part.
    if resource.path in view.acquired_resources:
        return True
    exporter, group, cls, name = resource.path.split("/", 3)
    for match in view.matches:
        parts = match.split("/")
        if len(parts) not in (3, 4):
            continue
        wanted = (exporter, group, cls, name)[: len(parts)]
        if all(fnmatchcase(have, pattern) for have, pattern in zip(wanted, parts, strict=True)):
            return True
    return False


def bench_status(
    found: PlaceBench, ca: str | None, tokens: str, timeout: float = STATUS_TIMEOUT
) -> FleetRow:
    try:
        token = read_token(token_directory(tokens, found.bench), "viewer")
        remote = Remote.of(found.address, ca)
        with httpx.Client(
            base_url=remote.url,
            verify=remote.tls or False,
            headers=identity_headers(token, None, "interlock fleet status"),
            timeout=timeout,
        ) as http:
            status = result_of(http.get("/status"))
    except (InterlockError, httpx.HTTPError, ValueError) as error:
        return _row(found, "unreachable", {}, f"{type(error).__name__}: {error}"[:200])
    return _row(found, str(status.get("state")), status, None)


def _row(found: PlaceBench, state: str, status: dict[str, Any], error: str | None) -> FleetRow:
    lease = status.get("lease") or {}
    return FleetRow(
        place=found.place,
        bench=found.bench,
        environment=found.environment,
        address=found.address,
        state=state,
        lease_holder=lease.get("who"),
        fault=status.get("fault"),
        place_holder=found.holder,
        exported=found.exported,
        error=error,
    )


def fleet_status(
    coordinator: str, *, ca: str | None = None, tokens: str = DEFAULT_TOKENS
) -> list[FleetRow]:
    places = interlock_places(coordinator)
    if not places:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(places))) as pool:
        return list(pool.map(lambda found: bench_status(found, ca, tokens), places))
