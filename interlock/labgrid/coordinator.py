"""Who holds which labgrid place, and what the coordinator lists, from any program.

:func:`snapshot`: every place and every resource, from one short
``ClientStream`` session (the coordinator has a unary GetPlaces but nothing of
the kind for resources). :func:`labgrid_identity`: the name labgrid's client
puts on an acquisition, ``"<host>/<user>"`` (``LG_HOSTNAME``/``LG_USERNAME``,
else the host's name and the login); self-asserted, as the coordinator
authenticates nobody. The service's own watch of its place is
:mod:`interlock.service.placewatch`.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from getpass import getuser

import grpc
from labgrid.remote.generated import labgrid_coordinator_pb2 as pb
from labgrid.remote.generated import labgrid_coordinator_pb2_grpc as pb_grpc

from interlock.service.places import PlaceInfo
from interlock.service.placewatch import (
    CHANNEL_OPTIONS,
    STARTUP_VERSION,
    CoordinatorUnavailable,
    grpc_target,
    place_info,
)

__all__ = ["CoordinatorUnavailable", "PlaceView", "ResourceInfo", "labgrid_identity", "snapshot"]


def labgrid_identity() -> str:
    """The name labgrid's client would put on an acquisition made from this process."""
    host = os.environ.get("LG_HOSTNAME", socket.gethostname())
    user = os.environ.get("LG_USERNAME", getuser())
    return f"{host}/{user}"


@dataclass(frozen=True)
class ResourceInfo:
    """A resource as the coordinator lists it."""

    path: str  # "exporter/group/cls/name", as a place's acquired resources spell it
    cls: str
    params: dict[str, object]
    avail: bool


@dataclass(frozen=True)
class PlaceView:
    """A place as the fleet sees it: its holder, and what it matches."""

    info: PlaceInfo
    matches: tuple[str, ...]  # "exporter/group/cls[/name]" patterns (fnmatch)
    acquired_resources: tuple[str, ...]


def _place_view(place: pb.Place) -> PlaceView:
    matches = tuple(
        "/".join([m.exporter, m.group, m.cls] + ([m.name] if m.HasField("name") else []))
        for m in place.matches
    )
    return PlaceView(place_info(place), matches, tuple(place.acquired_resources))


def _resource_info(r: pb.Resource, params: Callable) -> ResourceInfo:
    where = r.path
    path = f"{where.exporter_name}/{where.group_name}/{r.cls}/{where.resource_name}"
    return ResourceInfo(path, r.cls, params(r.params), r.avail)


def snapshot(
    address: str, timeout: float = 5.0
) -> tuple[dict[str, PlaceView], dict[str, ResourceInfo]]:
    """Every place and every resource, from one short ClientStream session."""
    from labgrid.remote.common import build_dict_from_map

    done = threading.Event()

    def requests() -> Iterator[pb.ClientInMessage]:
        for field in ("startup", "all_places", "all_resources", "sync"):
            msg = pb.ClientInMessage()
            if field == "startup":
                msg.startup.version = STARTUP_VERSION
                msg.startup.name = f"{socket.gethostname()}/interlock-fleet"
            elif field == "sync":
                msg.sync.id = 1
            else:
                setattr(msg.subscribe, field, True)
            yield msg
        done.wait(timeout)

    places: dict[str, PlaceView] = {}
    resources: dict[str, ResourceInfo] = {}
    try:
        with grpc.insecure_channel(grpc_target(address), options=CHANNEL_OPTIONS) as channel:
            call = pb_grpc.CoordinatorStub(channel).ClientStream(requests(), timeout=timeout)
            try:
                for out in call:
                    for update in out.updates:
                        kind = update.WhichOneof("kind")
                        if kind == "place":
                            places[update.place.name] = _place_view(update.place)
                        elif kind == "resource":
                            resource = _resource_info(update.resource, build_dict_from_map)
                            resources[resource.path] = resource
                    if out.HasField("sync"):
                        break
            finally:
                done.set()
                call.cancel()
    except grpc.RpcError as exc:
        why = f"{exc.code().name}: {exc.details()}" if hasattr(exc, "code") else str(exc)
        raise CoordinatorUnavailable(f"labgrid coordinator {address}: {why}") from None
    return places, resources
