"""The bench's labgrid place, watched from the service (``[service] reservations = "labgrid"``).

:class:`PlaceWatcher` keeps a ``Coordinator/ClientStream`` session with the
labgrid coordinator (labgrid 26.x, gRPC; a sync channel in a thread of its
own, never on the request loop): the coordinator answers
``subscribe.all_places`` with a snapshot of every place, then sends each
change to every session, so a release reaches the service within a few
milliseconds of the coordinator handling it. Nothing is polled. Imported
only when reservations are on: it needs the labgrid extra (grpc, labgrid's
message stubs).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator

import grpc
from labgrid.remote.generated import labgrid_coordinator_pb2 as pb
from labgrid.remote.generated import labgrid_coordinator_pb2_grpc as pb_grpc

from interlock.service.places import CoordinatorUnknown, PlaceInfo

log = logging.getLogger(__name__)

DEFAULT_PORT = 20408
# labgrid's own client's keepalive: a dead coordinator or a cut link is noticed in about
# 17.5 s even when idle (measured: 14 s for a frozen coordinator).
CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 7500),
    ("grpc.keepalive_timeout_ms", 10000),
    ("grpc.http2.ping_timeout_ms", 10000),
    ("grpc.http2.max_pings_without_data", 0),
]
# The coordinator only logs the version a session says it speaks.
STARTUP_VERSION = "26.0.1"


class CoordinatorUnavailable(CoordinatorUnknown):
    """The holder of a place cannot be known: the coordinator is not reachable."""


def grpc_target(address: str) -> str:
    """HOST[:PORT] as labgrid takes it (default port 20408)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or host.endswith(":"):  # no port (or a bare IPv6)
        return f"{address}:{DEFAULT_PORT}"
    return address


def place_info(place: pb.Place) -> PlaceInfo:
    """What the service needs of a place, from the coordinator's message."""
    return PlaceInfo(
        name=place.name,
        acquired=place.acquired or None,
        allowed=frozenset(place.allowed),
        changed=place.changed,
    )


PlaceCallback = Callable[[PlaceInfo | None, PlaceInfo | None], None]


class PlaceWatcher:
    """Places as the coordinator publishes them, kept current by a ClientStream session.

    ``on_change(old, new)`` runs on the watcher's thread for every change of a
    place (``new`` None: deleted; ``old`` None: first seen). While the stream
    is down, :meth:`place` raises :class:`CoordinatorUnavailable`: nobody may
    act on a holder that cannot be known (the caller decides what that
    means; interlock refuses to start anything and keeps what is live under
    its own lease). The stream is re-opened every ``retry`` seconds.
    """

    def __init__(
        self,
        address: str,
        *,
        name: str | None = None,
        on_change: PlaceCallback | None = None,
        on_connection: Callable[[bool, str], None] | None = None,
        retry: float = 1.0,
    ) -> None:
        self.address = grpc_target(address)
        # The session name the coordinator logs; labgrid expects "host/user".
        self.name = name or f"{socket.gethostname()}/interlock-{os.getpid()}"
        self.on_change = on_change or (lambda old, new: None)
        self.on_connection = on_connection or (lambda up, why: None)
        self.retry = retry
        self._places: dict[str, PlaceInfo] = {}
        self._lock = threading.Lock()
        self._synced = threading.Event()  # the snapshot after subscribing has arrived
        self._stop = threading.Event()
        self._outbox: queue.Queue[pb.ClientInMessage | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._channel: grpc.Channel | None = None
        self._call = None
        self.down_since: float | None = time.monotonic()
        self.down_reason = "not connected yet"
        self._told_down = False
        self.updated_at = 0.0  # monotonic time of the last message from the coordinator
        self.messages = 0

    # -- life cycle --------------------------------------------------------------------

    def start(self, wait: float | None = 5.0) -> PlaceWatcher:
        self._thread = threading.Thread(target=self._run, name="labgrid-places", daemon=True)
        self._thread.start()
        if wait is not None and not self._synced.wait(wait):
            raise CoordinatorUnavailable(
                f"labgrid coordinator {self.address}: no place snapshot within {wait:g} s "
                f"({self.down_reason})"
            )
        return self

    def stop(self) -> None:
        self._stop.set()
        self._synced.set()  # a start() still waiting returns
        self._outbox.put(None)
        with contextlib.suppress(Exception):
            if self._call is not None:
                self._call.cancel()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._channel is not None:
            self._channel.close()

    # -- reading -----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.down_since is None

    def place(self, name: str) -> PlaceInfo | None:
        """The place as last published (None: no such place); raises when the stream is down."""
        with self._lock:
            if self.down_since is not None:
                raise CoordinatorUnavailable(
                    f"labgrid coordinator {self.address} unreachable for "
                    f"{time.monotonic() - self.down_since:.1f} s: {self.down_reason}"
                )
            return self._places.get(name)

    def places(self) -> dict[str, PlaceInfo]:
        with self._lock:
            return dict(self._places)

    # -- the stream ----------------------------------------------------------------------

    def _requests(self) -> Iterator[pb.ClientInMessage]:
        msg = pb.ClientInMessage()
        msg.startup.version = "26.0.1"  # the coordinator only logs it
        msg.startup.name = self.name
        yield msg
        msg = pb.ClientInMessage()
        msg.subscribe.all_places = True
        yield msg
        msg = pb.ClientInMessage()
        msg.sync.id = 1  # answered after the snapshot: marks it complete
        yield msg
        while True:
            item = self._outbox.get()
            if item is None:
                return
            yield item

    def _run(self) -> None:
        while not self._stop.is_set():
            self._channel = grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS)
            stub = pb_grpc.CoordinatorStub(self._channel)
            snapshot: dict[str, PlaceInfo] = {}
            try:
                self._call = stub.ClientStream(self._requests())
                for out in self._call:
                    self.updated_at = time.monotonic()
                    self.messages += 1
                    for update in out.updates:
                        kind = update.WhichOneof("kind")
                        if kind == "place":
                            info = place_info(update.place)
                            if self._synced_now():
                                self._apply(info.name, info)
                            else:
                                snapshot[info.name] = info
                        elif kind == "del_place":
                            if self._synced_now():
                                self._apply(update.del_place, None)
                            else:
                                snapshot.pop(update.del_place, None)
                    if out.HasField("sync") and not self._synced_now():
                        self._install(snapshot)
            except grpc.RpcError as exc:
                why = f"{exc.code().name}: {exc.details()}" if hasattr(exc, "code") else str(exc)
            except Exception as exc:  # the watcher must outlive any one failure
                log.exception("place watcher")
                why = repr(exc)
            else:
                why = "the coordinator ended the stream"
            self._went_down(why)
            self._outbox = queue.Queue()
            with contextlib.suppress(Exception):
                self._channel.close()
            self._stop.wait(self.retry)

    def _synced_now(self) -> bool:
        return self._synced.is_set() and self.down_since is None

    def _install(self, snapshot: dict[str, PlaceInfo]) -> None:
        with self._lock:
            old_places, self._places = self._places, dict(snapshot)
            self.down_since = None
            self.down_reason = ""
            self._told_down = False
        self._synced.set()
        self.on_connection(True, "snapshot received")
        # Changes missed while down (e.g. a release during an outage, or a coordinator
        # restart, which drops every acquisition: coordinator.py:298-300) are reported now.
        for name in sorted(old_places.keys() | snapshot.keys()):
            old, new = old_places.get(name), snapshot.get(name)
            if old != new:
                self._notify(old, new)

    def _apply(self, name: str, new: PlaceInfo | None) -> None:
        with self._lock:
            old = self._places.get(name)
            if new is None:
                self._places.pop(name, None)
            else:
                self._places[name] = new
        if old != new:
            self._notify(old, new)

    def _went_down(self, why: str) -> None:
        with self._lock:
            was_up = self.down_since is None
            if was_up:
                self.down_since = time.monotonic()
            self.down_reason = why
            # Told once per outage (and once for a first connection that fails), not per retry.
            tell = was_up or not self._told_down
            self._told_down = True
        if tell and not self._stop.is_set():
            log.warning("labgrid coordinator %s: %s", self.address, why)
            self.on_connection(False, why)

    def _notify(self, old: PlaceInfo | None, new: PlaceInfo | None) -> None:
        try:
            self.on_change(old, new)
        except Exception:
            log.exception("place change callback")
