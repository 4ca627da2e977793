"""Fast checks of the service's parts without a server: wire format, leases on a fake clock."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from interlock import errors
from interlock.errors import IdentityMismatch, LimitViolation, StateError
from interlock.service.leases import LeaseError, LeaseManager
from interlock.service.wire import (
    AccessDenied,
    ServiceUnavailable,
    error_from_wire,
    error_to_wire,
    status_of,
)


def _examples() -> list[errors.InterlockError]:
    return [
        LimitViolation("6 V is above 5.5 V", "nets.VLOGIC.max_voltage", "p.toml: nets.VLOGIC"),
        IdentityMismatch("psu", "Keysight E36312A", "Rigol DP832"),
        errors.ReadbackMismatch("psu", "VBUS reads 3 V"),
        errors.ConfigError("bench.toml", "service.socket", "too long"),
        errors.JournalCorrupt(7, "chain broken at 7"),
        errors.FaultLatched("tripped: estop"),
        StateError("not allowed while safe"),
        AccessDenied("the viewer role may not do this", role="viewer", needs="operator"),
        ServiceUnavailable("nobody home"),
    ]


@pytest.mark.parametrize("error", _examples(), ids=lambda e: type(e).__name__)
def test_errors_cross_the_wire_as_themselves(error):
    again = error_from_wire(error_to_wire(error), status_of(error))
    assert type(again) is type(error)
    assert str(again) == str(error)
    for name in ("rule", "where", "reason", "instrument", "expected", "seen", "seq", "role"):
        assert getattr(again, name, None) == getattr(error, name, None), name


def test_a_service_only_error_travels_as_its_parent():
    body = error_to_wire(LeaseError("no such lease"))
    assert body["error"] == "StateError"
    assert isinstance(error_from_wire(body, 409), StateError)
    assert type(error_from_wire({"detail": "Not Found"}, 404)) is errors.InterlockError


class FakeController:
    def __init__(self) -> None:
        self.state = "live"
        self.commanded = SimpleNamespace(live_nets=frozenset({"VLOGIC"}))
        self.trips: list[tuple[str, str, str | None]] = []
        self.journal = SimpleNamespace(request=lambda *a, **k: None, operator=lambda *a, **k: None)

    def trip(self, cause: str, detail: str, *, who: str | None = None) -> None:
        self.trips.append((cause, detail, who))
        self.state = "fault"


@pytest.fixture
def leases():
    now = [100.0]
    controller = FakeController()
    manager = LeaseManager(controller, 2.0, clock=lambda: now[0], stopping=threading.Event())
    return manager, controller, now


def test_a_lease_is_lost_only_after_its_timeout_of_silence(leases):
    manager, controller, now = leases
    lease = manager.acquire("ada", "script test pid 1", "script")
    now[0] += 1.9
    manager.heartbeat(lease.id)
    now[0] += 1.99
    manager.check_expiry()
    assert controller.trips == [] and manager.holder() is lease
    now[0] += 0.02
    manager.check_expiry()
    assert manager.holder() is None
    [(cause, detail, who)] = controller.trips
    assert (cause, who) == ("lease", "ada")
    assert "ada (script test pid 1)" in detail and "no heartbeat for 2.01 s" in detail
    with pytest.raises(LeaseError):
        manager.heartbeat(lease.id)


def test_a_dropped_watch_loses_the_lease_at_once_but_not_while_stopping(leases):
    manager, controller, _ = leases
    lease = manager.watch_opened(manager.acquire("ada", "c", "script").id)
    manager.stopping.set()
    manager.watch_closed(lease)
    manager.check_expiry()
    assert controller.trips == []  # a service shutting down ends every stream
    manager.stopping.clear()
    manager.check_expiry()
    assert "its connection dropped" in controller.trips[0][1]


def test_a_lost_lease_on_a_safe_bench_trips_nothing(leases):
    manager, controller, now = leases
    controller.state = "safe"
    manager.acquire("ada", "c", "script")
    now[0] += 5
    manager.check_expiry()
    assert controller.trips == [] and manager.holder() is None


def test_one_holder_at_a_time_and_only_the_holder_may_change_things(leases):
    manager, _, _ = leases
    lease = manager.acquire("ada", "c", "script")
    with pytest.raises(LeaseError, match="leased by ada"):
        manager.acquire("bob", "d", "script")
    manager.require_not_leased_by_other(lease.id)
    for other in (None, "", "x" * 24, "é\udcff"):
        with pytest.raises(LeaseError):
            manager.require_not_leased_by_other(other)
